"""Pilot step PrepareData: validate the data set (features from the feature store as of the snapshot) and split it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler, logger
from mlops.pilot import training as pilot_training
from mlops.pilot.payloads import StepRequest
from mlops.pilot.settings import DataSettings
from mlops.pilot.wiring import PilotWiring

wiring = PilotWiring(DataSettings)


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = StepRequest.model_validate(event)
    report = pilot_training.prepare_data(request, wiring.data, wiring.artifacts, wiring.offline_feature_store)
    logger.info("Data prepared", extra={"rows": report.rows, "positive_rate": report.positive_rate})
    return report.model_dump(mode="json")
