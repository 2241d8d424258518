"""Pilot step 7: score held-out rows through the deployed scoring function and measure latency."""

from __future__ import annotations

import json
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.artifacts import ArtifactStore
from mlops.observability import instrumented_handler, logger
from mlops.pilot import StepRequest, run_smoke_test
from mlops.settings import SmokeTestSettings, load_settings


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(SmokeTestSettings)
    request = StepRequest.model_validate(event)
    lambda_ = boto3.client("lambda")

    def invoke_scoring(api_event: dict[str, Any]) -> dict[str, Any]:
        response = lambda_.invoke(FunctionName=settings.scoring_function_name, Payload=json.dumps(api_event))
        return json.loads(response["Payload"].read())

    report = run_smoke_test(request, ArtifactStore(settings.artifact_bucket, boto3.client("s3")), invoke_scoring)
    logger.info(
        "Smoke test done",
        extra={"calls": report.calls, "errors": report.errors, "p95_ms": report.latency_ms.p95},
    )
    return report.model_dump(mode="json")
