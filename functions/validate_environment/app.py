"""Pilot step 1: every table, bucket and function of the stack answers, and the input data exists."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler, logger
from mlops.pilot.environment import check_environment
from mlops.pilot.payloads import StepRequest
from mlops.pilot.settings import EnvironmentCheckSettings
from mlops.wiring import Wiring

wiring = Wiring(EnvironmentCheckSettings)


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = wiring.settings
    request = StepRequest.model_validate(event)
    report = check_environment(request, settings, wiring.s3, wiring.dynamodb, wiring.client("lambda"), wiring.registry)
    logger.info("Environment answers", extra={"checked": len(report.checked), "production": report.production_version})
    return report.model_dump(mode="json")
