"""Pilot step 6 (and rollback): move the production alias to an approved model version."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.audit.events import audit_trail, model_event
from mlops.audit.trail import AuditEventType, AuditTrail
from mlops.core.observability import MetricUnit, instrumented_handler, logger, metrics
from mlops.core.settings import AuditedModelStoreSettings, load_settings
from mlops.pilot.payloads import DeployRequest, deploy_or_roll_back
from mlops.registry.store import ModelRegistry


@cache
def _audit() -> AuditTrail:
    return audit_trail(load_settings(AuditedModelStoreSettings).audit_table, boto3.client("dynamodb"), writer="deploy")


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(AuditedModelStoreSettings)
    request = DeployRequest.model_validate(event)
    registry = ModelRegistry(settings.registry_table, boto3.client("dynamodb"))
    report = deploy_or_roll_back(request, registry, settings.model_name)
    # A rollback runs because a step failed: that failure is audited even when production had not moved.
    if report.action == "deploy":
        event_type = AuditEventType.MODEL_DEPLOYED
    else:
        event_type = AuditEventType.MODEL_ROLLED_BACK if report.changed else AuditEventType.PILOT_RUN
    _audit().append(
        model_event(
            event_type,
            settings.model_name,
            report.model_version,
            actor=f"pilot:{request.deployment_id}",
            deployment_id=report.deployment_id,
            previous_version=report.previous_version,
            reason=request.reason,
            outcome=None if report.changed else "failed after deployment started; production unchanged",
        )
    )
    metrics.add_metric(
        name="Rollbacks" if report.action == "rollback" else "Deployments",
        unit=MetricUnit.Count,
        value=int(report.changed),
    )
    logger.info("Production alias updated", extra=report.model_dump())
    return report.model_dump(mode="json")
