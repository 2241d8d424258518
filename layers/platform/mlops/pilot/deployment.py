"""The pilot's DeployModel step and its RollBack: the production alias moves through the registry's
deployment service, which audits each move with the execution as the actor."""

from __future__ import annotations

from mlops.audit.queue import AuditLog
from mlops.pilot.payloads import DeploymentReport, DeployRequest
from mlops.registry.deployment import DeploymentService
from mlops.registry.store import ModelRegistry


def deploy_or_roll_back(
    request: DeployRequest, registry: ModelRegistry, trail: AuditLog, model_name: str
) -> DeploymentReport:
    """Deploy the run's approved version, or roll production back to the version that served before the run."""
    deployments = DeploymentService(registry, trail)
    by = f"pilot:{request.deployment_id}"
    if request.action == "deploy":
        if request.model_version is None:
            raise ValueError("a deployment needs a model_version")
        change = deployments.deploy(
            model_name,
            request.model_version,
            deployment_id=request.deployment_id,
            expected_current=request.expected_current_version,
            by=by,
            reason="passed the pilot's quality gate",
            cause=request.reason,
        )
    else:
        change = deployments.restore(
            model_name,
            request.model_version,
            deployment_id=request.deployment_id,
            by=by,
            reason=f"rollback after {request.reason or 'a failed step'}",
            cause=request.reason,
        )
    return DeploymentReport.model_validate(change.model_dump())
