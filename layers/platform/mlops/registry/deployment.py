"""Deployments: moving a model's production alias, each move written to the audit trail by the service itself.

A deployment points production at an approved version (`model_deployed`). A rollback puts production back on
the version that served before a failed run (`model_rolled_back`); a rollback runs because a run failed, so
when production had not moved yet the run's failure is audited all the same (`pilot_run`, production
unchanged). The registry's transaction makes each move all or nothing.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel

from mlops.audit.events import model_event
from mlops.audit.queue import AuditLog
from mlops.audit.records import AuditEventType
from mlops.core.errors import InvalidTransitionError
from mlops.registry.store import ModelRegistry, ProductionAlias

UNCHANGED_OUTCOME = "failed after deployment started; production unchanged"


class AliasChange(BaseModel):
    """What a deployment or rollback did to the production alias."""

    action: Literal["deploy", "rollback"]
    deployment_id: str
    model_version: str | None
    previous_version: str | None
    changed: bool


class DeploymentService:
    """Moves the production alias of a model and audits every move (one audit trail, one registry)."""

    def __init__(self, registry: ModelRegistry, trail: AuditLog) -> None:
        self._registry = registry
        self._trail = trail

    def deploy(
        self,
        model_name: str,
        version: str,
        *,
        deployment_id: str,
        expected_current: str | None,
        by: str,
        reason: str,
        cause: str | None = None,
    ) -> AliasChange:
        """Point production at `version` if it still serves `expected_current`. `reason` goes into the version's
        status history, `cause` (what asked for the deployment, if anything) into the audit record."""
        alias = self._registry.deploy(
            model_name,
            version,
            deployment_id=deployment_id,
            expected_current=expected_current,
            changed_by=by,
            reason=reason,
        )
        change = AliasChange(
            action="deploy",
            deployment_id=alias.deployment_id,
            model_version=alias.version,
            previous_version=alias.previous_version,
            changed=True,
        )
        self._audit(AuditEventType.MODEL_DEPLOYED, model_name, change, by, cause)
        return change

    def restore(
        self, model_name: str, version: str | None, *, deployment_id: str, by: str, reason: str, cause: str | None
    ) -> AliasChange:
        """Put production back on `version` (None: no model) after a failed run; nothing moves if it serves it."""
        current = self._registry.get_production(model_name)
        current_version = current.version if current else None
        if current_version == version:
            changed = False
        elif version is None:
            assert current_version is not None
            self._registry.undeploy(model_name, expected_current=current_version, changed_by=by, reason=reason)
            changed = True
        else:
            self._registry.deploy(
                model_name,
                version,
                deployment_id=deployment_id,
                expected_current=current_version,
                changed_by=by,
                reason=reason,
            )
            changed = True
        change = AliasChange(
            action="rollback",
            deployment_id=deployment_id,
            model_version=version,
            previous_version=current_version,
            changed=changed,
        )
        event_type = AuditEventType.MODEL_ROLLED_BACK if changed else AuditEventType.PILOT_RUN
        self._audit(event_type, model_name, change, by, cause)
        return change

    def roll_back(self, model_name: str, version: str, *, by: str, reason: str) -> ProductionAlias:
        """Take `version` out of production and redeploy the version it replaced (the API's rollback)."""
        production = self._registry.get_production(model_name)
        if production is None or production.version != version:
            raise InvalidTransitionError(field="model_version", message=f"version {version} is not in production")
        if production.previous_version is None:
            raise InvalidTransitionError(
                field="model_version", message=f"version {version} replaced no earlier version: nothing to roll back to"
            )
        alias = self._registry.deploy(
            model_name,
            production.previous_version,
            deployment_id=f"rollback-{uuid.uuid4().hex[:12]}",
            expected_current=version,
            changed_by=by,
            reason=reason,
        )
        change = AliasChange(
            action="rollback",
            deployment_id=alias.deployment_id,
            model_version=alias.version,
            previous_version=version,
            changed=True,
        )
        self._audit(AuditEventType.MODEL_ROLLED_BACK, model_name, change, by, reason)
        return alias

    def _audit(
        self, event_type: AuditEventType, model_name: str, change: AliasChange, by: str, cause: str | None
    ) -> None:
        self._trail.append(
            model_event(
                event_type,
                model_name,
                change.model_version,
                actor=by,
                deployment_id=change.deployment_id,
                previous_version=change.previous_version,
                reason=cause,
                outcome=None if change.changed else UNCHANGED_OUTCOME,
            )
        )
