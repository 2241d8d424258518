"""The pilot's heavy steps: prepare data, train, evaluate, export and register (pandas + scikit-learn).

They run in the container-image pipeline function; each reads its inputs from the artifact bucket by
reference (verified by SHA-256) and writes its outputs under `runs/<execution>/`.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from typing import Any

import numpy as np
import pandas as pd

from mlops.audit.events import model_event
from mlops.audit.queue import AuditLog
from mlops.audit.records import AuditEventType
from mlops.core.artifacts import ArtifactRef, ArtifactStore, sha256_hex
from mlops.core.clock import utc_now
from mlops.core.errors import DataValidationError, ParityError
from mlops.data.dataset import frame_to_columns, labels, prepared_to_frame, read_dataset, split_dataset
from mlops.data.feature_fitting import fit_feature_spec
from mlops.data.feature_spec import FeatureSpec
from mlops.data.features import prepare_features
from mlops.data.schema import DataSchema
from mlops.feature_store.ingestion import ingest_file, training_frame_from_store
from mlops.feature_store.offline import OfflineFeatureStore
from mlops.feature_store.online import (
    FeatureGroupCatalog,
    IngestionReport,
    OnlineFeatureStore,
    feature_group_from_schema,
)
from mlops.monitoring.baseline import build_baseline
from mlops.pilot.payloads import (
    MODELS_PREFIX,
    PARITY_TOLERANCE,
    DatasetReport,
    EvaluationReport,
    RegistrationReport,
    StepRequest,
    TrainingReport,
    run_prefix,
)
from mlops.pilot.use_case import resolve_use_case
from mlops.registry.model_card import ModelCard, build_model_card
from mlops.registry.model_card_markdown import render_markdown
from mlops.registry.store import ModelRegistry, ModelStatus, ModelVersion, StatusChange
from mlops.serving.onnx_model import OnnxChurnModel
from mlops.training.evaluation import evaluate
from mlops.training.export import dump_skops, export_onnx, load_skops, max_probability_difference
from mlops.training.selection import train_and_select
from mlops.training.threshold import ThresholdChoice, choose_threshold

SMOKE_TEST_ROWS = 50
LABEL_TIME = "_label_time"


def ingest_features(
    request: StepRequest,
    data: ArtifactStore,
    group_name: str,
    ttl_seconds: int,
    online: OnlineFeatureStore,
    offline: OfflineFeatureStore,
    catalog: FeatureGroupCatalog,
    workers: int,
) -> IngestionReport:
    """Materialise the pilot's data file into the feature store, as observed at `features_as_of`."""
    pilot = request.pilot
    schema = DataSchema.from_json(data.get_bytes(pilot.schema_key))
    group = feature_group_from_schema(schema, name=group_name, ttl_seconds=ttl_seconds)
    as_of = pilot.features_as_of or request.execution_start_time
    if as_of is None:
        raise DataValidationError(field="features_as_of", message="no snapshot time and no execution start time")
    raw = data.get_bytes(pilot.data_key)
    return ingest_file(raw, pilot.data_key, schema, group, as_of, online, offline, catalog, workers=workers)


def prepare_data(
    request: StepRequest, data: ArtifactStore, artifacts: ArtifactStore, offline: OfflineFeatureStore | None = None
) -> DatasetReport:
    """Validate the data set and split it. After feature ingestion the features are read back from the offline
    store as of the snapshot (point in time) and only the ids and labels come from the file."""
    pilot = request.pilot
    raw = data.get_bytes(pilot.data_key)
    schema_bytes = data.get_bytes(pilot.schema_key)
    schema = DataSchema.from_json(schema_bytes)
    # read_dataset refuses missing columns and text in numerical columns, naming the column
    frame = read_dataset(io.BytesIO(raw), schema, require_target=True)
    feature_source = "file"
    if pilot.features is not None:
        if offline is None:
            raise DataValidationError(field="features", message="features were ingested but no offline store is set")
        ingested = pilot.features
        group = feature_group_from_schema(
            schema, name=ingested.feature_group, version=ingested.group_version, **_ttl(ingested.ttl_seconds)
        )
        # Each customer is read at its own label time (the schema's label_time_column, else the snapshot the
        # file describes), within the group's TTL, as Feast's point-in-time join would.
        label_time = schema.label_time_column or LABEL_TIME
        if schema.label_time_column is None:
            frame[LABEL_TIME] = pd.Timestamp(ingested.as_of)
        frame = training_frame_from_store(frame, schema, group, None, offline, label_time_column=label_time)
        frame = frame.drop(columns=[LABEL_TIME], errors="ignore")
        feature_source = (
            f"feature store {group.name} v{group.version}, each customer at its label time "
            f"({'column ' + schema.label_time_column if schema.label_time_column else ingested.as_of.isoformat()})"
        )
    try:
        use_case = resolve_use_case(schema, pilot.targets, pilot.campaign_assumptions, pilot.experiment_design.baseline)
    except ValueError as error:
        raise DataValidationError(field="schema", message=str(error)) from error
    frame, dropped = validate_dataset(frame, schema, min_per_class=2 * pilot.cv_folds)
    # Three disjoint parts: training, the held-out evaluation, and a later window of customers that only the
    # monitoring sees (its outcomes judge the served model on data no earlier step used).
    rest, test = split_dataset(frame, schema, test_size=pilot.test_size, seed=pilot.seed)
    window_share = pilot.monitoring_size / (1 - pilot.test_size)
    train, window = split_dataset(rest, schema, test_size=window_share, seed=pilot.seed)
    prefix = run_prefix(request.execution_name)
    y = labels(frame, schema)

    def csv_artifact(name: str, part: pd.DataFrame) -> ArtifactRef:
        return artifacts.put(f"{prefix}/{name}.csv", part.to_csv(index=False).encode(), "text/csv")

    return DatasetReport(
        data_key=pilot.data_key,
        dataset_sha256=sha256_hex(raw),
        rows=len(frame),
        train_rows=len(train),
        test_rows=len(test),
        monitoring_rows=len(window),
        positive_rate=round(float(y.mean()), 6),
        missing_values={c: int(n) for c, n in frame[schema.feature_columns].isna().sum().items() if n},
        dropped_rows=dropped,
        feature_source=feature_source,
        use_case=use_case,
        schema_ref=artifacts.put(f"{prefix}/schema.json", schema_bytes, "application/json"),
        train=csv_artifact("train", train),
        test=csv_artifact("test", test),
        monitoring_window=csv_artifact("monitoring_window", window),
    )


def _ttl(seconds: int | None) -> dict[str, int]:
    return {} if seconds is None else {"ttl_seconds": seconds}


def validate_dataset(frame: pd.DataFrame, schema: DataSchema, min_per_class: int) -> tuple[pd.DataFrame, int]:
    """Refuse data the pilot cannot learn from (duplicate ids, too few rows of a class); drop rows without a
    label. Returns (frame, dropped rows). Columns and types were checked when the file was read."""
    labelled = frame[frame[schema.target].notna()]
    if labelled[schema.id_column].duplicated().any():
        duplicate = labelled[schema.id_column][labelled[schema.id_column].duplicated()].iloc[0]
        raise DataValidationError(field=schema.id_column, message=f"duplicate id {duplicate!r}")
    y = labels(labelled, schema)
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if min(positives, negatives) < min_per_class:
        raise DataValidationError(
            field=schema.target,
            message=f"need at least {min_per_class} rows of each class, got {positives} positive "
            f"({schema.positive_label!r}) and {negatives} negative",
        )
    return labelled.reset_index(drop=True), len(frame) - len(labelled)


def _load_split(artifacts: ArtifactStore, ref: ArtifactRef, schema: DataSchema) -> pd.DataFrame:
    return read_dataset(io.BytesIO(artifacts.get_verified(ref)), schema)


def _schema_of(request: StepRequest, artifacts: ArtifactStore) -> DataSchema:
    dataset = request.require(request.pilot.dataset, "dataset")
    return DataSchema.from_json(artifacts.get_verified(dataset.schema_ref))


def train(request: StepRequest, artifacts: ArtifactStore) -> TrainingReport:
    dataset = request.require(request.pilot.dataset, "dataset")
    schema = _schema_of(request, artifacts)
    train_frame = _load_split(artifacts, dataset.train, schema)
    started = time.perf_counter()
    spec = fit_feature_spec(frame_to_columns(train_frame, schema), schema)
    result = train_and_select(train_frame, spec, seed=request.pilot.seed, cv_folds=request.pilot.cv_folds)
    elapsed = time.perf_counter() - started
    prefix = run_prefix(request.execution_name)
    use_case = request.pilot.use_case
    assumptions = use_case.campaign
    choice = choose_threshold(
        result.validation_probabilities,
        result.validation_labels,
        value_per_saved_customer_usd=assumptions.annual_value_per_customer_usd * assumptions.offer_acceptance_rate,
        offer_cost_usd=assumptions.offer_cost_usd,
        source=f"out-of-fold predictions of {result.selected} on the training split ({request.pilot.cv_folds}-fold CV)",
        min_accuracy=use_case.targets.accuracy,
    )
    return TrainingReport(
        selected_algorithm=result.selected,
        cv_auc=result.cv_auc,
        training_seconds=round(elapsed, 3),
        decision_threshold=choice.threshold,
        threshold_choice=artifacts.put(
            f"{prefix}/threshold_choice.json", choice.model_dump_json().encode(), "application/json"
        ),
        validation_scores=artifacts.put(
            f"{prefix}/validation_scores.json",
            json.dumps(np.asarray(result.validation_probabilities, dtype=float).round(8).tolist()).encode(),
            "application/json",
        ),
        model=artifacts.put(f"{prefix}/model.skops", dump_skops(result.pipeline)),
        feature_spec=artifacts.put(
            f"{prefix}/feature_spec.json", spec.model_dump_json(by_alias=True).encode(), "application/json"
        ),
    )


def _load_trained(request: StepRequest, artifacts: ArtifactStore) -> tuple[Any, FeatureSpec]:
    training = request.require(request.pilot.training, "training")
    pipeline = load_skops(artifacts.get_verified(training.model))
    spec = FeatureSpec.model_validate_json(artifacts.get_verified(training.feature_spec))
    return pipeline, spec


def evaluate_model(request: StepRequest, artifacts: ArtifactStore) -> EvaluationReport:
    dataset = request.require(request.pilot.dataset, "dataset")
    pipeline, spec = _load_trained(request, artifacts)
    test = _load_split(artifacts, dataset.test, spec.data_schema)
    prepared = prepare_features(frame_to_columns(test, spec.data_schema), spec)
    probabilities = pipeline.predict_proba(prepared_to_frame(prepared))[:, 1]
    training = request.require(request.pilot.training, "training")
    y_test = labels(test, spec.data_schema)
    metrics = evaluate(probabilities, y_test, threshold=training.decision_threshold)
    at_half = evaluate(probabilities, y_test, threshold=0.5)
    targets = request.pilot.use_case.targets
    failed = [
        f"{name} {value:.4f} < {target}"
        for name, value, target in (
            ("accuracy", metrics.accuracy, targets.accuracy),
            ("auc_roc", metrics.roc_auc, targets.auc_roc),
        )
        if value is not None and value < target
    ]
    if training.threshold_choice is not None:
        choice = ThresholdChoice.model_validate_json(artifacts.get_verified(training.threshold_choice))
        if not choice.meets_min_accuracy:
            failed.insert(
                0,
                f"no threshold reaches out-of-fold accuracy {targets.accuracy}: the best is "
                f"{choice.best_accuracy:.4f} at {choice.best_accuracy_threshold}",
            )
    reported = metrics.model_dump() | {
        "at_threshold_0_5": {k: v for k, v in at_half.model_dump().items() if k not in ("roc_auc", "pr_auc")}
    }
    return EvaluationReport(metrics=reported, meets_targets=not failed, failed_targets=failed)


def register_model(
    request: StepRequest, artifacts: ArtifactStore, registry: ModelRegistry, trail: AuditLog, model_name: str
) -> RegistrationReport:
    """Export to ONNX (refused unless it scores like scikit-learn), store the version's artifacts and model card,
    register it awaiting approval (audited), and keep reference rows for the smoke test."""
    pilot = request.pilot
    dataset = request.require(pilot.dataset, "dataset")
    training = request.require(pilot.training, "training")
    evaluation = request.require(pilot.evaluation, "evaluation")
    pipeline, spec = _load_trained(request, artifacts)
    test = _load_split(artifacts, dataset.test, spec.data_schema)
    test_columns = frame_to_columns(test, spec.data_schema)
    prepared = prepare_features(test_columns, spec)

    onnx_bytes = export_onnx(pipeline, spec)
    parity = max_probability_difference(pipeline, onnx_bytes, prepared)
    if parity > PARITY_TOLERANCE:
        raise ParityError(field="onnx", message=f"ONNX and scikit-learn differ by {parity:.2e} > {PARITY_TOLERANCE}")

    version = new_version_id(request.execution_name)
    prefix = f"{MODELS_PREFIX}/{model_name}/{version}"
    stored = {
        "onnx": artifacts.put(f"{prefix}/model.onnx", onnx_bytes),
        "sklearn": artifacts.put(f"{prefix}/model.skops", artifacts.get_verified(training.model)),
        "feature_spec": artifacts.put(
            f"{prefix}/feature_spec.json", spec.model_dump_json(by_alias=True).encode(), "application/json"
        ),
    }
    # What drift monitoring compares served inputs with: the training rows' features, and the out-of-fold scores of
    # those rows (never the traffic it will judge: the held-out rows are the campaign's customers).
    served_model = OnnxChurnModel(onnx_bytes, spec)
    if training.validation_scores is None:
        raise ValueError("training has no validation_scores: retrain with this version of the pilot")
    validation_scores = np.asarray(json.loads(artifacts.get_verified(training.validation_scores)), dtype=float)
    train = _load_split(artifacts, dataset.train, spec.data_schema)
    baseline = build_baseline(frame_to_columns(train, spec.data_schema), validation_scores, spec.data_schema)
    stored["drift_baseline"] = artifacts.put(
        f"{prefix}/drift_baseline.json", baseline.model_dump_json().encode(), "application/json"
    )
    # Global importance on the held-out rows, with the same explainer the explain function serves.
    # shap (and matplotlib with it) only here: the other pipeline steps' cold starts never import it.
    from mlops.serving.global_importance import explainability_summary
    from mlops.serving.tree_shap import TreeShapExplainer

    explainability = explainability_summary(TreeShapExplainer(pipeline, spec), prepared)
    now = utc_now()
    history = [
        StatusChange(
            status=ModelStatus.PENDING_APPROVAL,
            at=now,
            by=f"pilot:{request.execution_name}",
            reason="registered after the quality gate (accuracy and auc_roc at or above target)",
        )
    ]
    card = model_card(
        request, model_name, version, spec, pipeline, stored, parity, explainability, test, prepared, history
    )
    stored["model_card"] = artifacts.put(
        f"{prefix}/model_card.json", card.model_dump_json(indent=2).encode(), "application/json"
    )
    stored["model_card_markdown"] = artifacts.put(
        f"{prefix}/model_card.md", render_markdown(card).encode(), "text/markdown"
    )

    registry.register(
        ModelVersion(
            model_name=model_name,
            version=version,
            status=ModelStatus.PENDING_APPROVAL,
            created_at=now,
            algorithm=training.selected_algorithm,
            threshold=training.decision_threshold,
            metrics={k: v for k, v in evaluation.metrics.items() if isinstance(v, int | float)},
            artifacts=stored,
            dataset_sha256=dataset.dataset_sha256,
            execution_arn=request.execution_id,
            status_history=history,
        )
    )
    smoke_rows = reference_rows(test, test_columns, spec, served_model)
    report = RegistrationReport(
        model_version=version,
        artifacts=stored,
        parity_max_abs_diff=float(parity),
        smoke_test_rows=artifacts.put(
            f"{run_prefix(request.execution_name)}/smoke_test_rows.json",
            json.dumps(smoke_rows).encode(),
            "application/json",
        ),
    )
    trail.append(
        model_event(
            AuditEventType.MODEL_REGISTERED,
            model_name,
            version,
            actor=f"pilot:{request.execution_name}",
            status=ModelStatus.PENDING_APPROVAL.value,  # every version is registered awaiting approval
            execution_arn=request.execution_id,
            dataset_sha256=dataset.dataset_sha256,
            artifacts={name: ref.sha256 for name, ref in stored.items()},
        )
    )
    return report


def new_version_id(execution_name: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    return f"v{stamp}-{sha256_hex(execution_name.encode())[:6]}"


def reference_rows(
    test: pd.DataFrame, columns: dict[str, np.ndarray], spec: FeatureSpec, model: OnnxChurnModel
) -> list[dict[str, Any]]:
    """Held-out rows as API requests, each with the probability the exported graph gives it."""
    head = {name: values[:SMOKE_TEST_ROWS] for name, values in columns.items()}
    probabilities, _ = model.score_columns(head)
    schema = spec.data_schema
    rows = []
    for i in range(min(SMOKE_TEST_ROWS, len(test))):
        features = {name: _json_value(head[name][i]) for name in schema.feature_columns}
        rows.append(
            {
                "customer_id": str(test[schema.id_column].iloc[i]),
                "features": features,
                "churn_probability": round(float(probabilities[i]), 6),
            }
        )
    return rows


def _json_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def model_card(
    request: StepRequest,
    model_name: str,
    version: str,
    spec: FeatureSpec,
    pipeline: Any,
    stored: dict[str, ArtifactRef],
    parity: float,
    explainability: dict[str, Any],
    test: pd.DataFrame,
    prepared: Any,
    status_history: list[StatusChange],
) -> ModelCard:
    """The model card at registration (`mlops.registry.model_card`): metrics overall and per segment of the held-out
    split, limitations, the explainability summary, lineage and the approval history so far."""
    pilot = request.pilot
    dataset = request.require(pilot.dataset, "dataset")
    training = request.require(pilot.training, "training")
    evaluation = request.require(pilot.evaluation, "evaluation")
    classifier = pipeline.steps[-1][1]
    features = pilot.features
    return build_model_card(
        model_name=model_name,
        version=version,
        algorithm=training.selected_algorithm,
        created_at=status_history[0].at,
        threshold=training.decision_threshold,
        artifacts=stored,
        data_key=dataset.data_key,
        dataset_sha256=dataset.dataset_sha256,
        rows=dataset.rows,
        train_rows=dataset.train_rows,
        test_rows=dataset.test_rows,
        positive_rate=dataset.positive_rate,
        feature_source=dataset.feature_source,
        metrics=evaluation.metrics,
        probabilities=pipeline.predict_proba(prepared_to_frame(prepared))[:, 1],
        labels=labels(test, spec.data_schema),
        test_frame=test,
        schema=spec.data_schema,
        explainability=explainability,
        status_history=status_history,
        execution_arn=request.execution_id,
        execution_name=request.execution_name,
        feature_group=features.feature_group if features else None,
        feature_group_version=features.group_version if features else None,
        features_as_of=features.as_of if features else None,
        previous_production_version=pilot.environment.production_version if pilot.environment else None,
        seed=pilot.seed,
        training={
            "parameters": {k: v for k, v in classifier.get_params().items() if isinstance(v, int | float | str | bool)},
            "candidates_cv_auc": training.cv_auc,
            "cv_folds": pilot.cv_folds,
            "training_seconds": training.training_seconds,
            "onnx_parity_max_abs_diff": parity,
            "missing_values": dataset.missing_values,
            "features": {
                "numerical": spec.model_numerical,
                "categorical": spec.model_categorical,
                "derived": spec.derived,
                "imputation": {"numerical_medians": spec.numeric_fill, "categorical_modes": spec.categorical_fill},
                "high_value_threshold": spec.high_value_threshold,
            },
        },
    )
