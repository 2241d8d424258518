"""Model registry API: GET /models/{version}, POST /models/{version}/approve, /reject and /rollback.

A decision is audited by the registry's approval service (`mlops.registry.approval`), a rollback by its
deployment service (`mlops.registry.deployment`); a decision also completes the task token of a pilot
execution waiting on it.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.api.rest import checked_entity_id, create_rest_app, operator_identity, resolve_json_api
from mlops.core.observability import instrumented_handler
from mlops.core.settings import AuditedModelStoreSettings
from mlops.registry.approval import DecisionRequest, record_decision
from mlops.registry.deployment import DeploymentService
from mlops.registry.store import ModelVersion, ProductionAlias
from mlops.wiring import Wiring

app = create_rest_app()
wiring = Wiring(AuditedModelStoreSettings)


@app.get("/models/<version>")
def get_model(version: str) -> ModelVersion:
    return wiring.registry.get(wiring.settings.model_name, checked_entity_id(version, "version"))


@app.post("/models/<version>/approve")
def approve(version: str, request: DecisionRequest | None = None) -> ModelVersion:
    return _decide(version, approved=True, reason=(request.reason if request else None) or "approved")


@app.post("/models/<version>/reject")
def reject(version: str, request: DecisionRequest | None = None) -> ModelVersion:
    return _decide(version, approved=False, reason=(request.reason if request else None) or "rejected")


@app.post("/models/<version>/rollback")
def rollback(version: str, request: DecisionRequest | None = None) -> ProductionAlias:
    operator = operator_identity(app)  # first: an unsigned request learns nothing, not even a version's validity
    reason = (request.reason if request else None) or "rolled back by request"
    deployments = DeploymentService(wiring.registry, wiring.audit_log)
    return deployments.roll_back(
        wiring.settings.model_name,
        checked_entity_id(version, "version"),
        by=operator,
        reason=reason,
    )


def _decide(version: str, *, approved: bool, reason: str) -> ModelVersion:
    operator = operator_identity(app)
    return record_decision(
        wiring.registry,
        wiring.audit_log,
        wiring.client("stepfunctions"),
        wiring.settings.model_name,
        checked_entity_id(version, "version"),
        approved=approved,
        by=operator,
        reason=reason,
    )


def _resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_json_api(app, event, context)


handler = instrumented_handler(_resolve, api=True)
