"""Pilot step 7: score held-out rows through the deployed scoring function and measure latency."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.artifacts import ArtifactStore
from mlops.core.observability import instrumented_handler, logger
from mlops.core.settings import load_settings
from mlops.pilot.payloads import StepRequest, lambda_api_invoker, run_smoke_test
from mlops.pilot.settings import SmokeTestSettings


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(SmokeTestSettings)
    request = StepRequest.model_validate(event)
    invoke_scoring = lambda_api_invoker(boto3.client("lambda"), settings.scoring_function_name)

    report = run_smoke_test(request, ArtifactStore(settings.artifact_bucket, boto3.client("s3")), invoke_scoring)
    logger.info(
        "Smoke test done",
        extra={"calls": report.calls, "errors": report.errors, "p95_ms": report.latency_ms.p95},
    )
    return report.model_dump(mode="json")
