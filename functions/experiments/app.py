"""Experiments API: create, read, assign, record outcomes, analyse and stop A/B tests.

POST /experiments, GET /experiments/{experiment_id}, POST /experiments/{experiment_id}/assign,
POST /experiments/{experiment_id}/outcomes, GET /experiments/{experiment_id}/results,
POST /experiments/{experiment_id}/stop.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.api.rest import create_rest_app, operator_identity, resolve_json_api
from mlops.core.observability import instrumented_handler
from mlops.core.settings import AuditedExperimentsSettings
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
from mlops.wiring import Wiring

app = create_rest_app()
wiring = Wiring(AuditedExperimentsSettings)


@app.post("/experiments", status_code=201)  # documented as 201, not Powertools' default 200
def create_experiment(request: ExperimentCreate) -> Experiment:
    return _service().create(request, actor=operator_identity(app))


@app.get("/experiments/<experiment_id>")
def get_experiment(experiment_id: str) -> Experiment:
    return _service().get(experiment_id)


@app.post("/experiments/<experiment_id>/assign")
def assign(experiment_id: str, request: AssignRequest) -> Assignment:
    return _service().assign(experiment_id, request.unit_id)


@app.post("/experiments/<experiment_id>/outcomes")
def record_outcome(experiment_id: str, request: OutcomeRequest) -> OutcomeRecorded:
    return _service().record_outcome(experiment_id, request)


@app.get("/experiments/<experiment_id>/results")
def results(experiment_id: str) -> ExperimentResults:
    return _service().results(experiment_id)


@app.post("/experiments/<experiment_id>/stop")
def stop(experiment_id: str, request: StopRequest | None = None) -> Experiment:
    operator = operator_identity(app)
    reason = request.reason if request else None
    return _service().stop(experiment_id, reason, actor=operator)


def _service() -> ExperimentService:
    return wiring.experiment_service


def _resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_json_api(app, event, context)


handler = instrumented_handler(_resolve, api=True)
