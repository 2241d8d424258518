"""Experiments API: create, read, assign, record outcomes, analyse and stop A/B tests.

POST /experiments, GET /experiments/{experiment_id}, POST /experiments/{experiment_id}/assign,
POST /experiments/{experiment_id}/outcomes, GET /experiments/{experiment_id}/results,
POST /experiments/{experiment_id}/stop.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.api.rest import caller_identity, create_rest_app, resolve_json_api
from mlops.audit.events import audit_trail, experiment_event
from mlops.audit.trail import AuditEventType, AuditTrail
from mlops.core.observability import MetricUnit, instrumented_handler, metrics
from mlops.core.settings import AuditedExperimentsSettings, ExperimentsSettings, load_settings
from mlops.experiments.models import (
    Assignment,
    AssignRequest,
    Experiment,
    ExperimentCreate,
    ExperimentResults,
    OutcomeRecorded,
    OutcomeRequest,
    StopRequest,
)
from mlops.experiments.service import ExperimentService
from mlops.experiments.store import ExperimentStore

app = create_rest_app()


@cache
def _service() -> ExperimentService:
    settings = load_settings(ExperimentsSettings)
    return ExperimentService(ExperimentStore(settings.experiments_table, boto3.client("dynamodb")))


@cache
def _audit() -> AuditTrail:
    return audit_trail(load_settings(AuditedExperimentsSettings).audit_table, boto3.client("dynamodb"), "experiments")


@app.post("/experiments", status_code=201)  # documented as 201, not Powertools' default 200
def create_experiment(request: ExperimentCreate) -> Experiment:
    experiment = _service().create(request)
    _audit().append(
        experiment_event(
            AuditEventType.EXPERIMENT_CREATED,
            experiment.experiment_id,
            caller_identity(app),
            model_name=experiment.model_name,
            variants={v.name: v.weight for v in experiment.variants},
        )
    )
    return experiment


@app.get("/experiments/<experiment_id>")
def get_experiment(experiment_id: str) -> Experiment:
    return _service().get(experiment_id)


@app.post("/experiments/<experiment_id>/assign")
def assign(experiment_id: str, request: AssignRequest) -> Assignment:
    assignment = _service().assign(experiment_id, request.unit_id)
    metrics.add_metric(name="Exposures", unit=MetricUnit.Count, value=int(assignment.first_exposure))
    return assignment


@app.post("/experiments/<experiment_id>/outcomes")
def record_outcome(experiment_id: str, request: OutcomeRequest) -> OutcomeRecorded:
    return _service().record_outcome(experiment_id, request)


@app.get("/experiments/<experiment_id>/results")
def results(experiment_id: str) -> ExperimentResults:
    return _service().results(experiment_id)


@app.post("/experiments/<experiment_id>/stop")
def stop(experiment_id: str, request: StopRequest | None = None) -> Experiment:
    reason = request.reason if request else None
    experiment = _service().stop(experiment_id, reason)
    _audit().append(
        experiment_event(AuditEventType.EXPERIMENT_STOPPED, experiment_id, caller_identity(app), reason=reason)
    )
    return experiment


def _resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_json_api(app, event, context)


handler = instrumented_handler(_resolve, api=True)
