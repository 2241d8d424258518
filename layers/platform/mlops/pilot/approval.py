"""The pilot's DecideApproval step: the checks the pilot ran before deployment, put to the approval policy."""

from __future__ import annotations

from mlops.audit.queue import AuditLog
from mlops.pilot.payloads import PARITY_TOLERANCE, StepRequest
from mlops.registry.approval import ApprovalDecision, approve_if_allowed
from mlops.registry.store import ModelRegistry


def decide_pilot_approval(
    request: StepRequest, registry: ModelRegistry, trail: AuditLog, model_name: str
) -> ApprovalDecision:
    """Approve the registered version if the policy allows (audited), or leave it to a human."""
    pilot = request.pilot
    registration = request.require(pilot.registration, "registration")
    evaluation = request.require(pilot.evaluation, "evaluation")
    checks_passed = {
        "quality_targets": evaluation.meets_targets,
        "onnx_parity": registration.parity_max_abs_diff <= PARITY_TOLERANCE,
    }
    return approve_if_allowed(registry, trail, model_name, registration.model_version, checks_passed, pilot.approval)
