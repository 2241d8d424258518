"""Batch-scoring state machine step PlanChunks: cut a large S3 CSV into byte-range chunks at row boundaries,
for the version production serves now (each chunk is then scored by the pipeline image's `score_chunk`)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler, logger
from mlops.core.settings import BatchScoringSettings
from mlops.serving.batch_plan import BatchScoringRequest, plan_production_batch
from mlops.wiring import Wiring

wiring = Wiring(BatchScoringSettings)


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = wiring.settings
    request = BatchScoringRequest.model_validate(event["request"])
    batch = plan_production_batch(
        wiring.s3, settings.data_bucket, request, str(event["run_id"]), wiring.registry, settings.model_name
    )
    logger.info("Batch planned", extra={"chunks": batch.chunks, "model_version": batch.model_version})
    return batch.model_dump(mode="json")
