"""Scoring API: POST /predict, POST /predict/batch, GET /health, GET /models.

A request may send only a customer id: its features come from the online feature store (FEATURE_STORE_TABLE),
and features it does send override the stored ones; each prediction says where every input came from. Every
prediction is queued to the audit trail (AUDIT_QUEUE_URL, `mlops.audit.queue`) before it is returned.

When an experiment splits the model's traffic (its running experiment in EXPERIMENTS_TABLE), each customer
gets a variant and that variant's decision, and the first assignment is logged as an exposure.
(`mlops.serving.prediction.PredictionService` does all of that; this module parses and answers.)
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.api.contracts import (
    SYNTHETIC_TRAFFIC_HEADER,
    BatchPredictionResponse,
    BatchPredictRequest,
    HealthResponse,
    ModelListResponse,
    Prediction,
    PredictRequest,
)
from mlops.api.rest import caller_identity, create_rest_app, request_id, resolve_json_api
from mlops.core.observability import instrumented_handler
from mlops.core.settings import ScoringSettings
from mlops.serving.prediction import ServedPredictions
from mlops.wiring import Wiring

app = create_rest_app()
wiring = Wiring(ScoringSettings)


@app.post("/predict")
def predict(request: PredictRequest) -> Prediction:
    (prediction,) = _predict([request]).predictions
    return prediction


@app.post("/predict/batch")
def predict_batch(request: BatchPredictRequest) -> BatchPredictionResponse:
    served = _predict(request.records, batch=True)
    return BatchPredictionResponse(model_version=served.model_version, predictions=served.predictions)


@app.get("/health")
def health() -> HealthResponse:
    return wiring.prediction_service.health()


@app.get("/models")
def list_models() -> ModelListResponse:
    return wiring.prediction_service.models()


def _predict(requests: list[PredictRequest], *, batch: bool = False) -> ServedPredictions:
    return wiring.prediction_service.predict(
        requests,
        caller=caller_identity(app),
        request_id=request_id(app),
        synthetic=_synthetic_traffic(),
        batch=batch,
    )


def _synthetic_traffic() -> bool:
    """The smoke test's direct invokes mark themselves; through API Gateway (an event with an apiId) the header
    is ignored, so a public client cannot keep its traffic out of drift monitoring."""
    event = app.current_event
    return bool(event.headers.get(SYNTHETIC_TRAFFIC_HEADER)) and "apiId" not in event.raw_event["requestContext"]


def _resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_json_api(app, event, context)


handler = instrumented_handler(_resolve, api=True)
