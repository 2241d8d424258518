"""The approval gate: a policy approves a registered version automatically, or a human decides.

Automatic approval needs every check available before deployment to pass (the quality targets, ONNX parity)
and no compared metric worse than the production version's by more than `max_metric_drop`. Otherwise (or
when automatic approval is off) the pilot waits for `POST /models/{version}/approve|reject`, which completes
the execution's Step Functions task token.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlops.audit.events import model_event
from mlops.audit.queue import AuditLog
from mlops.audit.records import AuditEventType
from mlops.registry.store import ModelRegistry, ModelVersion

_LOG = logging.getLogger(__name__)  # stdlib: this module is also imported by the pilot's models, outside handlers

COMPARED_METRICS = ("roc_auc", "pr_auc", "recall", "accuracy")


class ApprovalPolicy(BaseModel):
    auto_approve: bool = Field(
        default=True, description="Let the policy approve; false: every version waits for a human decision."
    )
    max_metric_drop: float = Field(
        default=0.01, ge=0, le=1, description="How much worse than production a compared metric may be."
    )


class ApprovalDecision(BaseModel):
    approved: bool
    mode: Literal["automatic", "manual"]
    by: str
    reasons: list[str] = Field(description="Why the policy approved, or why a human must decide.")
    production_version: str | None = None


def decide_approval(
    candidate_metrics: dict[str, float],
    checks_passed: dict[str, bool],
    production_version: str | None,
    production_metrics: dict[str, float] | None,
    policy: ApprovalPolicy,
) -> ApprovalDecision:
    """Whether the policy approves the candidate; the reasons name every check either way."""
    problems = [f"check {name} failed" for name, passed in checks_passed.items() if not passed]
    compared = []
    for metric in COMPARED_METRICS:
        if production_metrics is None or metric not in production_metrics or metric not in candidate_metrics:
            continue
        drop = production_metrics[metric] - candidate_metrics[metric]
        compared.append(f"{metric} {candidate_metrics[metric]:.4f} vs production {production_metrics[metric]:.4f}")
        if drop > policy.max_metric_drop:
            problems.append(
                f"{metric} is {drop:.4f} below production {production_version} (allowed {policy.max_metric_drop})"
            )
    if not policy.auto_approve:
        problems.append("automatic approval is off for this run")
    reasons = problems or [
        "every pre-deployment check passed",
        *(compared or ["no version in production to compare with"]),
    ]
    return ApprovalDecision(
        approved=not problems,
        mode="automatic",
        by="policy:auto-approval",
        reasons=reasons,
        production_version=production_version,
    )


def approve_if_allowed(
    registry: ModelRegistry,
    trail: AuditLog,
    model_name: str,
    version: str,
    checks_passed: dict[str, bool],
    policy: ApprovalPolicy,
) -> ApprovalDecision:
    """The policy's decision on a registered version, compared with the version in production. An approval is
    recorded on the version and audited; otherwise the version stays pending for a human decision."""
    candidate = registry.get(model_name, version)
    production = registry.get_production(model_name)
    production_metrics = registry.get(model_name, production.version).metrics if production else None
    decision = decide_approval(
        {k: float(v) for k, v in candidate.metrics.items()},
        checks_passed,
        production.version if production else None,
        {k: float(v) for k, v in production_metrics.items()} if production_metrics else None,
        policy,
    )
    if decision.approved:
        reason = "; ".join(decision.reasons)
        registry.decide(model_name, candidate.version, approved=True, by=decision.by, reason=reason)
        trail.append(
            model_event(AuditEventType.MODEL_APPROVED, model_name, candidate.version, decision.by, reason=reason)
        )
    return decision


def await_decision(registry: ModelRegistry, model_name: str, version: str, task_token: str) -> None:
    """Keep a waiting execution's task token on the version: `record_decision` completes it."""
    registry.set_approval_token(model_name, version, task_token)


class DecisionRequest(BaseModel):
    """Body of POST /models/{version}/approve|reject|rollback."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, min_length=1, max_length=500)


def record_decision(
    registry: ModelRegistry,
    trail: AuditLog,
    stepfunctions: Any,
    model_name: str,
    version: str,
    *,
    approved: bool,
    by: str,
    reason: str,
) -> ModelVersion:
    """A human's decision: the version's status changes (PendingApproval only), the decision is audited, and
    an execution waiting on it (its task token) continues to deployment or fails as ModelRejected."""
    token = registry.approval_token(model_name, version)
    decided = registry.decide(model_name, version, approved=approved, by=by, reason=reason)
    event_type = AuditEventType.MODEL_APPROVED if approved else AuditEventType.MODEL_REJECTED
    trail.append(model_event(event_type, model_name, version, actor=by, reason=reason))
    if token is not None:
        try:
            if approved:
                decision = ApprovalDecision(approved=True, mode="manual", by=by, reasons=[reason])
                stepfunctions.send_task_success(taskToken=token, output=decision.model_dump_json())
            else:
                stepfunctions.send_task_failure(taskToken=token, error="ModelRejected", cause=reason[:256])
        except (stepfunctions.exceptions.InvalidToken, stepfunctions.exceptions.TaskTimedOut):
            _LOG.warning("The execution waiting for the decision on %s has ended", version)
    return decided
