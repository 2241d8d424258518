"""Pilot steps after the deployment: start the A/B test, run the simulated retention campaign, monitor the model.

Three functions share this code (StartExperimentFunction: `start_experiment`, RetentionCampaignFunction:
`run_retention_campaign`, MonitorModelFunction: `monitor_model`). A failure here leaves the validated model
serving: the state machine catches it (`$.experiment_error`, `$.monitoring_error`) and the final criteria step
reports the criteria it affects as failed.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from mlops.audit.events import audit_trail, experiment_event
from mlops.audit.trail import AuditEventType
from mlops.core.artifacts import ArtifactStore
from mlops.core.errors import MonitoringError
from mlops.core.observability import instrumented_handler, logger
from mlops.core.settings import load_settings
from mlops.experiments.store import ExperimentStore
from mlops.pilot.campaign import run_retention_campaign as run_campaign
from mlops.pilot.campaign import start_pilot_experiment
from mlops.pilot.monitoring import monitor_pilot
from mlops.pilot.payloads import StepRequest, lambda_api_invoker
from mlops.pilot.settings import CampaignSettings, PilotExperimentSettings, PilotMonitoringSettings


@instrumented_handler
def start_experiment(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(PilotExperimentSettings)
    request = StepRequest.model_validate(event)
    store = ExperimentStore(settings.experiments_table, boto3.client("dynamodb"))
    artifacts = ArtifactStore(settings.artifact_bucket, boto3.client("s3"))
    report = start_pilot_experiment(request, artifacts, store, settings.model_name)
    trail = audit_trail(settings.audit_table, boto3.client("dynamodb"), writer="pilot-experiment")
    actor = f"pilot:{request.execution_name}"
    if report.stopped_previous:
        trail.append(
            experiment_event(AuditEventType.EXPERIMENT_STOPPED, report.stopped_previous, actor, reason="superseded")
        )
    trail.append(
        experiment_event(
            AuditEventType.EXPERIMENT_CREATED,
            report.experiment_id,
            actor,
            model_name=report.model_name,
            variants={v.name: v.weight for v in report.variants},
        )
    )
    logger.info("Experiment started", extra=report.model_dump(include={"experiment_id", "stopped_previous"}))
    return report.model_dump(mode="json")


@instrumented_handler
def run_retention_campaign(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(CampaignSettings)
    request = StepRequest.model_validate(event)
    invoke_scoring = lambda_api_invoker(boto3.client("lambda"), settings.scoring_function_name)

    report = run_campaign(
        request,
        ArtifactStore(settings.artifact_bucket, boto3.client("s3")),
        ExperimentStore(settings.experiments_table, boto3.client("dynamodb")),
        invoke_scoring,
        # Warm scoring containers see a new experiment within one refresh interval; leave room for two.
        max_wait_seconds=2 * settings.model_refresh_seconds + 5,
    )
    return report.model_dump(mode="json")


@instrumented_handler
def monitor_model(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(PilotMonitoringSettings)
    # The monitor may run for minutes: wait for it (its 300 s timeout) instead of resending it after 60 s.
    lambda_client = boto3.client("lambda", config=Config(read_timeout=310, retries={"max_attempts": 1}))
    monitor = settings.model_monitor_function_name

    def invoke_monitor(payload: dict[str, Any]) -> dict[str, Any]:
        response = lambda_client.invoke(FunctionName=monitor, Payload=json.dumps(payload))
        body = json.loads(response["Payload"].read())
        if "FunctionError" in response:
            raise MonitoringError(field="monitor", message=f"the model monitor failed: {body.get('errorMessage')}")
        return body

    summary = monitor_pilot(
        StepRequest.model_validate(event),
        ArtifactStore(settings.artifact_bucket, boto3.client("s3")),
        lambda_api_invoker(lambda_client, settings.monitoring_function_name),
        invoke_monitor,
    )
    logger.info("Pilot traffic monitored", extra=summary.model_dump(exclude={"report"}))
    return summary.model_dump(mode="json")


handler = start_experiment
