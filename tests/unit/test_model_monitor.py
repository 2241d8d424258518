"""The model monitor: accuracy of audited predictions against logged outcomes (joined by prediction id or by
customer, each prediction judged once), the audited predictions read back from a real (moto) audit table, drift
of captured inputs against the training baseline (each captured prediction once), the monitor's window, and
stored reports."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws
from pydantic import ValidationError
from sklearn.metrics import brier_score_loss, precision_score, recall_score, roc_auc_score

from helpers import TELECOM_CSV, TELECOM_SCHEMA, load_template
from mlops.api.contracts import Prediction
from mlops.audit.events import audit_trail, model_event, prediction_events
from mlops.audit.records import AuditEventType
from mlops.core.artifacts import ArtifactStore
from mlops.core.clock import format_timestamp, utc
from mlops.data.dataset import frame_to_columns, labels, read_dataset, split_dataset
from mlops.data.feature_fitting import fit_feature_spec
from mlops.data.feature_spec import FeatureSpec
from mlops.data.features import Columns
from mlops.data.schema import DataSchema
from mlops.monitoring import accuracy as monitoring
from mlops.monitoring.accuracy import (
    MIN_OUTCOMES_FOR_ACCURACY,
    AccuracyReport,
    AccuracyScope,
    AccuracyWindow,
    audited_predictions,
    measure_accuracy,
)
from mlops.monitoring.baseline import DriftBaseline, build_baseline
from mlops.monitoring.capture import InferenceCapture
from mlops.monitoring.drift import DriftThresholds
from mlops.monitoring.monitor import MonitoringReport, MonitorRequest, latest_report, run_monitor, store_report
from mlops.monitoring.outcomes import Outcome, OutcomeLog
from mlops.registry.store import ModelRegistry, ModelStatus, ModelVersion

MODEL = "churn"
VERSION = "v1"
MODEL_THRESHOLD = 0.5
REGISTRY_TABLE = "registry"
AUDIT_TABLE = "audit"
ARTIFACT_BUCKET = "artifact-bucket"
MONITORING_BUCKET = "monitoring-bucket"  # not plain "monitoring": moto routes monitoring.* hosts to CloudWatch
T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
WINDOW = (T0, T0 + dt.timedelta(hours=1))


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


# ---------------------------------------------------------------------- measure_accuracy
ACCURACY_WINDOW = AccuracyWindow.of(AccuracyScope.RECENT_OUTCOMES, WINDOW, dt.timedelta(days=7), WINDOW[1])


def audited(
    customer: str,
    probability: float,
    at: dt.datetime,
    *,
    threshold: float = MODEL_THRESHOLD,
    version: str = VERSION,
    variant_decision: bool | None = None,
    prediction_id: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """One (occurred_at, entry) pair as the audit trail returns it."""
    decision = probability >= threshold if variant_decision is None else variant_decision
    entry = {
        "prediction_id": prediction_id or str(uuid.uuid4()),
        "customer_id": customer,
        "churn_probability": probability,
        "churn_prediction": decision,
        "threshold": threshold,
        "model_version": version,
    }
    return format_timestamp(at), entry


def outcome(customer: str, churned: bool, at: dt.datetime, prediction_id: str | None = None) -> Outcome:
    return Outcome(customer_id=customer, churned=churned, observed_at=at, prediction_id=prediction_id)


def measure(
    outcomes: Sequence[Outcome], predictions: Sequence[tuple[str, dict[str, Any]]], model_version: str | None = None
) -> AccuracyReport:
    return measure_accuracy(outcomes, iter(predictions), model_version, window=ACCURACY_WINDOW)


def customer(i: int) -> str:
    return f"C{i:05d}"


def test_an_outcome_is_judged_by_the_latest_prediction_made_before_it() -> None:
    # Given 50 customers each predicted three times: at 12:00 (flagged), at 12:10 (not flagged) and, after the
    # outcome, at 12:30 (flagged again); none of them churned
    predictions = []
    for i in range(MIN_OUTCOMES_FOR_ACCURACY):
        predictions += [
            audited(customer(i), 0.9, minutes(0)),
            audited(customer(i), 0.1, minutes(10)),
            audited(customer(i), 0.9, minutes(30)),
        ]
    outcomes = [outcome(customer(i), False, minutes(20)) for i in range(MIN_OUTCOMES_FOR_ACCURACY)]
    # When accuracy is measured
    report = measure(outcomes, predictions)
    # Then each outcome met the 12:10 prediction (correct), not the earlier one nor the later one (both wrong)
    assert report.sufficient_data
    assert (report.outcomes, report.matched, report.accuracy) == (50, 50, 1.0)
    assert report.confusion_matrix == {"tn": 50, "fp": 0, "fn": 0, "tp": 0}


def test_a_prediction_made_at_the_moment_of_the_outcome_counts_as_before_it() -> None:
    predictions = [audited(customer(i), 0.9, minutes(10)) for i in range(MIN_OUTCOMES_FOR_ACCURACY)]
    outcomes = [outcome(customer(i), True, minutes(10)) for i in range(MIN_OUTCOMES_FOR_ACCURACY)]
    report = measure(outcomes, predictions)
    assert (report.matched, report.accuracy) == (50, 1.0)


def test_outcomes_without_an_earlier_prediction_are_counted_but_not_scored() -> None:
    # Given 50 customers predicted before their outcome, 7 never predicted, and 3 predicted only afterwards
    predictions = [audited(customer(i), 0.8, minutes(0)) for i in range(50)]
    predictions += [audited(customer(i), 0.8, minutes(50)) for i in range(57, 60)]
    outcomes = [outcome(customer(i), True, minutes(20)) for i in range(60)]
    # When accuracy is measured
    report = measure(outcomes, predictions)
    # Then all 60 outcomes are counted, only the 50 matched ones are scored
    assert (report.outcomes, report.matched) == (60, 50)
    assert report.confusion_matrix == {"tn": 0, "fp": 0, "fn": 0, "tp": 50}


def test_too_few_matched_outcomes_give_no_accuracy() -> None:
    # Given one matched outcome fewer than the minimum
    matched = MIN_OUTCOMES_FOR_ACCURACY - 1
    predictions = [audited(customer(i), 0.8, minutes(0)) for i in range(matched)]
    outcomes = [outcome(customer(i), True, minutes(20)) for i in range(matched + 5)]
    # When accuracy is measured
    report = measure(outcomes, predictions)
    # Then there is no verdict: no accuracy, precision, recall nor confusion matrix
    assert (report.outcomes, report.matched, report.sufficient_data) == (matched + 5, matched, False)
    assert (report.accuracy, report.precision, report.recall, report.confusion_matrix) == (None, None, None, None)


def test_the_decision_judged_is_the_models_own_not_the_variants() -> None:
    # Given 50 churners whose probability reached the model's threshold (one exactly at it) but whose experiment
    # variant decided not to flag them
    predictions = [
        audited(customer(i), 0.5 if i == 0 else 0.7, minutes(0), variant_decision=False)
        for i in range(MIN_OUTCOMES_FOR_ACCURACY)
    ]
    outcomes = [outcome(customer(i), True, minutes(20)) for i in range(MIN_OUTCOMES_FOR_ACCURACY)]
    # When accuracy is measured
    report = measure(outcomes, predictions)
    # Then the model is judged on probability >= its threshold: every churner was caught
    assert report.confusion_matrix == {"tn": 0, "fp": 0, "fn": 0, "tp": 50}
    assert (report.accuracy, report.recall) == (1.0, 1.0)


def test_the_confusion_matrix_and_rates_of_a_hand_made_example() -> None:
    # Given 60 matched outcomes: 20 caught churners, 5 false alarms, 10 missed churners, 25 rightly left alone
    cases = [(0.8, True)] * 20 + [(0.7, False)] * 5 + [(0.2, True)] * 10 + [(0.1, False)] * 25
    predictions = [audited(customer(i), p, minutes(0)) for i, (p, _) in enumerate(cases)]
    outcomes = [outcome(customer(i), churned, minutes(20)) for i, (_, churned) in enumerate(cases)]
    # When accuracy is measured
    report = measure(outcomes, predictions)
    # Then the counts and rates are those of the example
    assert report.confusion_matrix == {"tn": 25, "fp": 5, "fn": 10, "tp": 20}
    assert report.accuracy == 0.75
    assert report.precision == 0.8
    assert report.recall == round(20 / 30, 6)


def test_accuracy_can_be_measured_on_one_model_versions_predictions() -> None:
    # Given 50 customers predicted by v1 (right), then by v2 (wrong), both before the outcome
    predictions = []
    for i in range(MIN_OUTCOMES_FOR_ACCURACY):
        predictions += [
            audited(customer(i), 0.9, minutes(0), version="v1"),
            audited(customer(i), 0.1, minutes(5), version="v2"),
        ]
    outcomes = [outcome(customer(i), True, minutes(20)) for i in range(MIN_OUTCOMES_FOR_ACCURACY)]
    # When accuracy is measured for v1, for v2, and for any version
    of_v1 = measure(outcomes, predictions, model_version="v1")
    of_v2 = measure(outcomes, predictions, model_version="v2")
    of_any = measure(outcomes, predictions)
    # Then each version is judged on its own predictions, and without a version the latest prediction counts
    assert (of_v1.accuracy, of_v2.accuracy, of_any.accuracy) == (1.0, 0.0, 0.0)


def test_an_outcome_naming_its_prediction_judges_exactly_that_one_though_the_customer_was_scored_twice() -> None:
    # Given 50 customers each scored at 12:00 (flagged) and again at 12:10 (not flagged), and their churn known at
    # 12:20, once naming the 12:00 prediction and once naming only the customer
    first = [audited(customer(i), 0.9, minutes(0)) for i in range(MIN_OUTCOMES_FOR_ACCURACY)]
    again = [audited(customer(i), 0.1, minutes(10)) for i in range(MIN_OUTCOMES_FOR_ACCURACY)]
    by_id = [outcome(customer(i), True, minutes(20), entry["prediction_id"]) for i, (_, entry) in enumerate(first)]
    by_customer = [outcome(customer(i), True, minutes(20)) for i in range(MIN_OUTCOMES_FOR_ACCURACY)]
    # When accuracy is measured on each
    exact = measure(by_id, first + again)
    latest = measure(by_customer, first + again)
    # Then the named prediction is judged (the flag caught every churner), not the customer's latest one
    assert (exact.matched, exact.matched_by_prediction_id, exact.matched_by_customer) == (50, 50, 0)
    assert exact.confusion_matrix == {"tn": 0, "fp": 0, "fn": 0, "tp": 50}
    # And without the id the customer's latest prediction before the outcome is judged, as before
    assert (latest.matched_by_prediction_id, latest.matched_by_customer) == (0, 50)
    assert latest.confusion_matrix == {"tn": 0, "fp": 0, "fn": 50, "tp": 0}


def test_an_outcome_naming_an_unknown_prediction_is_not_joined_by_its_customer() -> None:
    # Given 50 customers predicted at 12:00, and outcomes naming predictions the trail does not hold (another
    # version's, or older than the lookback)
    predictions = [audited(customer(i), 0.9, minutes(0)) for i in range(MIN_OUTCOMES_FOR_ACCURACY)]
    outcomes = [outcome(customer(i), True, minutes(20), str(uuid.uuid4())) for i in range(MIN_OUTCOMES_FOR_ACCURACY)]
    # When accuracy is measured
    report = measure(outcomes, predictions)
    # Then none is judged: an exact join does not fall back to a guess
    assert (report.outcomes, report.matched, report.unknown_prediction_ids) == (50, 0, 50)
    assert report.sufficient_data is False


def test_a_prediction_audited_twice_and_judged_twice_counts_once_with_the_last_outcome_logged() -> None:
    # Given 50 predictions each audited twice (a retried write), a batch of outcomes for them logged twice (a
    # resent batch), then a correction of the first 10 (they did not churn after all)
    predictions = [audited(customer(i), 0.9, minutes(0)) for i in range(MIN_OUTCOMES_FOR_ACCURACY)]
    ids = [entry["prediction_id"] for _, entry in predictions]
    batch = [outcome(customer(i), True, minutes(20), ids[i]) for i in range(MIN_OUTCOMES_FOR_ACCURACY)]
    correction = [outcome(customer(i), False, minutes(30), ids[i]) for i in range(10)]
    # When accuracy is measured on the outcomes in the order they were logged
    report = measure(batch + batch + correction, predictions + predictions)
    # Then each prediction was judged once, by the last outcome logged for it
    assert (report.outcomes, report.matched, report.superseded_outcomes) == (110, 50, 60)
    assert report.confusion_matrix == {"tn": 0, "fp": 10, "fn": 0, "tp": 40}


def test_auc_and_brier_score_are_scikit_learns_on_the_judged_rows() -> None:
    # Given 200 predictions of spread probabilities (many tied) and a noisy outcome for each, one decided at a
    # threshold other than one half
    rng = np.random.default_rng(3)
    probabilities = np.round(rng.random(200), 1)
    churned = rng.random(200) < probabilities
    thresholds = np.where(np.arange(200) % 2 == 0, 0.5, 0.35)
    predictions = [
        audited(customer(i), float(p), minutes(0), threshold=float(t))
        for i, (p, t) in enumerate(zip(probabilities, thresholds, strict=True))
    ]
    outcomes = [outcome(customer(i), bool(c), minutes(20)) for i, c in enumerate(churned)]
    # When accuracy is measured
    report = measure(outcomes, predictions)
    # Then AUC (ties counted as scikit-learn does), Brier score, precision and recall at each served threshold are
    # scikit-learn's on the same rows
    decided = probabilities >= thresholds
    assert report.auc == pytest.approx(roc_auc_score(churned, probabilities), abs=1e-6)
    assert report.brier_score == pytest.approx(brier_score_loss(churned, probabilities), abs=1e-6)
    assert report.precision == pytest.approx(precision_score(churned, decided), abs=1e-6)
    assert report.recall == pytest.approx(recall_score(churned, decided), abs=1e-6)
    assert report.accuracy == pytest.approx(float(np.mean(decided == churned)), abs=1e-6)


def test_outcomes_of_one_class_give_a_brier_score_but_no_auc() -> None:
    predictions = [audited(customer(i), 0.2, minutes(0)) for i in range(MIN_OUTCOMES_FOR_ACCURACY)]
    outcomes = [outcome(customer(i), False, minutes(20)) for i in range(MIN_OUTCOMES_FOR_ACCURACY)]
    report = measure(outcomes, predictions)
    assert (report.auc, report.brier_score, report.accuracy) == (None, 0.04, 1.0)


# ---------------------------------------------------------------------- the AWS side (moto)
def a_prediction(
    customer_id: str, probability: float, version: str = VERSION, variant: str | None = None
) -> Prediction:
    return Prediction(
        prediction_id=str(uuid.uuid4()),
        customer_id=customer_id,
        churn_probability=round(float(probability), 6),
        churn_prediction=bool(probability >= MODEL_THRESHOLD),
        threshold=MODEL_THRESHOLD,
        model_version=version,
        imputed_features=[],
        input_sha256="0" * 64,
        variant=variant,
    )


@dataclass
class Aws:
    dynamodb: Any
    s3: Any
    registry: ModelRegistry
    artifacts: ArtifactStore
    capture: InferenceCapture
    outcomes: OutcomeLog


def create_table_from_template(dynamodb: Any, logical_id: str, name: str) -> None:
    properties = load_template()["Resources"][logical_id]["Properties"]
    dynamodb.create_table(
        TableName=name,
        **{
            key: properties[key]
            for key in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")
            if key in properties
        },
    )


@pytest.fixture
def aws() -> Iterator[Aws]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table_from_template(dynamodb, "ModelRegistryTable", REGISTRY_TABLE)
        create_table_from_template(dynamodb, "AuditTable", AUDIT_TABLE)
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in (ARTIFACT_BUCKET, MONITORING_BUCKET):
            s3.create_bucket(Bucket=bucket)
        yield Aws(
            dynamodb=dynamodb,
            s3=s3,
            registry=ModelRegistry(REGISTRY_TABLE, dynamodb),
            artifacts=ArtifactStore(ARTIFACT_BUCKET, s3),
            capture=InferenceCapture(MONITORING_BUCKET, s3, MODEL, sample_rate=1.0),
            outcomes=OutcomeLog(MONITORING_BUCKET, s3, MODEL),
        )


def audit_predictions(
    aws: Aws, predictions: Sequence[Prediction], at: dt.datetime, request_id: str = "request-1"
) -> None:
    """Audit predictions as the scoring function does, as if made at `at`."""
    events = prediction_events(predictions, "function:scoring", request_id)
    retimed = [event.model_copy(update={"occurred_at": format_timestamp(at)}) for event in events]
    audit_trail(AUDIT_TABLE, aws.dynamodb, "scoring").append_many(retimed)


def test_the_audit_table_is_created_from_the_template_with_its_three_indexes(aws: Aws) -> None:
    described = aws.dynamodb.describe_table(TableName=AUDIT_TABLE)["Table"]
    indexes = {index["IndexName"] for index in described["GlobalSecondaryIndexes"]}
    assert indexes == {"by_type", "by_entity", "by_day"}


def test_single_and_batched_audit_records_give_every_prediction(aws: Aws) -> None:
    # Given one single prediction and one batch of 150 (audited as records of 100 and 50)
    single = a_prediction("C00000", 0.7)
    batch = [a_prediction(customer(i), i / 150) for i in range(1, 151)]
    audit_predictions(aws, [single], minutes(5), request_id="single")
    audit_predictions(aws, batch, minutes(10), request_id="batch")
    # And events of other types, and predictions outside the window
    audit_trail(AUDIT_TABLE, aws.dynamodb, "pipeline").append(
        model_event(AuditEventType.MODEL_DEPLOYED, MODEL, VERSION, "pipeline", deployment_id="d1")
    )
    audit_predictions(aws, [a_prediction("C09999", 0.5)], minutes(-5), request_id="too-early")
    # When the audited predictions of 12:00 to 13:00 are read
    found = list(audited_predictions(AUDIT_TABLE, aws.dynamodb, *WINDOW))
    last = batch[-1]
    # Then all 151 predictions come back, each with when it was made and what was decided
    assert len(found) == 151
    by_customer = {entry["customer_id"]: (occurred_at, entry) for occurred_at, entry in found}
    assert set(by_customer) == {"C00000"} | {customer(i) for i in range(1, 151)}
    occurred_at, entry = by_customer["C00000"]
    assert occurred_at == "2026-11-01T12:05:00.000Z"
    assert entry["churn_probability"] == 0.7
    assert entry["threshold"] == MODEL_THRESHOLD
    assert entry["model_version"] == VERSION
    occurred_at, entry = by_customer[customer(150)]
    assert occurred_at == "2026-11-01T12:10:00.000Z"
    assert (entry["churn_probability"], entry["prediction_id"]) == (1.0, last.prediction_id)


def test_audited_predictions_follow_the_audit_pages(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given five single-prediction records, read one audit record per page
    for i in range(5):
        audit_predictions(aws, [a_prediction(customer(i), 0.3)], minutes(i), request_id=f"r{i}")
    monkeypatch.setattr(monitoring, "AUDIT_PAGE", 1)
    # When the audited predictions are read
    found = list(audited_predictions(AUDIT_TABLE, aws.dynamodb, *WINDOW))
    # Then every page was read, oldest first
    assert [entry["customer_id"] for _, entry in found] == [customer(i) for i in range(5)]


# ---------------------------------------------------------------------- run_monitor on the telecom data
@dataclass(frozen=True)
class Telecom:
    schema: DataSchema
    spec: FeatureSpec
    baseline: DriftBaseline
    held_out: Columns
    held_out_ids: list[str]
    held_out_churned: np.ndarray


def churn_score(columns: Columns) -> np.ndarray:
    """A fixed stand-in for the model: a logistic score of service calls, day minutes and the international plan."""
    international = np.array([plan == "yes" for plan in columns["international_plan"]], dtype=np.float64)
    z = (
        -3.5
        + 0.9 * np.nan_to_num(columns["number_customer_service_calls"])
        + 0.02 * (np.nan_to_num(columns["total_day_minutes"], nan=180.0) - 180.0)
        + 2.0 * international
    )
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture(scope="module")
def telecom() -> Telecom:
    """The telecom data split in training rows (the baseline) and held-out rows (the served traffic)."""
    schema = DataSchema.from_file(TELECOM_SCHEMA)
    train, held_out = split_dataset(read_dataset(TELECOM_CSV, schema), schema, test_size=0.25, seed=42)
    held_out_columns = frame_to_columns(held_out, schema)
    train_columns = frame_to_columns(train, schema)
    return Telecom(
        schema=schema,
        spec=fit_feature_spec(train_columns, schema),
        baseline=build_baseline(train_columns, churn_score(held_out_columns), schema, created_at=T0),
        held_out=held_out_columns,
        held_out_ids=held_out[schema.id_column].tolist(),
        held_out_churned=labels(held_out, schema).astype(bool),
    )


def deploy_model(aws: Aws, telecom: Telecom, with_baseline: bool = True) -> None:
    """Register v1 with its feature spec (and drift baseline) in the artifact store, and put it in production."""
    prefix = f"models/{MODEL}/{VERSION}"
    stored = {
        "feature_spec": aws.artifacts.put(
            f"{prefix}/feature_spec.json", telecom.spec.model_dump_json(by_alias=True).encode(), "application/json"
        )
    }
    if with_baseline:
        stored["drift_baseline"] = aws.artifacts.put(
            f"{prefix}/drift_baseline.json", telecom.baseline.model_dump_json().encode(), "application/json"
        )
    aws.registry.register(
        ModelVersion(
            model_name=MODEL,
            version=VERSION,
            status=ModelStatus.APPROVED,
            created_at=format_timestamp(T0 - dt.timedelta(days=1)),
            algorithm="gradient_boosting",
            threshold=MODEL_THRESHOLD,
            metrics={"roc_auc": 0.9},
            artifacts=stored,
            dataset_sha256="1" * 64,
        )
    )
    aws.registry.deploy(MODEL, VERSION, deployment_id="d1", expected_current=None, changed_by="test", reason="test")


def serve(aws: Aws, columns: Columns, customer_ids: list[str], at: dt.datetime) -> list[Prediction]:
    """Score, capture and audit the rows as the scoring function would, in requests of 100."""
    scores = churn_score(columns)
    predictions = [a_prediction(c, p) for c, p in zip(customer_ids, scores, strict=True)]
    for start in range(0, len(predictions), 100):
        chunk = slice(start, start + 100)
        aws.capture.write(predictions[chunk], {name: values[chunk] for name, values in columns.items()}, now=at)
        audit_predictions(aws, predictions[chunk], at, request_id=f"request-{start // 100}")
    return predictions


def log_outcomes(
    aws: Aws,
    customer_ids: list[str],
    churned: np.ndarray,
    at: dt.datetime,
    predictions: Sequence[Prediction] | None = None,
    request_id: str = "outcomes-1",
) -> None:
    """Log the customers' outcomes at `at`, naming the `predictions` they judge when given."""
    prediction_ids = [p.prediction_id for p in predictions] if predictions is not None else [None] * len(churned)
    outcomes = [
        outcome(c, bool(x), at, prediction_id)
        for c, x, prediction_id in zip(customer_ids, churned, prediction_ids, strict=True)
    ]
    aws.outcomes.write(outcomes, request_id, now=at)


def monitor(
    aws: Aws,
    window: tuple[dt.datetime, dt.datetime] = WINDOW,
    lookback_days: float = 7,
    accuracy_scope: AccuracyScope = AccuracyScope.RECENT_OUTCOMES,
) -> MonitoringReport:
    return run_monitor(
        model_name=MODEL,
        registry=aws.registry,
        artifacts=aws.artifacts,
        capture=InferenceCapture(MONITORING_BUCKET, aws.s3, MODEL, sample_rate=0),
        outcomes=aws.outcomes,
        predictions=lambda since, until: audited_predictions(AUDIT_TABLE, aws.dynamodb, since, until),
        window=window,
        outcome_lookback=dt.timedelta(days=lookback_days),
        thresholds=DriftThresholds(),
        accuracy_scope=accuracy_scope,
    )


def shifted(columns: Columns) -> Columns:
    """Day-time usage up 30%, and 40% of the customers now on the international plan."""
    rows = len(columns["total_day_minutes"])
    moved = np.random.default_rng(1).permutation(rows)[: int(rows * 0.4)]
    plans = columns["international_plan"].copy()
    plans[moved] = "yes"
    return {**columns, "total_day_minutes": columns["total_day_minutes"] * 1.3, "international_plan": plans}


def test_traffic_drawn_like_the_training_data_shows_no_drift_and_its_accuracy_is_measured(
    aws: Aws, telecom: Telecom
) -> None:
    # Given v1 in production, the held-out customers served at 12:10 and their outcomes logged at 12:40
    deploy_model(aws, telecom)
    predictions = serve(aws, telecom.held_out, telecom.held_out_ids, minutes(10))
    log_outcomes(aws, telecom.held_out_ids, telecom.held_out_churned, minutes(40))
    # When the monitor runs over 12:00 to 13:00
    report = monitor(aws)
    # Then it judged v1's captured traffic and found no drift
    assert (report.model_name, report.model_version) == (MODEL, VERSION)
    assert (report.window_start, report.window_end) == WINDOW
    assert report.captured_rows == len(telecom.held_out_ids) == 1000
    assert report.drift is not None
    assert report.drift.sufficient_data
    assert report.drift.drift_detected is False, report.drift.drifted_features
    assert report.drift.score_psi is not None
    assert report.drift.score_psi < 0.01
    # And every outcome met its prediction; accuracy is that of the model's decisions on those customers
    decided = np.array([p.churn_probability >= MODEL_THRESHOLD for p in predictions])
    accuracy = report.accuracy
    assert (accuracy.outcomes, accuracy.matched, accuracy.sufficient_data) == (1000, 1000, True)
    assert accuracy.accuracy == round(float(np.mean(decided == telecom.held_out_churned)), 6)
    assert accuracy.confusion_matrix is not None
    assert accuracy.confusion_matrix["tp"] == int((decided & telecom.held_out_churned).sum())


def test_shifted_traffic_is_reported_as_drift_of_the_shifted_features(aws: Aws, telecom: Telecom) -> None:
    # Given v1 in production and held-out customers with more day-time minutes and the international plan
    deploy_model(aws, telecom)
    serve(aws, shifted(telecom.held_out), telecom.held_out_ids, minutes(10))
    # When the monitor runs
    report = monitor(aws)
    # Then drift is detected on exactly the two shifted features
    assert report.drift is not None
    assert report.drift.drift_detected is True
    assert set(report.drift.drifted_features) == {"total_day_minutes", "international_plan"}
    assert report.drift.max_feature_psi > 0.2
    # And without outcomes there is no accuracy verdict
    assert (report.accuracy.outcomes, report.accuracy.sufficient_data) == (0, False)


def test_only_the_production_versions_captured_rows_in_the_window_are_judged(aws: Aws, telecom: Telecom) -> None:
    # Given v1 in production, 300 rows captured for v1 in the window, and rows outside it or of another version
    deploy_model(aws, telecom)
    rows = {name: values[:300] for name, values in telecom.held_out.items()}
    serve(aws, rows, telecom.held_out_ids[:300], minutes(10))
    serve(aws, rows, telecom.held_out_ids[:300], minutes(-10))
    aws.capture.write([a_prediction("C00000", 0.5, version="v0")], {k: v[:1] for k, v in rows.items()}, minutes(20))
    # When the monitor runs
    report = monitor(aws)
    # Then it judged the 300 rows of v1 in the window
    assert report.captured_rows == 300
    assert report.drift is not None
    assert report.drift.rows == 300


def test_predictions_older_than_the_outcome_lookback_are_not_joined(aws: Aws, telecom: Telecom) -> None:
    # Given v1 in production, customers predicted three days before the window, and their outcomes logged in it
    deploy_model(aws, telecom)
    ids = telecom.held_out_ids[:100]
    serve(aws, {name: values[:100] for name, values in telecom.held_out.items()}, ids, T0 - dt.timedelta(days=3))
    log_outcomes(aws, ids, telecom.held_out_churned[:100], minutes(30))
    # When the monitor looks back one day, and then seven
    one_day = monitor(aws, lookback_days=1)
    seven_days = monitor(aws, lookback_days=7)
    # Then the old predictions are out of reach of the first and met by the second
    assert (one_day.accuracy.outcomes, one_day.accuracy.matched) == (100, 0)
    assert (seven_days.accuracy.matched, seven_days.accuracy.sufficient_data) == (100, True)


def test_a_production_model_without_a_stored_baseline_gets_no_drift_verdict(aws: Aws, telecom: Telecom) -> None:
    deploy_model(aws, telecom, with_baseline=False)
    serve(aws, telecom.held_out, telecom.held_out_ids, minutes(10))
    report = monitor(aws)
    assert (report.model_version, report.captured_rows, report.drift) == (VERSION, 1000, None)


def test_without_a_production_model_there_is_nothing_to_judge_for_drift(aws: Aws, telecom: Telecom) -> None:
    # Given rows captured while no model is in production
    serve(aws, telecom.held_out, telecom.held_out_ids, minutes(10))
    # When the monitor runs
    report = monitor(aws)
    # Then it reports no version, no rows and no drift
    assert (report.model_version, report.captured_rows, report.drift) == (None, 0, None)


def first_rows(columns: Columns, rows: int) -> Columns:
    return {name: values[:rows] for name, values in columns.items()}


def test_on_aws_an_outcome_naming_its_prediction_judges_that_one_of_a_customer_scored_twice(
    aws: Aws, telecom: Telecom
) -> None:
    # Given v1 in production and 200 customers served at 12:10, then served again at 12:20 on shifted inputs
    deploy_model(aws, telecom)
    ids = telecom.held_out_ids[:200]
    served = serve(aws, first_rows(telecom.held_out, 200), ids, minutes(10))
    again = serve(aws, first_rows(shifted(telecom.held_out), 200), ids, minutes(20))
    decided = np.array([p.churn_probability >= MODEL_THRESHOLD for p in served])
    assert (decided != np.array([p.churn_probability >= MODEL_THRESHOLD for p in again])).any()
    # And outcomes logged at 12:40 that agree with the 12:10 decisions, naming those predictions
    log_outcomes(aws, ids, decided, minutes(40), predictions=served)
    # When the monitor runs
    report = monitor(aws)
    # Then each outcome judged the prediction it named: the 12:10 decisions, all right
    accuracy = report.accuracy
    assert (accuracy.outcomes, accuracy.matched, accuracy.matched_by_prediction_id) == (200, 200, 200)
    assert (accuracy.matched_by_customer, accuracy.unknown_prediction_ids) == (0, 0)
    assert accuracy.accuracy == 1.0


def test_a_prediction_captured_and_audited_twice_counts_once_in_drift_and_in_accuracy(
    aws: Aws, telecom: Telecom
) -> None:
    # Given v1 in production and 300 customers served at 12:10, whose predictions were captured and audited again
    # at 12:11 (a retried request), and whose outcomes were logged twice (a resent batch)
    deploy_model(aws, telecom)
    ids, rows = telecom.held_out_ids[:300], first_rows(telecom.held_out, 300)
    churned = telecom.held_out_churned[:300]
    served = serve(aws, rows, ids, minutes(10))
    aws.capture.write(served, rows, now=minutes(11))
    audit_predictions(aws, served, minutes(11), request_id="retried")
    log_outcomes(aws, ids, churned, minutes(40), predictions=served)
    log_outcomes(aws, ids, churned, minutes(41), predictions=served, request_id="resent")
    # When the monitor runs
    report = monitor(aws)
    # Then drift judged the 300 predictions once each, the repeats counted apart
    assert (report.captured_rows, report.duplicate_captured_rows) == (300, 300)
    assert report.drift is not None
    assert report.drift.rows == 300
    # And accuracy judged each prediction once
    accuracy = report.accuracy
    assert (accuracy.outcomes, accuracy.matched, accuracy.superseded_outcomes) == (600, 300, 300)
    assert accuracy.confusion_matrix is not None
    assert sum(accuracy.confusion_matrix.values()) == 300
    decided = np.array([p.churn_probability >= MODEL_THRESHOLD for p in served])
    assert accuracy.accuracy == round(float(np.mean(decided == churned)), 6)


def test_an_explicit_window_judges_its_own_traffic_and_nothing_outside_it(aws: Aws, telecom: Telecom) -> None:
    # Given v1 in production and three groups of customers served at 11:50, 12:10 and 12:40
    deploy_model(aws, telecom)
    groups = {"before": (0, minutes(-10)), "inside": (100, minutes(10)), "after": (250, minutes(40))}
    served = {}
    for name, (first, at) in groups.items():
        ids = telecom.held_out_ids[first : first + 100 + (50 if name == "inside" else 0)]
        rows = {column: values[first : first + len(ids)] for column, values in telecom.held_out.items()}
        served[name] = (ids, serve(aws, rows, ids, at))
    # And every group's outcomes logged by prediction id at 13:00, after the window the caller names
    for name, (ids, predictions) in served.items():
        churned = telecom.held_out_churned[groups[name][0] : groups[name][0] + len(ids)]
        log_outcomes(aws, ids, churned, minutes(60), predictions=predictions, request_id=f"outcomes-{name}")
    # When the monitor judges the window 12:00-12:30 named explicitly
    request = MonitorRequest(window_start=minutes(0), window_end=minutes(30))
    report = monitor(aws, window=request.window(24), accuracy_scope=request.accuracy_scope)
    # Then drift judged the 150 rows served inside it, and no other
    assert (report.window_start, report.window_end) == (minutes(0), minutes(30))
    assert report.captured_rows == 150
    assert report.drift is not None
    assert report.drift.rows == 150
    # And accuracy judged exactly the predictions made inside it, by outcomes logged after it
    accuracy = report.accuracy
    assert accuracy.window is not None
    assert accuracy.window.scope is AccuracyScope.WINDOW_PREDICTIONS
    assert (accuracy.window.predictions_from, accuracy.window.predictions_to) == (minutes(0), minutes(30))
    assert (accuracy.outcomes, accuracy.matched, accuracy.matched_by_prediction_id) == (350, 150, 150)
    assert accuracy.unknown_prediction_ids == 200
    ids, inside = served["inside"]
    decided = np.array([p.churn_probability >= MODEL_THRESHOLD for p in inside])
    assert accuracy.accuracy == round(float(np.mean(decided == telecom.held_out_churned[100:250])), 6)


def test_the_monitors_auc_and_brier_score_are_scikit_learns_on_the_telecom_traffic(aws: Aws, telecom: Telecom) -> None:
    # Given v1 in production, the held-out customers served at 12:10 and their outcomes logged by prediction id
    deploy_model(aws, telecom)
    served = serve(aws, telecom.held_out, telecom.held_out_ids, minutes(10))
    log_outcomes(aws, telecom.held_out_ids, telecom.held_out_churned, minutes(40), predictions=served)
    # When the monitor runs
    accuracy = monitor(aws).accuracy
    # Then its AUC and Brier score are scikit-learn's on the same predictions and outcomes
    probabilities = np.array([p.churn_probability for p in served])
    assert accuracy.matched_by_prediction_id == 1000
    assert accuracy.auc == pytest.approx(roc_auc_score(telecom.held_out_churned, probabilities), abs=1e-6)
    assert accuracy.brier_score == pytest.approx(brier_score_loss(telecom.held_out_churned, probabilities), abs=1e-6)


# ---------------------------------------------------------------------- stored reports
def a_report(generated_at: dt.datetime, captured_rows: int = 0) -> MonitoringReport:
    return MonitoringReport(
        model_name=MODEL,
        model_version=VERSION,
        generated_at=generated_at,
        window_start=WINDOW[0],
        window_end=WINDOW[1],
        captured_rows=captured_rows,
        drift=None,
        accuracy=AccuracyReport(window=ACCURACY_WINDOW, outcomes=0, matched=0, sufficient_data=False),
    )


def test_reports_are_kept_by_time_and_the_latest_is_read_back(aws: Aws) -> None:
    # Given no report yet
    assert latest_report(aws.s3, MONITORING_BUCKET, MODEL) is None
    # When two reports are stored, an hour apart
    first = store_report(aws.s3, MONITORING_BUCKET, a_report(minutes(5), captured_rows=1))
    second = store_report(aws.s3, MONITORING_BUCKET, a_report(minutes(65), captured_rows=2))
    # Then each is kept under its time, and the latest is the second, exactly as stored
    assert first.report_key == "monitoring/churn/reports/2026/11/01/120500.json"
    assert second.report_key == "monitoring/churn/reports/2026/11/01/130500.json"
    keys = {item["Key"] for item in aws.s3.list_objects_v2(Bucket=MONITORING_BUCKET)["Contents"]}
    assert keys == {first.report_key, second.report_key, "monitoring/churn/latest.json"}
    assert latest_report(aws.s3, MONITORING_BUCKET, MODEL) == second
    # And another model has no report
    assert latest_report(aws.s3, MONITORING_BUCKET, "other-model") is None


def test_a_monitor_run_is_stored_and_read_back(aws: Aws, telecom: Telecom) -> None:
    # Given v1 in production and its traffic captured
    deploy_model(aws, telecom)
    serve(aws, telecom.held_out, telecom.held_out_ids, minutes(10))
    # When the monitor's report is stored
    stored = store_report(aws.s3, MONITORING_BUCKET, monitor(aws))
    # Then it is the latest report, drift statistics included
    read = latest_report(aws.s3, MONITORING_BUCKET, MODEL)
    assert read == stored
    assert read is not None
    assert read.drift is not None
    assert read.drift.rows == 1000


# ---------------------------------------------------------------------- the monitor's window
UNTIL = dt.datetime(2026, 11, 1, 13, 0, tzinfo=dt.UTC)


def test_a_scheduled_event_monitors_the_default_number_of_hours_up_to_now() -> None:
    # Given an EventBridge scheduled event (its fields are not the monitor's)
    request = MonitorRequest.model_validate({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
    # When its window is computed with a default of 2 hours
    before = utc()
    start, end = request.window(2)
    # Then it ends now and starts two hours earlier
    assert before <= end <= utc()
    assert end - start == dt.timedelta(hours=2)


def test_window_hours_replace_the_default() -> None:
    request = MonitorRequest(window_hours=6, window_end=UNTIL)
    assert request.window(1) == (UNTIL - dt.timedelta(hours=6), UNTIL)
    assert request.accuracy_scope is AccuracyScope.RECENT_OUTCOMES


def test_an_explicit_window_is_kept_in_utc_and_judges_its_own_predictions() -> None:
    # Given a window given in another time zone, as the pilot sends it
    paris = dt.timezone(dt.timedelta(hours=1))
    request = MonitorRequest.model_validate(
        {"window_start": "2026-11-01T08:30:00+01:00", "window_end": "2026-11-01T14:00:00+01:00"}
    )
    # When it is computed
    start, end = request.window(1)
    # Then its start and end are kept, in UTC (the start wins over any number of hours)
    assert (start, end) == (dt.datetime(2026, 11, 1, 8, 30, tzinfo=paris), dt.datetime(2026, 11, 1, 14, tzinfo=paris))
    assert start.utcoffset() == end.utcoffset() == dt.timedelta(0)
    assert MonitorRequest(window_start=T0, window_end=UNTIL, window_hours=5).window(1) == (T0, UNTIL)
    # And its accuracy is that of the predictions made in it
    assert request.accuracy_scope is AccuracyScope.WINDOW_PREDICTIONS


@pytest.mark.parametrize("hours", [0, -1, 24 * 31 + 1])
def test_a_window_of_no_time_or_more_than_a_month_is_refused(hours: float) -> None:
    with pytest.raises(ValidationError, match="window_hours"):
        MonitorRequest(window_hours=hours)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param({"window_start": "2026-11-01T12:00:00"}, "timezone", id="start-without-time-zone"),
        pytest.param(
            {"window_start": "2026-11-01T12:00:00Z", "window_end": "2026-11-01T11:00:00Z"},
            "window_start must be before window_end",
            id="start-after-end",
        ),
        pytest.param(
            {"window_start": "2026-09-01T12:00:00Z", "window_end": "2026-11-01T12:00:00Z"},
            "at most 744 hours",
            id="longer-than-a-month",
        ),
        pytest.param({"window_end": "yesterday"}, "window_end", id="end-not-a-time"),
    ],
)
def test_a_malformed_explicit_window_is_refused(body: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        MonitorRequest.model_validate(body)


def test_the_spans_of_each_accuracy_scope() -> None:
    # Given a window of 12:00 to 13:00, monitored at 15:00 with a week's outcome lookback
    now, week = T0 + dt.timedelta(hours=3), dt.timedelta(days=7)
    # When the spans of each scope are computed
    recent = AccuracyWindow.of(AccuracyScope.RECENT_OUTCOMES, WINDOW, week, now)
    own = AccuracyWindow.of(AccuracyScope.WINDOW_PREDICTIONS, WINDOW, week, now)
    # Then the hourly alarm's joins the window's outcomes with the week's predictions before it...
    assert (recent.outcomes_logged_from, recent.outcomes_logged_to) == WINDOW
    assert (recent.predictions_from, recent.predictions_to) == (T0 - week, WINDOW[1])
    # ...and an explicit window's judges its own predictions by the outcomes logged since it began
    assert (own.predictions_from, own.predictions_to) == WINDOW
    assert (own.outcomes_logged_from, own.outcomes_logged_to) == (T0, now)
