"""Model registry on DynamoDB: model versions, the production alias, and failed pilot runs.

One table, keyed `pk = MODEL#<name>`:
- `sk = VERSION#<version>`: a model version; its whole record is kept as JSON in `document`, with `status`
  and `created_at` also as top-level attributes so they can be filtered on.
- `sk = ALIAS#production`: which version serves. Deploying is one transaction that moves the alias
  (conditioned on the version it expects to replace) and updates both versions' statuses, so a failed or
  concurrent deployment leaves the previous model serving.
- `sk = RUN#<execution>`: a failed pilot run, written by the state machine's RecordFailure state.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlops.core.artifacts import ArtifactRef
from mlops.core.clock import utc_now
from mlops.core.errors import DeploymentConflictError, InvalidTransitionError, ModelNotFoundError

PRODUCTION_ALIAS = "ALIAS#production"
_VERSION_PREFIX = "VERSION#"


class ModelStatus(StrEnum):
    PENDING_APPROVAL = "PendingApproval"
    APPROVED = "Approved"
    DEPLOYED = "Deployed"
    RETIRED = "Retired"
    REJECTED = "Rejected"


# Which statuses a version may be deployed from: approved ones, or a retired one brought back by a rollback.
DEPLOYABLE = frozenset({ModelStatus.APPROVED, ModelStatus.RETIRED, ModelStatus.DEPLOYED})


class StatusChange(BaseModel):
    status: ModelStatus
    at: str
    by: str
    reason: str


class ModelVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: str
    version: str
    status: ModelStatus
    created_at: str
    algorithm: str
    threshold: float = Field(ge=0, le=1)
    metrics: dict[str, Any]
    artifacts: dict[str, ArtifactRef]
    dataset_sha256: str
    execution_arn: str | None = None
    status_history: list[StatusChange] = Field(default_factory=list)


class ProductionAlias(BaseModel):
    model_name: str
    version: str
    deployment_id: str
    deployed_at: str
    previous_version: str | None = None


class ModelRegistry:
    def __init__(self, table_name: str, dynamodb_client: Any) -> None:
        self.table_name = table_name
        self._ddb = dynamodb_client

    # ------------------------------------------------------------------ versions
    def register(self, version: ModelVersion) -> None:
        self._ddb.put_item(
            TableName=self.table_name,
            Item=self._version_item(version),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get(self, model_name: str, version: str) -> ModelVersion:
        item = self._ddb.get_item(
            TableName=self.table_name,
            Key=_key(model_name, _VERSION_PREFIX + version),
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            raise ModelNotFoundError(field="model_version", message=f"model {model_name} has no version {version}")
        return ModelVersion.model_validate_json(item["document"]["S"])

    def list_versions(self, model_name: str) -> list[ModelVersion]:
        paginator = self._ddb.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": _pk(model_name)}, ":prefix": {"S": _VERSION_PREFIX}},
        )
        versions = [ModelVersion.model_validate_json(i["document"]["S"]) for p in pages for i in p["Items"]]
        return sorted(versions, key=lambda v: (v.created_at, v.version), reverse=True)

    def decide(self, model_name: str, version: str, *, approved: bool, by: str, reason: str) -> ModelVersion:
        """Approve or reject a version awaiting approval (PendingApproval only: a decision is taken once)."""
        current = self.get(model_name, version)
        status = ModelStatus.APPROVED if approved else ModelStatus.REJECTED
        put = self._version_put(current, status, utc_now(), by, reason)
        try:
            self._ddb.put_item(
                **put,
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":pending": {"S": ModelStatus.PENDING_APPROVAL.value}},
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            raise InvalidTransitionError(
                field="model_version",
                message=f"version {version} is {self.get(model_name, version).status.value}; only a version "
                "awaiting approval can be approved or rejected",
            ) from None
        return ModelVersion.model_validate_json(put["Item"]["document"]["S"])

    def set_approval_token(self, model_name: str, version: str, task_token: str) -> None:
        """Keep the Step Functions task token of the execution waiting for a decision on this version."""
        try:
            self._ddb.update_item(
                TableName=self.table_name,
                Key=_key(model_name, _VERSION_PREFIX + version),
                UpdateExpression="SET approval_task_token = :token",
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":token": {"S": task_token},
                    ":pending": {"S": ModelStatus.PENDING_APPROVAL.value},
                },
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            raise InvalidTransitionError(field="model_version", message=f"version {version} is not pending") from None

    def approval_token(self, model_name: str, version: str) -> str | None:
        item = self._ddb.get_item(
            TableName=self.table_name, Key=_key(model_name, _VERSION_PREFIX + version), ConsistentRead=True
        ).get("Item")
        return item.get("approval_task_token", {}).get("S") if item else None

    # ------------------------------------------------------------------ production alias
    def get_production(self, model_name: str) -> ProductionAlias | None:
        item = self._ddb.get_item(
            TableName=self.table_name, Key=_key(model_name, PRODUCTION_ALIAS), ConsistentRead=True
        ).get("Item")
        return None if item is None else ProductionAlias.model_validate_json(item["document"]["S"])

    def deploy(
        self,
        model_name: str,
        version: str,
        *,
        deployment_id: str,
        expected_current: str | None,
        changed_by: str,
        reason: str,
    ) -> ProductionAlias:
        """Point production at `version` if production still serves `expected_current` (None: nothing).

        The alias move and both status changes are one DynamoDB transaction.
        """
        target = self.get(model_name, version)
        if target.status not in DEPLOYABLE:
            raise InvalidTransitionError(
                field="model_version",
                message=f"version {version} is {target.status.value}; only an approved version can be deployed",
            )
        now = utc_now()
        alias = ProductionAlias(
            model_name=model_name,
            version=version,
            deployment_id=deployment_id,
            deployed_at=now,
            previous_version=expected_current,
        )
        writes: list[dict[str, Any]] = [
            {"Put": self._alias_put(alias, expected_current)},
            {"Put": self._version_put(target, ModelStatus.DEPLOYED, now, changed_by, reason)},
        ]
        if expected_current is not None and expected_current != version:
            previous = self.get(model_name, expected_current)
            retire_reason = f"replaced by {version} ({deployment_id})"
            writes.append({"Put": self._version_put(previous, ModelStatus.RETIRED, now, changed_by, retire_reason)})
        self._transact(writes, model_name, expected_current)
        return alias

    def undeploy(self, model_name: str, *, expected_current: str, changed_by: str, reason: str) -> None:
        """Remove the production alias (a rollback to 'no model' after a failed first deployment)."""
        now = utc_now()
        current = self.get(model_name, expected_current)
        writes = [
            {
                "Delete": {
                    "TableName": self.table_name,
                    "Key": _key(model_name, PRODUCTION_ALIAS),
                    "ConditionExpression": "#version = :expected",
                    "ExpressionAttributeNames": {"#version": "version"},
                    "ExpressionAttributeValues": {":expected": {"S": expected_current}},
                }
            },
            {"Put": self._version_put(current, ModelStatus.RETIRED, now, changed_by, reason)},
        ]
        self._transact(writes, model_name, expected_current)

    # ------------------------------------------------------------------ helpers
    def _transact(self, writes: list[dict[str, Any]], model_name: str, expected_current: str | None) -> None:
        try:
            self._ddb.transact_write_items(TransactItems=writes)
        except self._ddb.exceptions.TransactionCanceledException as error:
            current = self.get_production(model_name)
            raise DeploymentConflictError(
                field="expected_current_version",
                message=(
                    f"production of {model_name} serves {current.version if current else None}, "
                    f"not the expected {expected_current}; nothing was changed"
                ),
            ) from error

    def _version_item(self, version: ModelVersion) -> dict[str, Any]:
        return {
            **_key(version.model_name, _VERSION_PREFIX + version.version),
            "status": {"S": version.status.value},
            "created_at": {"S": version.created_at},
            "document": {"S": version.model_dump_json()},
        }

    def _version_put(self, version: ModelVersion, status: ModelStatus, at: str, by: str, reason: str) -> dict[str, Any]:
        changed = version.model_copy(
            update={
                "status": status,
                "status_history": [
                    *version.status_history,
                    StatusChange(status=status, at=at, by=by, reason=reason),
                ],
            }
        )
        return {"TableName": self.table_name, "Item": self._version_item(changed)}

    def _alias_put(self, alias: ProductionAlias, expected_current: str | None) -> dict[str, Any]:
        put: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": {
                **_key(alias.model_name, PRODUCTION_ALIAS),
                "version": {"S": alias.version},
                "document": {"S": alias.model_dump_json()},
            },
        }
        if expected_current is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#version = :expected"
            put["ExpressionAttributeNames"] = {"#version": "version"}
            put["ExpressionAttributeValues"] = {":expected": {"S": expected_current}}
        return put


def _pk(model_name: str) -> str:
    return f"MODEL#{model_name}"


def _key(model_name: str, sort_key: str) -> dict[str, Any]:
    return {"pk": {"S": _pk(model_name)}, "sk": {"S": sort_key}}
