"""The pilot's ValidateEnvironment step: every table, bucket and function of the stack answers, and the input
data exists."""

from __future__ import annotations

from typing import Any

from mlops.pilot.payloads import EnvironmentReport, StepRequest
from mlops.pilot.settings import EnvironmentCheckSettings
from mlops.registry.store import ModelRegistry


def check_environment(
    request: StepRequest,
    settings: EnvironmentCheckSettings,
    s3: Any,
    dynamodb: Any,
    lambda_client: Any,
    registry: ModelRegistry,
) -> EnvironmentReport:
    """Ask each resource the pilot uses whether it is there (a missing one raises); note what production serves."""
    checked = []
    for bucket in (settings.artifact_bucket, settings.data_bucket, settings.feature_store_bucket):
        s3.head_bucket(Bucket=bucket)
        checked.append(f"s3://{bucket}")
    for table in (settings.registry_table, settings.feature_store_table):
        dynamodb.describe_table(TableName=table)
        checked.append(f"dynamodb:{table}")
    state = lambda_client.get_function_configuration(FunctionName=settings.scoring_function_name).get("State", "Active")
    if state not in {"Active", "Pending"}:
        raise RuntimeError(f"scoring function {settings.scoring_function_name} is {state}")
    checked.append(f"lambda:{settings.scoring_function_name}")
    for key in (request.pilot.data_key, request.pilot.schema_key):
        s3.head_object(Bucket=settings.data_bucket, Key=key)
        checked.append(f"s3://{settings.data_bucket}/{key}")
    production = registry.get_production(settings.model_name)
    return EnvironmentReport(checked=checked, production_version=production.version if production else None)
