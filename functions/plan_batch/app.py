"""Batch-scoring state machine steps that need no model: plan the chunks of a large S3 CSV, and join the
scored parts in order (each chunk is scored by the pipeline image's `score_chunk`)."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.errors import ModelUnavailableError
from mlops.core.observability import instrumented_handler, logger
from mlops.core.settings import load_settings
from mlops.pilot.settings import DataSettings
from mlops.registry.store import ModelRegistry
from mlops.serving.batch_plan import BatchPlan, BatchScoringRequest, join_parts, plan_chunks

WORK_PREFIX = "batch-scoring"


@instrumented_handler
def plan(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(DataSettings)
    request = BatchScoringRequest.model_validate(event["request"])
    production = ModelRegistry(settings.registry_table, boto3.client("dynamodb")).get_production(settings.model_name)
    if production is None:
        raise ModelUnavailableError(field="model", message=f"no version of {settings.model_name} is deployed")
    batch = plan_chunks(
        boto3.client("s3"), settings.data_bucket, request, str(event["run_id"]), production.version, WORK_PREFIX
    )
    logger.info("Batch planned", extra={"chunks": batch.chunks, "model_version": batch.model_version})
    return batch.model_dump(mode="json")


@instrumented_handler
def join(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = BatchPlan.model_validate(event["plan"])
    rows = join_parts(boto3.client("s3"), batch)
    logger.info("Batch scored", extra={"rows": rows, "chunks": batch.chunks})
    return {"rows": rows, "output_key": batch.output_key, "model_version": batch.model_version}


handler = plan
