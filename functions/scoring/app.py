"""Scoring API: POST /predict, POST /predict/batch, GET /health, GET /models.

A request may send only a customer id: its features come from the online feature store (FEATURE_STORE_TABLE),
and features it does send override the stored ones; each prediction says where every input came from. Every
prediction is written to the audit trail (AUDIT_TABLE) before it is returned.

When an experiment splits the model's traffic (its running experiment in EXPERIMENTS_TABLE), each customer
gets a variant and that variant's decision, and the first assignment is logged as an exposure.
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from mlops.api.contracts import (
    SYNTHETIC_TRAFFIC_HEADER,
    BatchPredictionResponse,
    BatchPredictRequest,
    HealthResponse,
    ModelListResponse,
    ModelSummary,
    Prediction,
    PredictRequest,
)
from mlops.api.rest import caller_identity, create_rest_app, request_id, resolve_json_api
from mlops.audit.events import audit_trail, prediction_events
from mlops.audit.trail import AuditTrail
from mlops.core.artifacts import ArtifactStore
from mlops.core.observability import MetricUnit, instrumented_handler, logger, metrics, record_dimensioned
from mlops.core.settings import ScoringSettings, load_settings
from mlops.data.features import Columns
from mlops.experiments.serving import RunningExperimentProvider, serve_experiment, service_calls_of
from mlops.experiments.store import ExperimentStore
from mlops.feature_store.online import OnlineFeatureLookup, online_lookup
from mlops.monitoring.capture import InferenceCapture, score_bucket
from mlops.registry.store import ModelRegistry
from mlops.serving.scoring import LoadedModel, ModelProvider, score_and_prepare

app = create_rest_app()


@cache
def _settings() -> ScoringSettings:
    return load_settings(ScoringSettings)


@cache
def _dynamodb() -> Any:
    # The audit trail, feature store and exposures retry throttling themselves (with backoff, then a 503):
    # botocore's legacy mode would add up to 10 attempts under each, past API Gateway's 29 s timeout.
    return boto3.client("dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 3}))


@cache
def _registry() -> ModelRegistry:
    return ModelRegistry(_settings().registry_table, _dynamodb())


@cache
def _model_provider() -> ModelProvider:
    settings = _settings()
    store = ArtifactStore(settings.artifact_bucket, boto3.client("s3"))
    return ModelProvider(_registry(), store, settings.model_name, settings.model_refresh_seconds)


@cache
def _audit() -> AuditTrail:
    return audit_trail(_settings().audit_table, _dynamodb(), writer="scoring")


@cache
def _feature_lookup() -> OnlineFeatureLookup | None:
    return online_lookup(_settings(), _dynamodb())


@cache
def _experiment_provider() -> RunningExperimentProvider | None:
    settings = _settings()
    if settings.experiments_table is None:
        return None
    store = ExperimentStore(settings.experiments_table, _dynamodb())
    return RunningExperimentProvider(store, settings.model_name, settings.model_refresh_seconds)


@cache
def _capture() -> InferenceCapture | None:
    settings = _settings()
    if settings.monitoring_bucket is None or settings.capture_sample_rate == 0:
        return None
    # Short timeouts and one attempt: a lost drift sample is acceptable, a stalled prediction is not.
    s3 = boto3.client("s3", config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}))
    return InferenceCapture(settings.monitoring_bucket, s3, settings.model_name, settings.capture_sample_rate)


@app.post("/predict")
def predict(request: PredictRequest) -> Prediction:
    loaded = _model_provider().current()
    (prediction,) = _score([request], loaded)
    return prediction


@app.post("/predict/batch")
def predict_batch(request: BatchPredictRequest) -> BatchPredictionResponse:
    loaded = _model_provider().current()
    predictions = _score(request.records, loaded, batch=True)
    return BatchPredictionResponse(model_version=loaded.version.version, predictions=predictions)


def _score(requests: list[PredictRequest], loaded: LoadedModel, *, batch: bool = False) -> list[Prediction]:
    predictions, prepared, columns = score_and_prepare(requests, loaded, _feature_lookup(), batch=batch)
    experiments = _experiment_provider()
    running = experiments.current() if experiments else None
    if running is not None and experiments is not None:
        # An exposure that cannot be logged (after retries) fails the request: no variant is served uncounted.
        predictions, exposures = serve_experiment(
            predictions, service_calls_of(prepared.inputs), running, experiments.store
        )
        metrics.add_metric(name="ExperimentExposures", unit=MetricUnit.Count, value=exposures)
    # No prediction leaves without its audit record: if the append fails after its retries, the request
    # fails (503, retryable) and nothing is returned.
    _audit().append_many(prediction_events(predictions, caller_identity(app), request_id(app)))
    _record_predictions(predictions)
    _capture_inputs(predictions, columns)
    return predictions


@app.get("/health")
def health() -> HealthResponse:
    version = _model_provider().current_version()
    return HealthResponse(
        status="ok" if version else "no_model", model_name=_settings().model_name, model_version=version
    )


@app.get("/models")
def list_models() -> ModelListResponse:
    registry = _registry()
    model_name = _settings().model_name
    production = registry.get_production(model_name)
    serving = production.version if production else None
    summaries = [
        ModelSummary(
            version=v.version,
            status=v.status.value,
            algorithm=v.algorithm,
            created_at=v.created_at,
            threshold=v.threshold,
            metrics={k: float(m) for k, m in v.metrics.items() if isinstance(m, int | float)},
            serving=v.version == serving,
        )
        for v in registry.list_versions(model_name)
    ]
    return ModelListResponse(model_name=model_name, production_version=serving, models=summaries)


def _record_predictions(predictions: list[Prediction]) -> None:
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=len(predictions))
    metrics.add_metric(name="PredictedChurn", unit=MetricUnit.Count, value=sum(p.churn_prediction for p in predictions))
    record_dimensioned(
        "PredictionsByVariant", MetricUnit.Count, Counter(p.variant or "none" for p in predictions), "variant"
    )
    record_dimensioned(
        "PredictionsByModelVersion", MetricUnit.Count, Counter(p.model_version for p in predictions), "model_version"
    )
    record_dimensioned(
        "ChurnScoreBucket", MetricUnit.Count, Counter(score_bucket(p.churn_probability) for p in predictions), "bucket"
    )


def _synthetic_traffic() -> bool:
    """The smoke test's direct invokes mark themselves; through API Gateway (an event with an apiId) the header
    is ignored, so a public client cannot keep its traffic out of drift monitoring."""
    event = app.current_event
    return bool(event.headers.get(SYNTHETIC_TRAFFIC_HEADER)) and "apiId" not in event.raw_event["requestContext"]


def _capture_inputs(predictions: list[Prediction], columns: Columns) -> None:
    """Best effort, unlike the audit record: a lost drift sample is counted, the answer still goes out.
    Synthetic traffic (the pilot's smoke test) is not captured, so it does not weigh on drift."""
    capture = _capture()
    if capture is None or _synthetic_traffic():
        return
    try:
        capture.write(predictions, columns)
    except (BotoCoreError, ClientError) as error:
        logger.warning("Inference capture failed", extra={"error": type(error).__name__})
        metrics.add_metric(name="CaptureFailures", unit=MetricUnit.Count, value=1)


def _resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_json_api(app, event, context)


handler = instrumented_handler(_resolve, api=True)
