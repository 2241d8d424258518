"""Pilot step 6 (and rollback): move the production alias to an approved model version (audited)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import MetricUnit, instrumented_handler, logger, metrics
from mlops.core.settings import AuditedModelStoreSettings
from mlops.pilot.deployment import deploy_or_roll_back
from mlops.pilot.payloads import DeployRequest
from mlops.wiring import Wiring

wiring = Wiring(AuditedModelStoreSettings)


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = wiring.settings
    request = DeployRequest.model_validate(event)
    report = deploy_or_roll_back(request, wiring.registry, wiring.audit_log, settings.model_name)
    metrics.add_metric(
        name="Rollbacks" if report.action == "rollback" else "Deployments",
        unit=MetricUnit.Count,
        value=int(report.changed),
    )
    logger.info("Production alias updated", extra=report.model_dump())
    return report.model_dump(mode="json")
