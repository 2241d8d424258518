"""Pilot step DecideApproval: the policy approves the registered version automatically (audited), or sends the
run to a human (the WaitForApproval step)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler, logger
from mlops.core.settings import AuditedModelStoreSettings
from mlops.pilot.approval import decide_pilot_approval
from mlops.pilot.payloads import StepRequest
from mlops.wiring import Wiring

wiring = Wiring(AuditedModelStoreSettings)


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = StepRequest.model_validate(event)
    decision = decide_pilot_approval(request, wiring.registry, wiring.audit_log, wiring.settings.model_name)
    logger.info("Approval decided", extra={"approved": decision.approved, "reasons": decision.reasons})
    return decision.model_dump(mode="json")
