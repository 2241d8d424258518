"""Batch-scoring state machine step ScoreChunks (one item of its Distributed Map): score a byte range of the
input with the model version the plan fixed, into its part (pandas + ONNX: the pipeline image)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler
from mlops.core.settings import ModelStoreSettings
from mlops.serving.batch import score_chunk
from mlops.serving.batch_plan import BatchPlan, ChunkPlan
from mlops.wiring import Wiring

wiring = Wiring(ModelStoreSettings)


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One item of the batch-scoring Distributed Map: score a byte range of the input into its part."""
    batch, chunk = BatchPlan.model_validate(event["plan"]), ChunkPlan.model_validate(event["chunk"])
    rows = score_chunk(wiring.planned_models.get(batch.model_version), wiring.s3, batch, chunk)
    return {"index": chunk.index, "rows": rows}
