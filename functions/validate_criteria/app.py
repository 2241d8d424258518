"""Pilot step 8: compare the run's metrics and latency with its success criteria."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.observability import instrumented_handler, logger
from mlops.pilot import StepRequest, evaluate_success_criteria


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = StepRequest.model_validate(event)
    report = evaluate_success_criteria(request.pilot)
    logger.info("Success criteria checked", extra={"all_passed": report.all_passed, "failed": report.failed})
    return report.model_dump(mode="json")
