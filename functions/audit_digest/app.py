"""Digest job (hourly): pins each audit chain's newest record hash in a digest chained to the previous one (S3,
Object Lock), and records each chain's newest digest in the audit trail."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.audit.digests import digest_event, write_digests
from mlops.core.observability import MetricUnit, instrumented_handler, logger, metrics
from mlops.core.settings import AuditDigestSettings
from mlops.wiring import Wiring

wiring = Wiring(AuditDigestSettings)


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Scheduled: a digest of every chain; a broken chain is refused (and counted), the others still digested.
    Each chain's newest digest is recorded in the audit trail (queued), where verify finds it."""
    settings = wiring.settings
    run = write_digests(settings.audit_table, wiring.dynamodb, wiring.s3, settings.audit_bucket)
    wiring.audit_log.append_many([digest_event(ref, actor=context.invoked_function_arn) for ref in run.digests])
    for chain, reason in run.refusals.items():
        logger.error("Audit chain broken: no digest written", extra={"chain": chain, "reason": reason})
    metrics.add_metric(name="AuditChainBroken", unit=MetricUnit.Count, value=len(run.refused))
    logger.info("Audit digests written", extra={"digests": len(run.written), "refused": len(run.refused)})
    return {"digests": run.written, "refused": run.refused}
