"""Batch-scoring state machine step JoinParts: join the scored parts of a plan, in order, into its output."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler, logger
from mlops.core.settings import FunctionSettings
from mlops.serving.batch_plan import BatchPlan, join_parts
from mlops.wiring import Wiring

wiring = Wiring(FunctionSettings)  # no setting: the plan names the bucket and every key


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = BatchPlan.model_validate(event["plan"])
    rows = join_parts(wiring.s3, batch)
    logger.info("Batch scored", extra={"rows": rows, "chunks": batch.chunks})
    return {"rows": rows, "output_key": batch.output_key, "model_version": batch.model_version}
