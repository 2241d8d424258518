"""Pilot step 6 (and rollback): move the production alias to an approved model version."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.observability import MetricUnit, instrumented_handler, logger, metrics
from mlops.pilot import DeployRequest, deploy_or_roll_back
from mlops.registry import ModelRegistry
from mlops.settings import ModelStoreSettings, load_settings


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(ModelStoreSettings)
    request = DeployRequest.model_validate(event)
    registry = ModelRegistry(settings.registry_table, boto3.client("dynamodb"))
    report = deploy_or_roll_back(request, registry, settings.model_name)
    metrics.add_metric(
        name="Rollbacks" if report.action == "rollback" else "Deployments",
        unit=MetricUnit.Count,
        value=int(report.changed),
    )
    logger.info("Production alias updated", extra=report.model_dump())
    return report.model_dump(mode="json")
