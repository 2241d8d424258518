"""TreeSHAP explanations (mlops.serving.explain): additivity, the map back to input features, reasons, ?top=N, the
rule that only the served version is explained, and every explanation audited before it is returned. Both
candidates are trained on the telecom file through the real training code."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from audit_helpers import TABLE, FailingPuts, TickingClock, mocked_audit_aws, no_sleep
from helpers import TELECOM_CSV, TELECOM_SCHEMA, load_template
from mlops.api.contracts import MAX_REASONS, Explanation, FeatureContribution, PredictRequest
from mlops.audit.queries import query_audit
from mlops.audit.trail import AuditTrail
from mlops.core.artifacts import ArtifactStore
from mlops.core.errors import (
    ArtifactIntegrityError,
    AuditUnavailableError,
    FeatureValidationError,
    VersionNotDeployedError,
)
from mlops.core.settings import ScoringSettings
from mlops.data.dataset import frame_to_columns, labels, prepared_to_frame, read_dataset, split_dataset
from mlops.data.derived_features import DERIVED_BY_NAME
from mlops.data.feature_fitting import fit_feature_spec
from mlops.data.feature_spec import FeatureSpec
from mlops.data.features import prepare_features
from mlops.data.schema import DataSchema
from mlops.registry.store import ModelStatus, ModelVersion, ProductionAlias
from mlops.serving.explain import (
    ExplainableModel,
    ExplanationService,
    explain_requests,
    load_explainable_version,
    reason,
    served_model,
)
from mlops.serving.global_importance import explainability_summary
from mlops.serving.scoring import ModelProvider, score_and_prepare
from mlops.training.candidates import CANDIDATES, build_pipeline
from mlops.training.export import dump_skops, export_onnx
from mlops.training.selection import train_and_select

ADDITIVITY_TOLERANCE = 1e-6


class InMemoryS3:
    """The two S3 calls ArtifactStore makes, on a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_object(self, *, Key: str, Body: bytes, **_: Any) -> None:  # boto3's argument names
        self.objects[Key] = Body

    def get_object(self, *, Key: str, **_: Any) -> dict[str, Any]:
        return {"Body": io.BytesIO(self.objects[Key])}


def model_version(version: str, artifacts: dict[str, Any] | None = None) -> ModelVersion:
    return ModelVersion(
        model_name="churn",
        version=version,
        status=ModelStatus.DEPLOYED,
        created_at="2026-11-24T00:00:00.000Z",
        algorithm="gradient_boosting",
        threshold=0.5,
        metrics={},
        artifacts=artifacts or {},
        dataset_sha256="0" * 64,
    )


@dataclass
class Telecom:
    schema: DataSchema
    data: pd.DataFrame
    test: pd.DataFrame
    spec: FeatureSpec
    train: pd.DataFrame
    pipelines: dict[str, Pipeline]
    models: dict[str, ExplainableModel]


def register(
    pipeline: Pipeline, spec: FeatureSpec, version: str, s3: InMemoryS3 | None = None
) -> tuple[ModelVersion, ArtifactStore]:
    """Store a pipeline's artifacts as RegisterModel does, and describe the version that points at them."""
    store = ArtifactStore("artifacts", s3 or InMemoryS3())
    artifacts = {
        "onnx": store.put(f"{version}/model.onnx", export_onnx(pipeline, spec)),
        "sklearn": store.put(f"{version}/model.skops", dump_skops(pipeline)),
        "feature_spec": store.put(f"{version}/feature_spec.json", spec.model_dump_json(by_alias=True).encode()),
    }
    return model_version(version, artifacts), store


@pytest.fixture(scope="module")
def telecom() -> Telecom:
    schema = DataSchema.from_file(TELECOM_SCHEMA)
    data = read_dataset(TELECOM_CSV, schema, require_target=True)
    train, test = split_dataset(data, schema, test_size=0.2, seed=42)
    spec = fit_feature_spec(frame_to_columns(train, schema), schema)
    # One candidate at a time, so that each is refitted (2 folds: the CV score is not what is tested here).
    pipelines = {
        name: train_and_select(train, spec, seed=42, cv_folds=2, candidates={name: factory}).pipeline
        for name, factory in CANDIDATES.items()
    }
    # Explained as served: through the registry's artifacts (ONNX, skops, spec), verified and loaded back
    models = {name: load_explainable_version(*register(p, spec, f"v-{name}")) for name, p in pipelines.items()}
    return Telecom(schema=schema, data=data, test=test, spec=spec, train=train, pipelines=pipelines, models=models)


def requests_of(frame: pd.DataFrame, schema: DataSchema) -> list[PredictRequest]:
    records = frame[[schema.id_column, *schema.feature_columns]].to_dict("records")
    return [PredictRequest(customer_id=record.pop(schema.id_column), features=record) for record in records]


def customer(telecom: Telecom, customer_id: str) -> PredictRequest:
    (request,) = requests_of(telecom.data[telecom.data[telecom.schema.id_column] == customer_id], telecom.schema)
    return request


def serving(model: ExplainableModel) -> ModelProvider[ExplainableModel]:
    """A provider whose production alias names the model's version, which it serves."""
    alias = ProductionAlias(model_name="churn", version=model.version.version, deployment_id="d", deployed_at="now")
    registry = SimpleNamespace(get_production=lambda _: alias, get=lambda _, version: model.version)
    return ModelProvider(registry, None, "churn", 3600, loader=lambda version, _: model)


def explain_one(telecom: Telecom, request: PredictRequest, top: int | None = None) -> Explanation:
    (explanation,) = explain_requests([request], telecom.models["gradient_boosting"], top=top)
    return explanation


# ------------------------------------------------------------------------------------------ fast tests


def test_a_reason_is_a_short_sentence_in_the_output_space_units() -> None:
    # Given contributions of a count, a categorical and a negligible amount
    calls = FeatureContribution(
        feature="number_customer_service_calls", value=4.0, imputed=False, contribution=1.517, sources=[]
    )
    plan = FeatureContribution(feature="international_plan", value="no", imputed=False, contribution=-0.21, sources=[])
    tiny = FeatureContribution(feature="total_day_minutes", value=129.1, imputed=False, contribution=0.001, sources=[])
    # When they are put into words / Then each says what, how much and which way, in the space's units
    assert reason(calls, "log_odds").text == "customer service calls = 4 raises churn risk by 1.52 log-odds"
    assert reason(plan, "probability").text == "international plan = no lowers churn probability by 0.21"
    assert reason(plan, "probability").direction == "lowers"
    assert reason(tiny, "log_odds").text == "total day minutes = 129.1 raises churn risk by less than 0.01 log-odds"


def test_only_the_served_version_is_explained_and_a_fresh_deployment_is_seen_at_once() -> None:
    # Given a provider serving v1 that re-reads the alias only every hour
    versions = {name: model_version(name) for name in ("v1", "v2")}
    alias = {"version": "v1"}
    registry = SimpleNamespace(
        get_production=lambda _: ProductionAlias(
            model_name="churn", version=alias["version"], deployment_id="d", deployed_at="now"
        ),
        get=lambda _, version: versions[version],
    )
    provider = ModelProvider(
        registry, None, "churn", 3600, clock=lambda: 0.0, loader=lambda version, _: SimpleNamespace(version=version)
    )
    assert served_model(provider, None).version.version == "v1"
    # When v2 is deployed, within the refresh interval
    alias["version"] = "v2"
    # Then a request naming no version is still explained with v1 (the alias is not re-read yet)
    assert served_model(provider, None).version.version == "v1"
    # And a request naming v2 makes the alias re-read at once, and v2 is explained
    assert served_model(provider, "v2").version.version == "v2"
    # And a request naming the retired v1 is refused, naming both versions
    with pytest.raises(VersionNotDeployedError, match=r"v1 is not deployed.*serves v2") as refused:
        served_model(provider, "v1")
    assert refused.value.field == "model_version"


def test_the_template_gives_the_explain_function_its_settings_read_only_access_and_both_routes() -> None:
    # Given the ExplainFunction of the template
    template = load_template()
    function = template["Resources"]["ExplainFunction"]
    properties = function["Properties"]
    global_variables = template["Globals"]["Function"]["Environment"]["Variables"]
    variables = {**global_variables, **properties["Environment"]["Variables"]}
    # Then every required setting is set, and the alias is re-read as often as the scoring function does
    required = {name.upper() for name, field in ScoringSettings.model_fields.items() if field.is_required()}
    assert required <= set(variables)
    scoring = template["Resources"]["ScoringFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["MODEL_REFRESH_SECONDS"] == scoring["MODEL_REFRESH_SECONDS"]
    # And it may only queue its audit records exactly as the scoring function does, and read the registry,
    # the stored features and the artifacts
    audit_statement, *policies = properties["Policies"]
    scoring_policies = template["Resources"]["ScoringFunction"]["Properties"]["Policies"]
    assert audit_statement in scoring_policies
    assert audit_statement == {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["AuditQueue", "QueueName"]}}}
    assert [(next(iter(p)), next(iter(p.values()))) for p in policies] == [
        ("DynamoDBReadPolicy", {"TableName": {"Ref": "ModelRegistryTable"}}),
        ("DynamoDBReadPolicy", {"TableName": {"Ref": "FeatureStoreTable"}}),
        ("S3ReadPolicy", {"BucketName": {"Ref": "ArtifactBucket"}}),
    ]
    # And it is the image built from its Dockerfile, answering both routes of the API
    assert properties["PackageType"] == "Image"
    assert function["Metadata"]["Dockerfile"] == "functions/explain/Dockerfile"
    routes = {(e["Properties"]["Path"], e["Properties"]["Method"]) for e in properties["Events"].values()}
    assert routes == {("/explain", "post"), ("/explain/batch", "post")}


# ------------------------------------------------------------------------------------------ telecom


@pytest.mark.slow
@pytest.mark.parametrize(
    ("candidate", "output_space"), [("random_forest", "probability"), ("gradient_boosting", "log_odds")]
)
def test_contributions_add_up_to_the_model_output_on_every_held_out_row(
    telecom: Telecom, candidate: str, output_space: str
) -> None:
    # Given every held-out customer sent as an API request
    model = telecom.models[candidate]
    requests = requests_of(telecom.test, telecom.schema)
    # When all of them are explained
    explanations = explain_requests(requests, model)
    # Then base value + contributions equal the scikit-learn model's own output, computed independently
    pipeline = telecom.pipelines[candidate]
    prepared = prepare_features(frame_to_columns(telecom.test, telecom.schema), telecom.spec)
    frame = prepared_to_frame(prepared)
    pipeline_output = (
        pipeline.decision_function(frame) if output_space == "log_odds" else pipeline.predict_proba(frame)[:, 1]
    )
    explained = np.array([e.base_value + sum(c.contribution for c in e.contributions) for e in explanations])
    error = np.abs(explained - pipeline_output)
    print(f"\n{candidate}: max additivity error {error.max():.2e} over {len(error)} rows")
    assert len(explanations) == len(telecom.test) == 800
    assert error.max() < ADDITIVITY_TOLERANCE
    assert {e.output_space for e in explanations} == {output_space}
    np.testing.assert_allclose([e.model_output for e in explanations], pipeline_output, rtol=0, atol=1e-12)
    # And the probability is the one the served ONNX graph gives (what /predict answers, to 6 decimals)
    probabilities = model.served.model.predict_proba(prepared)
    served = np.array([e.churn_probability for e in explanations])
    np.testing.assert_allclose(served, probabilities, rtol=0, atol=5e-7)
    # And the output space maps to it: the logistic of the log-odds, or the probability itself (up to the
    # float32 ONNX graph's difference from scikit-learn, below 1e-6, plus that rounding)
    as_probability = 1 / (1 + np.exp(-pipeline_output)) if output_space == "log_odds" else pipeline_output
    np.testing.assert_allclose(served, as_probability, rtol=0, atol=1.5e-6)


@pytest.mark.slow
@pytest.mark.parametrize("candidate", list(CANDIDATES))
def test_the_explained_columns_are_exactly_what_the_pipeline_gives_its_classifier(
    telecom: Telecom, candidate: str
) -> None:
    # Given the held-out rows, one of them with a state the encoder never saw (imputation would replace it)
    prepared = prepare_features(frame_to_columns(telecom.test, telecom.schema), telecom.spec)
    states = prepared.inputs["state"].copy()
    states[0, 0] = "Atlantis"
    prepared = prepared._replace(inputs={**prepared.inputs, "state": states})
    # When the explainer builds the classifier's input columns itself
    columns = telecom.models[candidate].explainer.model_columns(prepared)
    # Then they equal the pipeline's own preprocessing, value for value
    expected = telecom.pipelines[candidate].named_steps["preprocess"].transform(prepared_to_frame(prepared))
    np.testing.assert_array_equal(columns, expected)


@pytest.mark.slow
@pytest.mark.parametrize("candidate", list(CANDIDATES))
def test_contributions_cover_exactly_the_schema_input_features(telecom: Telecom, candidate: str) -> None:
    # Given a customer / When explained
    (explanation,) = explain_requests([customer(telecom, "C00011")], telecom.models[candidate])
    features = [c.feature for c in explanation.contributions]
    # Then every input feature of the schema appears once, no one-hot column or derived feature does
    assert sorted(features) == sorted(telecom.schema.feature_columns)
    assert len(features) == 19
    # And they are sorted by magnitude, with nothing left out
    magnitudes = [abs(c.contribution) for c in explanation.contributions]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert explanation.remaining_contribution == 0.0
    # And each says where it came from: one-hot blocks for categoricals, equal shares of derived features
    by_feature = {c.feature: c for c in explanation.contributions}
    assert [s.model_dump() for s in by_feature["state"].sources] == [
        {"model_input": "state", "kind": "one_hot", "share": 1.0}
    ]
    calls = {(s.model_input, s.kind, s.share) for s in by_feature["number_customer_service_calls"].sources}
    assert calls == {("number_customer_service_calls", "raw", 1.0), ("high_service_calls", "derived", 1.0)}
    assert ("total_minutes", "derived", 0.25) in {
        (s.model_input, s.kind, s.share) for s in by_feature["total_day_minutes"].sources
    }
    for derived in telecom.spec.derived:
        shares = [s.share for c in explanation.contributions for s in c.sources if s.model_input == derived]
        assert len(shares) == len(DERIVED_BY_NAME[derived].sources)
        assert sum(shares) == pytest.approx(1.0)
    assert "split equally" in explanation.method


@pytest.mark.slow
@pytest.mark.parametrize("candidate", list(CANDIDATES))
def test_a_frequent_caller_who_churned_is_explained_by_his_service_calls(telecom: Telecom, candidate: str) -> None:
    # Given customer C00011: 4 customer service calls, and he churned
    request = customer(telecom, "C00011")
    assert request.features["number_customer_service_calls"] == 4
    # When explained
    (explanation,) = explain_requests([request], telecom.models[candidate])
    # Then he is high risk and the first reason is his service calls, raising the risk
    assert explanation.churn_prediction
    top = explanation.reasons[0]
    assert top.feature == "number_customer_service_calls"
    assert top.direction == "raises"
    assert top.text.startswith("customer service calls = 4 raises churn")
    assert explanation.contributions[0].value == 4.0


@pytest.mark.slow
def test_reasons_are_the_five_largest_contributions_in_words(telecom: Telecom) -> None:
    # Given a frequent caller / When explained by the gradient boosting model (log-odds)
    explanation = explain_one(telecom, customer(telecom, "C00011"))
    # Then the reasons are the five largest contributions, as short plain sentences
    assert len(explanation.reasons) == MAX_REASONS
    assert [r.feature for r in explanation.reasons] == [c.feature for c in explanation.contributions[:MAX_REASONS]]
    for item, contribution in zip(explanation.reasons, explanation.contributions, strict=False):
        label, _, rest = item.text.partition(" = ")
        assert "_" not in label
        assert len(item.text) < 80
        assert item.direction == ("raises" if contribution.contribution > 0 else "lowers")
        assert f"{item.direction} churn risk by {abs(contribution.contribution):.2f} log-odds" in rest
    print("\n" + "\n".join(r.text for r in explanation.reasons))


@pytest.mark.slow
def test_top_n_keeps_the_largest_contributions_and_sums_up_the_rest(telecom: Telecom) -> None:
    # Given one customer explained in full
    request = customer(telecom, "C00011")
    full = explain_one(telecom, request)
    # When only the top 3 are asked for
    top3 = explain_one(telecom, request, top=3)
    # Then the list is the first 3 of the full list, and what was left out is summed, so the total still adds up
    assert [c.feature for c in top3.contributions] == [c.feature for c in full.contributions[:3]]
    assert top3.remaining_contribution == pytest.approx(sum(c.contribution for c in full.contributions[3:]), abs=1e-12)
    listed = sum(c.contribution for c in top3.contributions)
    assert top3.base_value + listed + top3.remaining_contribution == pytest.approx(top3.model_output, abs=1e-9)
    assert len(top3.reasons) == 3
    # And a top above the number of features lists them all
    assert len(explain_one(telecom, request, top=100).contributions) == 19


@pytest.mark.slow
def test_missing_and_unseen_values_are_explained_with_the_value_the_model_used(telecom: Telecom) -> None:
    # Given a customer without day minutes and from an unseen state
    request = customer(telecom, "C00011")
    features = {k: v for k, v in request.features.items() if k != "total_day_minutes"} | {"state": "Atlantis"}
    # When explained
    explanation = explain_one(telecom, PredictRequest(customer_id="C00011", features=features))
    # Then both are flagged as imputed and carry the training median / mode the model saw
    by_feature = {c.feature: c for c in explanation.contributions}
    assert by_feature["total_day_minutes"].imputed
    assert by_feature["total_day_minutes"].value == pytest.approx(telecom.spec.numeric_fill["total_day_minutes"])
    assert by_feature["state"].imputed
    assert by_feature["state"].value == telecom.spec.categorical_fill["state"]
    assert explanation.imputed_features == ["state", "total_day_minutes"]
    assert not by_feature["total_night_minutes"].imputed
    assert by_feature["total_night_minutes"].value == 208.8


@pytest.mark.slow
def test_global_importance_ranks_every_input_feature(telecom: Telecom) -> None:
    # Given the held-out split / When the model card's explainability section is computed
    explainer = telecom.models["gradient_boosting"].explainer
    summary = explainability_summary(
        explainer, prepare_features(frame_to_columns(telecom.test, telecom.schema), telecom.spec)
    )
    importance = summary["global_importance"]
    # Then every input feature is ranked by mean |contribution|, service calls among the most important
    assert sorted(i["feature"] for i in importance) == sorted(telecom.schema.feature_columns)
    values = [i["mean_abs_contribution"] for i in importance]
    assert values == sorted(values, reverse=True)
    assert "number_customer_service_calls" in [i["feature"] for i in importance[:3]]
    assert summary["output_space"] == "log_odds"
    assert summary["base_value"] == explainer.base_value
    assert summary["rows"] == 800
    assert summary["max_additivity_error"] < ADDITIVITY_TOLERANCE


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # it only has to be refused
def test_a_tampered_model_or_an_unsupported_classifier_is_refused(telecom: Telecom) -> None:
    # Given a registered linear model (not a tree ensemble)
    linear = build_pipeline(LogisticRegression(max_iter=50), telecom.spec)
    frame = prepared_to_frame(prepare_features(frame_to_columns(telecom.train, telecom.schema), telecom.spec))
    linear.fit(frame, labels(telecom.train, telecom.schema))
    s3 = InMemoryS3()
    version, store = register(linear, telecom.spec, "v-linear", s3)
    # When it is loaded for explanations / Then TreeSHAP refuses it
    with pytest.raises(ArtifactIntegrityError, match="do not support LogisticRegression"):
        load_explainable_version(version, store)
    # And a skops file overwritten after registration fails its SHA-256 check before anything is loaded
    s3.objects[version.artifacts["sklearn"].key] = b"tampered"
    with pytest.raises(ArtifactIntegrityError, match="SHA-256 mismatch"):
        load_explainable_version(version, store)
    # And a version registered without a scikit-learn model cannot be explained
    without = version.model_copy(update={"artifacts": {k: v for k, v in version.artifacts.items() if k != "sklearn"}})
    with pytest.raises(ArtifactIntegrityError, match="no scikit-learn model"):
        load_explainable_version(without, store)


@pytest.mark.slow
def test_every_explanation_is_audited_like_a_prediction_before_it_is_returned(telecom: Telecom) -> None:
    # Given the explanation service of the served version, appending to an audit table on moto
    model = telecom.models["gradient_boosting"]
    requests = [customer(telecom, "C00011"), customer(telecom, "C00012")]
    with mocked_audit_aws() as aws:
        trail = AuditTrail(TABLE, aws["dynamodb"], chain="explain-test", clock=TickingClock(), sleep=no_sleep)
        service = ExplanationService(serving(model), None, trail)

        # When one customer is explained, then two as a batch
        (single,) = service.explain(requests[:1], caller="key-1", request_id="req-1").explanations
        batch = service.explain(requests, caller="key-1", request_id="req-2", batch=True).explanations

        # Then the single explanation has its record under the customer, naming the caller and the request, with
        # the answer given and the SHA-256 of the inputs /predict audits for the same body
        predictions = score_and_prepare(requests, model.served)[0]
        (record,) = query_audit(TABLE, aws["dynamodb"], entity="customer:C00011", event_type="explanation").records
        assert (record.event.actor, record.event.details["request_id"]) == ("key-1", "req-1")
        assert record.event.details == {
            "explanation_id": single.explanation_id,
            "customer_id": "C00011",
            "model_version": model.version.version,
            "input_sha256": predictions[0].input_sha256,
            "churn_probability": single.churn_probability,
            "churn_prediction": single.churn_prediction,
            "threshold": single.threshold,
            "reasons": [f"{r.feature}:{r.direction}" for r in single.reasons],
            "request_id": "req-1",
        }
        # And the batch has one record under the request, one entry per explanation returned
        (batch_record,) = query_audit(TABLE, aws["dynamodb"], entity="request:req-2").records
        entries = batch_record.event.details["explanations"]
        assert [e["explanation_id"] for e in entries] == [e.explanation_id for e in batch]
        assert [e["input_sha256"] for e in entries] == [p.input_sha256 for p in predictions]
        # And no record holds a feature value (C00011 has 129.1 day minutes and 228.5 evening minutes, C00012
        # 187.7 and 163.4), only the names of the features the reasons gave
        stored = json.dumps([record.model_dump(mode="json"), batch_record.model_dump(mode="json")])
        assert [value for value in ("129.1", "228.5", "187.7", "163.4") if value in stored] == []

        # When the audit table refuses every write past the trail's retries
        failing = AuditTrail(TABLE, FailingPuts(aws["dynamodb"], lambda _: "throttle"), sleep=no_sleep)
        refusing = ExplanationService(serving(model), None, failing)
        # Then no explanation is returned: the retryable error the API answers with 503
        with pytest.raises(AuditUnavailableError) as refused:
            refusing.explain(requests[:1], caller="key-1", request_id="req-3")
        assert refused.value.retryable


@pytest.mark.parametrize(
    ("batch", "field"), [(False, "features.total_day_minutes"), (True, "records[0].features.total_day_minutes")]
)
def test_a_refused_value_in_a_batch_of_one_names_its_record(telecom: Telecom, batch: bool, field: str) -> None:
    # Given one request with a non-finite feature (fuzzing found a batch of one named it like a single request)
    request = customer(telecom, "C00011")
    bad = request.model_copy(update={"features": {**request.features, "total_day_minutes": float("nan")}})

    # When it is explained alone (/explain) or as the only record of a batch (/explain/batch, as /predict/batch)
    with pytest.raises(FeatureValidationError) as refused:
        explain_requests([bad], telecom.models["gradient_boosting"], batch=batch)

    # Then the field names the record in a batch, and only there
    assert refused.value.field == field
