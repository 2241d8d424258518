"""Batch-scoring state machine step JoinParts: join the scored parts of a plan, in order, into its output, and
leave the run's one audit record (queued to AUDIT_QUEUE_URL): the input's and the output's SHA-256, the rows and
the model version (`mlops.serving.batch_plan.join_and_audit`; no record, no output: the run fails)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler, logger
from mlops.core.settings import AuditLogSettings
from mlops.serving.batch_plan import BatchPlan, join_and_audit
from mlops.wiring import Wiring

wiring = Wiring(AuditLogSettings)  # the audit queue; the plan names the bucket and every key


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = BatchPlan.model_validate(event["plan"])
    execution = event.get("execution_id") or f"batch-scoring:{batch.run_id}"  # the execution ARN, from the ASL
    result = join_and_audit(wiring.s3, batch, wiring.audit_log, actor=str(execution))
    logger.info("Batch scored", extra={"rows": result.rows, "chunks": batch.chunks})
    return result.model_dump(mode="json")
