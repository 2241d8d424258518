"""Pilot step TrainModel: train the candidate algorithms, select one by cross-validation, choose its threshold."""

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
    report = pilot_training.train(request, wiring.artifacts)
    logger.info("Model trained", extra={"selected": report.selected_algorithm, "cv_auc": report.cv_auc})
    return report.model_dump(mode="json")
