"""Pilot step EvaluateModel: the trained model's metrics on the held-out split, against the run's targets."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler, logger
from mlops.core.settings import ModelStoreSettings
from mlops.pilot import training as pilot_training
from mlops.pilot.payloads import StepRequest
from mlops.wiring import Wiring

wiring = Wiring(ModelStoreSettings)


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = StepRequest.model_validate(event)
    report = pilot_training.evaluate_model(request, wiring.artifacts)
    logger.info("Model evaluated", extra={"meets_targets": report.meets_targets})
    return report.model_dump(mode="json")
