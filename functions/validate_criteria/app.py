"""Pilot steps 8 and 11: compare the run's metrics, latency and (at the end) A/B results with its success criteria."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler, logger
from mlops.pilot.criteria import evaluate_success_criteria
from mlops.pilot.payloads import CriteriaRequest


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = CriteriaRequest.model_validate(event)
    report = evaluate_success_criteria(request.pilot, request.stage)
    logger.info(
        "Success criteria checked",
        extra={"stage": request.stage, "all_passed": report.all_passed, "failed": report.failed},
    )
    return report.model_dump(mode="json")
