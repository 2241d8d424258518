"""The audit logging function: drains the audit queue (SQS event source) into the hash chain, in batches.

Its role is the only one that may write the audit table; every other function queues its records
(`mlops.audit.queue`). The answer is SQS's partial batch response: the messages to deliver again.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.audit.writer import drain
from mlops.core.observability import MetricUnit, instrumented_handler, logger, metrics
from mlops.core.settings import AuditWriterSettings
from mlops.wiring import Wiring

wiring = Wiring(AuditWriterSettings)


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = drain(event.get("Records") or [], wiring.audit_chain)
    metrics.add_metric(name="AuditRecordsWritten", unit=MetricUnit.Count, value=result.appended)
    metrics.add_metric(name="AuditDuplicatesSkipped", unit=MetricUnit.Count, value=result.duplicates)
    logger.info(
        "Audit batch drained",
        extra={"appended": result.appended, "duplicates": result.duplicates, "failed": len(result.failed_message_ids)},
    )
    return result.batch_response()
