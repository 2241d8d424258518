"""Pilot step 7: score held-out rows through the deployed scoring function and measure latency."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler, logger
from mlops.pilot.lambda_api import lambda_api_invoker
from mlops.pilot.payloads import StepRequest
from mlops.pilot.settings import SmokeTestSettings
from mlops.pilot.smoke_test import run_smoke_test
from mlops.wiring import Wiring

wiring = Wiring(SmokeTestSettings)


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = wiring.settings
    request = StepRequest.model_validate(event)
    invoke_scoring = lambda_api_invoker(wiring.client("lambda"), settings.scoring_function_name)
    report = run_smoke_test(request, wiring.artifacts, invoke_scoring)
    logger.info(
        "Smoke test done",
        extra={"calls": report.calls, "errors": report.errors, "p95_ms": report.latency_ms.p95},
    )
    return report.model_dump(mode="json")
