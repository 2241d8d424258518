"""Pilot step WaitForApproval (`lambda:invoke.waitForTaskToken`): keeps the execution's task token on the version;
the execution waits until a human's decision (POST /models/{version}/approve|reject) completes the token."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.api.rest import checked_entity_id
from mlops.core.observability import instrumented_handler, logger
from mlops.core.settings import AuditedModelStoreSettings
from mlops.registry.approval import await_decision
from mlops.wiring import Wiring

wiring = Wiring(AuditedModelStoreSettings)


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = wiring.settings
    version = checked_entity_id(str(event.get("model_version", "")), "model_version")
    await_decision(wiring.registry, settings.model_name, version, str(event["task_token"]))
    logger.info("Waiting for a human decision", extra={"model_version": version, "reasons": event.get("reasons")})
    return {"waiting": True, "model_version": version}
