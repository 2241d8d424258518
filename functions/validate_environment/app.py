"""Pilot step 1: every table, bucket and function of the stack answers, and the input data exists."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler, logger
from mlops.core.settings import load_settings
from mlops.pilot.payloads import EnvironmentReport, StepRequest
from mlops.pilot.settings import EnvironmentCheckSettings
from mlops.registry.store import ModelRegistry


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(EnvironmentCheckSettings)
    request = StepRequest.model_validate(event)
    s3, dynamodb, lambda_ = boto3.client("s3"), boto3.client("dynamodb"), boto3.client("lambda")
    checked = []
    for bucket in (settings.artifact_bucket, settings.data_bucket, settings.feature_store_bucket):
        s3.head_bucket(Bucket=bucket)
        checked.append(f"s3://{bucket}")
    for table in (settings.registry_table, settings.feature_store_table):
        dynamodb.describe_table(TableName=table)
        checked.append(f"dynamodb:{table}")
    state = lambda_.get_function_configuration(FunctionName=settings.scoring_function_name).get("State", "Active")
    if state not in {"Active", "Pending"}:
        raise RuntimeError(f"scoring function {settings.scoring_function_name} is {state}")
    checked.append(f"lambda:{settings.scoring_function_name}")
    for key in (request.pilot.data_key, request.pilot.schema_key):
        s3.head_object(Bucket=settings.data_bucket, Key=key)
        checked.append(f"s3://{settings.data_bucket}/{key}")
    production = ModelRegistry(settings.registry_table, dynamodb).get_production(settings.model_name)
    report = EnvironmentReport(checked=checked, production_version=production.version if production else None)
    logger.info("Environment answers", extra={"checked": len(checked), "production": report.production_version})
    return report.model_dump(mode="json")
