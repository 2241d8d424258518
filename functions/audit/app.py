"""Audit API and digest job: GET /audit, GET /audit/verify, and the scheduled chained digest to S3."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

import boto3
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.api.rest import create_rest_app, resolve_json_api
from mlops.audit.trail import AuditIntegrityError, AuditPage, AuditTrail, AuditVerification, query_audit, verify_chains
from mlops.core.observability import MetricUnit, instrumented_handler, logger, metrics
from mlops.core.settings import AuditApiSettings, load_settings

app = create_rest_app()


@cache
def _settings() -> AuditApiSettings:
    return load_settings(AuditApiSettings)


@app.get("/audit")
def list_audit_records(
    event_type: Annotated[str | None, Query(description="Only this event type (e.g. prediction).")] = None,
    entity: Annotated[str | None, Query(description="Only this entity (e.g. customer:C00011).")] = None,
    since: Annotated[str | None, Query(description="ISO-8601; default: 7 days back when no type or entity.")] = None,
    until: Annotated[str | None, Query(description="ISO-8601, inclusive.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    page_token: Annotated[str | None, Query(description="next_page_token of the previous page.")] = None,
) -> AuditPage:
    return query_audit(
        _settings().audit_table,
        boto3.client("dynamodb"),
        event_type=event_type,
        entity=entity,
        since=since,
        until=until,
        limit=limit,
        page_token=page_token,
    )


@app.get("/audit/verify")
def verify() -> AuditVerification:
    """Walk every chain and check it against its digests; reports the first broken link."""
    settings = _settings()
    result = verify_chains(settings.audit_table, boto3.client("dynamodb"), boto3.client("s3"), settings.audit_bucket)
    metrics.add_metric(name="AuditChainBroken", unit=MetricUnit.Count, value=int(not result.valid))
    return result


def _resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_json_api(app, event, context)


handler = instrumented_handler(_resolve, api=True)


@instrumented_handler
def write_digests(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Scheduled: pin each chain's newest record hash in a digest chained to the previous one (S3)."""
    settings = _settings()
    dynamodb, s3 = boto3.client("dynamodb"), boto3.client("s3")
    written, refused = [], []
    for chain in AuditTrail.chains(settings.audit_table, dynamodb):
        trail = AuditTrail(settings.audit_table, dynamodb, chain=chain)
        if trail.head()[0] == 0:
            continue  # nothing to pin yet
        try:
            written.append(trail.write_digest(s3, settings.audit_bucket).key)
        except AuditIntegrityError as error:  # never vouch for a broken chain; keep digesting the others
            logger.error("Audit chain broken: no digest written", extra={"chain": chain, "reason": error.message})
            refused.append(chain)
    metrics.add_metric(name="AuditChainBroken", unit=MetricUnit.Count, value=len(refused))
    logger.info("Audit digests written", extra={"digests": len(written), "refused": len(refused)})
    return {"digests": written, "refused": refused}
