"""Pilot step PublishReport: the pilot report (report.html, self-contained) beside the run's other artifacts."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler, logger
from mlops.core.settings import ModelStoreSettings
from mlops.pilot.payloads import StepRequest
from mlops.pilot.report import publish as pilot_report
from mlops.wiring import Wiring

wiring = Wiring(ModelStoreSettings)


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = wiring.settings
    request = StepRequest.model_validate(event)
    ref = pilot_report.publish_report(request, wiring.artifacts, settings.model_name)
    logger.info("Pilot report published", extra={"key": ref.key, "bytes": ref.size_bytes})
    return ref.model_dump(mode="json")
