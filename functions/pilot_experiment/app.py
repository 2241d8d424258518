"""Pilot steps 9 and 10: start the A/B test on the deployed model, then run the simulated retention campaign.

Two functions share this code (StartExperimentFunction: `start_experiment`, RetentionCampaignFunction:
`run_retention_campaign`). A failure here leaves the validated model serving: the state machine catches it
into `$.experiment_error` and the final criteria step reports `ab_testing_ready` as failed.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.artifacts import ArtifactStore
from mlops.audit import AuditEventType
from mlops.experiments.campaign import run_retention_campaign as run_campaign
from mlops.experiments.campaign import start_pilot_experiment
from mlops.experiments.store import ExperimentStore
from mlops.governance import audit_trail, experiment_event
from mlops.observability import instrumented_handler, logger
from mlops.pilot import StepRequest, lambda_api_invoker
from mlops.settings import CampaignSettings, PilotExperimentSettings, load_settings


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
