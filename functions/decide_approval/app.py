"""Model approval: the pilot's policy step, its wait for a human decision, and the registry API.

- `decide` (pilot step DecideApproval): the policy approves automatically or sends the run to a human.
- `request_approval` (pilot step WaitForApproval, `lambda:invoke.waitForTaskToken`): keeps the execution's
  task token on the version; the execution waits until the decision below completes the token.
- `handler` (API): GET /models/{version}, POST /models/{version}/approve, /reject, /rollback.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.api.rest import caller_identity, checked_entity_id, create_rest_app, resolve_json_api
from mlops.audit.events import audit_trail, model_event
from mlops.audit.trail import AuditEventType, AuditTrail
from mlops.core.observability import instrumented_handler, logger
from mlops.core.settings import AuditedModelStoreSettings, load_settings
from mlops.pilot.payloads import PARITY_TOLERANCE, StepRequest
from mlops.registry.approval import (
    DecisionRequest,
    decide_approval,
    record_decision,
    roll_back,
)
from mlops.registry.store import ModelRegistry, ModelVersion, ProductionAlias

app = create_rest_app()


@cache
def _settings() -> AuditedModelStoreSettings:
    return load_settings(AuditedModelStoreSettings)


@cache
def _registry() -> ModelRegistry:
    return ModelRegistry(_settings().registry_table, boto3.client("dynamodb"))


@cache
def _audit() -> AuditTrail:
    return audit_trail(_settings().audit_table, boto3.client("dynamodb"), writer="approval")


# ---------------------------------------------------------------------------------------- pilot steps
@instrumented_handler
def decide(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = StepRequest.model_validate(event)
    pilot = request.pilot
    registration = request.require(pilot.registration, "registration")
    evaluation = request.require(pilot.evaluation, "evaluation")
    settings, registry = _settings(), _registry()
    candidate = registry.get(settings.model_name, registration.model_version)
    production = registry.get_production(settings.model_name)
    production_metrics = registry.get(settings.model_name, production.version).metrics if production else None
    decision = decide_approval(
        {k: float(v) for k, v in candidate.metrics.items()},
        {
            "quality_targets": evaluation.meets_targets,
            "onnx_parity": registration.parity_max_abs_diff <= PARITY_TOLERANCE,
        },
        production.version if production else None,
        {k: float(v) for k, v in production_metrics.items()} if production_metrics else None,
        pilot.approval,
    )
    if decision.approved:
        reason = "; ".join(decision.reasons)
        registry.decide(settings.model_name, candidate.version, approved=True, by=decision.by, reason=reason)
        _audit().append(
            model_event(
                AuditEventType.MODEL_APPROVED, settings.model_name, candidate.version, decision.by, reason=reason
            )
        )
    logger.info("Approval decided", extra={"approved": decision.approved, "reasons": decision.reasons})
    return decision.model_dump(mode="json")


@instrumented_handler
def request_approval(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = _settings()
    version = checked_entity_id(str(event.get("model_version", "")), "model_version")
    _registry().set_approval_token(settings.model_name, version, str(event["task_token"]))
    logger.info("Waiting for a human decision", extra={"model_version": version, "reasons": event.get("reasons")})
    return {"waiting": True, "model_version": version}


# ---------------------------------------------------------------------------------------- API
@app.get("/models/<version>")
def get_model(version: str) -> ModelVersion:
    return _registry().get(_settings().model_name, checked_entity_id(version, "version"))


@app.post("/models/<version>/approve")
def approve(version: str, request: DecisionRequest | None = None) -> ModelVersion:
    return _decide(version, approved=True, reason=(request.reason if request else None) or "approved")


@app.post("/models/<version>/reject")
def reject(version: str, request: DecisionRequest | None = None) -> ModelVersion:
    return _decide(version, approved=False, reason=(request.reason if request else None) or "rejected")


@app.post("/models/<version>/rollback")
def rollback(version: str, request: DecisionRequest | None = None) -> ProductionAlias:
    reason = (request.reason if request else None) or "rolled back by request"
    return roll_back(
        _registry(),
        _audit(),
        _settings().model_name,
        checked_entity_id(version, "version"),
        by=caller_identity(app),
        reason=reason,
    )


def _decide(version: str, *, approved: bool, reason: str) -> ModelVersion:
    return record_decision(
        _registry(),
        _audit(),
        boto3.client("stepfunctions"),
        _settings().model_name,
        checked_entity_id(version, "version"),
        approved=approved,
        by=caller_identity(app),
        reason=reason,
    )


def _resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_json_api(app, event, context)


handler = instrumented_handler(_resolve, api=True)


handler = decide
