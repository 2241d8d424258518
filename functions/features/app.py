"""Feature store API: GET /features/{customer_id}, POST /features/batch, DELETE /features/{customer_id}."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.api.contracts import (
    BatchFeatureRequest,
    BatchFeatureResponse,
    FeatureDeletionResponse,
    FeatureRecordResponse,
)
from mlops.api.rest import checked_entity_id, create_rest_app, operator_identity, resolve_json_api
from mlops.core.observability import instrumented_handler
from mlops.core.settings import FeaturesApiSettings
from mlops.wiring import Wiring

app = create_rest_app()
wiring = Wiring(FeaturesApiSettings)


@app.get("/features/<customer_id>")
def get_features(
    customer_id: str,
    features: Annotated[str | None, Query(description="Comma-separated feature names (default: all).")] = None,
) -> FeatureRecordResponse:
    customer_id = checked_entity_id(customer_id, "customer_id")
    service = wiring.feature_service
    wanted = [name.strip() for name in features.split(",") if name.strip()] if features else None
    return service.get(customer_id, wanted)


@app.post("/features/batch")
def get_features_batch(request: BatchFeatureRequest) -> BatchFeatureResponse:
    return wiring.feature_service.get_batch(request.customer_ids, request.features)


@app.delete("/features/<customer_id>")
def delete_features(customer_id: str) -> FeatureDeletionResponse:
    operator = operator_identity(app)
    customer_id = checked_entity_id(customer_id, "customer_id")
    return wiring.feature_service.delete(customer_id, actor=operator)


def _resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_json_api(app, event, context)


handler = instrumented_handler(_resolve, api=True)
