"""Pilot step RegisterModel: export to ONNX, store the version's artifacts and model card, register it awaiting
approval (audited)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler, logger
from mlops.core.settings import AuditedModelStoreSettings
from mlops.pilot import training as pilot_training
from mlops.pilot.payloads import StepRequest
from mlops.wiring import Wiring

wiring = Wiring(AuditedModelStoreSettings)


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = wiring.settings
    request = StepRequest.model_validate(event)
    report = pilot_training.register_model(
        request, wiring.artifacts, wiring.registry, wiring.audit_log, settings.model_name
    )
    logger.info("Model registered", extra={"model_version": report.model_version})
    return report.model_dump(mode="json")
