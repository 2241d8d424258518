"""Audit API: GET /audit (records across every chain) and GET /audit/verify (every chain against its digests)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.api.rest import create_rest_app, operator_identity, resolve_json_api
from mlops.audit.queries import AuditPage, query_audit
from mlops.audit.verification import AuditVerification, verify_chains
from mlops.core.observability import MetricUnit, instrumented_handler, metrics
from mlops.core.settings import AuditApiSettings
from mlops.wiring import Wiring

app = create_rest_app()
wiring = Wiring(AuditApiSettings)


@app.get("/audit")
def list_audit_records(
    event_type: Annotated[str | None, Query(description="Only this event type (e.g. prediction).")] = None,
    entity: Annotated[str | None, Query(description="Only this entity (e.g. customer:C00011).")] = None,
    since: Annotated[str | None, Query(description="ISO-8601; default: 7 days back when no type or entity.")] = None,
    until: Annotated[str | None, Query(description="ISO-8601, inclusive.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    page_token: Annotated[str | None, Query(description="next_page_token of the previous page.")] = None,
) -> AuditPage:
    operator_identity(app)  # operators only (the trail names customers and callers), even though nothing is recorded
    return query_audit(
        wiring.settings.audit_table,
        wiring.dynamodb,
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
    operator_identity(app)
    settings = wiring.settings
    result = verify_chains(settings.audit_table, wiring.dynamodb, wiring.s3, settings.audit_bucket)
    metrics.add_metric(name="AuditChainBroken", unit=MetricUnit.Count, value=int(not result.valid))
    return result


def _resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_json_api(app, event, context)


handler = instrumented_handler(_resolve, api=True)
