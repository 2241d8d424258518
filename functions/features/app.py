"""Feature store API: GET /features/{customer_id}, POST /features/batch, DELETE /features/{customer_id}."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

import boto3
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.api.contracts import (
    BatchFeatureRequest,
    BatchFeatureResponse,
    FeatureDeletionResponse,
    FeatureRecordResponse,
)
from mlops.api.rest import caller_identity, checked_entity_id, create_rest_app, resolve_json_api
from mlops.audit.events import audit_trail
from mlops.audit.trail import AuditEvent, AuditEventType, AuditTrail
from mlops.core.errors import EntityNotFoundError
from mlops.core.observability import MetricUnit, instrumented_handler, logger, metrics
from mlops.core.settings import FeaturesApiSettings, load_settings
from mlops.feature_store.online import FeatureRecord, OnlineFeatureLookup, online_lookup

DELETION_REASON = "data-subject request"

app = create_rest_app()


@cache
def _lookup() -> OnlineFeatureLookup:
    lookup = online_lookup(load_settings(FeaturesApiSettings), boto3.client("dynamodb"))
    if lookup is None:  # unreachable: FeaturesApiSettings requires FEATURE_STORE_TABLE
        raise RuntimeError("FEATURE_STORE_TABLE is not set")
    return lookup


@cache
def _audit() -> AuditTrail:
    return audit_trail(load_settings(FeaturesApiSettings).audit_table, boto3.client("dynamodb"), writer="features")


@app.get("/features/<customer_id>")
def get_features(
    customer_id: str,
    features: Annotated[str | None, Query(description="Comma-separated feature names (default: all).")] = None,
) -> FeatureRecordResponse:
    customer_id = checked_entity_id(customer_id, "customer_id")
    lookup = _lookup()
    wanted = [name.strip() for name in features.split(",") if name.strip()] if features else None
    group = lookup.group()
    record = lookup.store.get(group, customer_id, wanted)
    if record is None:
        raise EntityNotFoundError(field="customer_id", message=f"no {group.name} record for {customer_id!r}")
    _count_reads([record])
    return _response(record, group.name, group.version)


@app.post("/features/batch")
def get_features_batch(request: BatchFeatureRequest) -> BatchFeatureResponse:
    lookup = _lookup()
    group = lookup.group()
    found = lookup.store.batch_get(group, request.customer_ids, request.features)
    ordered = [found[i] for i in dict.fromkeys(request.customer_ids) if i in found]
    _count_reads(ordered)
    return BatchFeatureResponse(
        feature_group=group.name,
        group_version=group.version,
        records=[_response(record, group.name, group.version) for record in ordered],
        missing=[i for i in dict.fromkeys(request.customer_ids) if i not in found],
    )


@app.delete("/features/<customer_id>")
def delete_features(customer_id: str) -> FeatureDeletionResponse:
    customer_id = checked_entity_id(customer_id, "customer_id")
    lookup = _lookup()
    group = lookup.group()
    actor = caller_identity(app)
    deletion = lookup.store.delete(group, customer_id, actor, DELETION_REASON)
    _audit().append(
        AuditEvent(
            event_type=AuditEventType.FEATURE_DELETION,
            entity=f"customer:{customer_id}",
            actor=actor,
            details={"deletion_id": deletion.deletion_id, "feature_group": group.name, "reason": DELETION_REASON},
        )
    )
    logger.info("Feature record deleted", extra={"deletion_id": deletion.deletion_id, "feature_group": group.name})
    metrics.add_metric(name="FeatureDeletions", unit=MetricUnit.Count, value=1)
    return FeatureDeletionResponse(
        customer_id=customer_id,
        feature_group=group.name,
        deleted=True,
        deletion_id=deletion.deletion_id,
        requested_at=deletion.requested_at,
    )


def _response(record: FeatureRecord, group_name: str, group_version: int) -> FeatureRecordResponse:
    return FeatureRecordResponse(
        customer_id=record.entity_id,
        feature_group=group_name,
        group_version=group_version,
        event_time=record.event_time.isoformat(),
        status=record.status,
        values=record.values,
    )


def _count_reads(records: list[FeatureRecord]) -> None:
    metrics.add_metric(name="FeatureRecordsRead", unit=MetricUnit.Count, value=len(records))
    metrics.add_metric(
        name="StaleFeatureRecords", unit=MetricUnit.Count, value=sum(r.status == "stale" for r in records)
    )


def _resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_json_api(app, event, context)


handler = instrumented_handler(_resolve, api=True)
