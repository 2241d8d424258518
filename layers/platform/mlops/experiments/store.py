"""Experiments on DynamoDB (the ExperimentsTable): definitions, the running experiment per model, exposures, outcomes.

One table, `pk`/`sk`:
- `EXPERIMENT#<id>` / `DEFINITION`: the experiment as JSON in `document`, `status` also top level;
- `EXPERIMENT#<id>` / `EXPOSURE#<unit>`: the unit's variant, written once (conditional put: idempotent);
- `EXPERIMENT#<id>` / `OUTCOME#<metric>#<unit>`: the unit's value of a metric (the last one written wins);
- `MODEL#<model>` / `RUNNING_EXPERIMENT`: a copy of the experiment splitting that model's /predict traffic,
  written with the definition (a transaction) and deleted when it stops, so scoring needs one read.
Metric names and unit ids cannot contain `#`, so the keys parse unambiguously.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from mlops.core.clock import utc_now
from mlops.core.errors import ExperimentConflictError, ExperimentNotFoundError
from mlops.core.retries import with_retries
from mlops.experiments.models import Experiment, ExperimentStatus

DEFINITION = "DEFINITION"
RUNNING = "RUNNING_EXPERIMENT"
_EXPOSURE = "EXPOSURE#"
_OUTCOME = "OUTCOME#"
_BATCH_WRITE_LIMIT = 25


def _experiment_pk(experiment_id: str) -> dict[str, Any]:
    return {"S": f"EXPERIMENT#{experiment_id}"}


def _running_key(model_name: str) -> dict[str, Any]:
    return {"pk": {"S": f"MODEL#{model_name}"}, "sk": {"S": RUNNING}}


class ExperimentStore:
    def __init__(self, table_name: str, dynamodb_client: Any) -> None:
        self.table_name = table_name
        self._ddb = dynamodb_client

    # ------------------------------------------------------------------ definitions
    def create(self, experiment: Experiment) -> None:
        """Store a new experiment; with a model, also make it that model's running experiment (atomically)."""
        definition = {
            "Put": {
                "TableName": self.table_name,
                "Item": self._definition_item(experiment),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        writes = [definition]
        if experiment.model_name is not None:
            writes.append(
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": {
                            **_running_key(experiment.model_name),
                            "experiment_id": {"S": experiment.experiment_id},
                            "document": {"S": experiment.model_dump_json()},
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        try:
            self._ddb.transact_write_items(TransactItems=writes)
        except self._ddb.exceptions.TransactionCanceledException as error:
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise ExperimentConflictError(
                    field="experiment_id", message=f"experiment {experiment.experiment_id} already exists"
                ) from error
            running = self.running_for_model(experiment.model_name or "")
            raise ExperimentConflictError(
                field="model_name",
                message=f"experiment {running.experiment_id if running else '?'} is already running for model "
                f"{experiment.model_name}; stop it first",
            ) from error

    def get(self, experiment_id: str) -> Experiment:
        item = self._ddb.get_item(
            TableName=self.table_name,
            Key={"pk": _experiment_pk(experiment_id), "sk": {"S": DEFINITION}},
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            raise ExperimentNotFoundError(field="experiment_id", message=f"no experiment {experiment_id}")
        return Experiment.model_validate_json(item["document"]["S"])

    def running_for_model(self, model_name: str) -> Experiment | None:
        item = self._ddb.get_item(TableName=self.table_name, Key=_running_key(model_name), ConsistentRead=True).get(
            "Item"
        )
        return None if item is None else Experiment.model_validate_json(item["document"]["S"])

    def stop(self, experiment: Experiment, reason: str | None) -> Experiment:
        """Mark it stopped and, if it splits a model's traffic, release the model (one transaction)."""
        stopped = experiment.model_copy(
            update={"status": ExperimentStatus.STOPPED, "stopped_at": utc_now(), "stop_reason": reason}
        )
        writes: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": self._definition_item(stopped),
                    "ConditionExpression": "#status = :running",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {":running": {"S": ExperimentStatus.RUNNING.value}},
                }
            }
        ]
        if experiment.model_name is not None:
            writes.append(
                {
                    "Delete": {
                        "TableName": self.table_name,
                        "Key": _running_key(experiment.model_name),
                        "ConditionExpression": "experiment_id = :id",
                        "ExpressionAttributeValues": {":id": {"S": experiment.experiment_id}},
                    }
                }
            )
        try:
            self._ddb.transact_write_items(TransactItems=writes)
        except self._ddb.exceptions.TransactionCanceledException as error:
            raise ExperimentConflictError(
                field="experiment_id", message=f"experiment {experiment.experiment_id} is no longer running"
            ) from error
        return stopped

    # ------------------------------------------------------------------ exposures and outcomes
    def log_exposure(self, experiment_id: str, unit_id: str, variant: str) -> bool:
        """Record the unit's first exposure; False (and nothing written) if it was already exposed.

        Throttling and 5xx are retried (`mlops.core.retries`): the write is conditional, so a repeat of an attempt that
        did land finds the exposure there and writes nothing. The last error is raised once retries run out.
        """
        item = {
            "pk": _experiment_pk(experiment_id),
            "sk": {"S": _EXPOSURE + unit_id},
            "variant": {"S": variant},
            "exposed_at": {"S": utc_now()},
        }
        try:
            with_retries(
                lambda: self._ddb.put_item(
                    TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)"
                )
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def exposure(self, experiment_id: str, unit_id: str) -> str | None:
        item = self._ddb.get_item(
            TableName=self.table_name,
            Key={"pk": _experiment_pk(experiment_id), "sk": {"S": _EXPOSURE + unit_id}},
            ConsistentRead=True,
        ).get("Item")
        return None if item is None else item["variant"]["S"]

    def record_outcomes(self, experiment_id: str, outcomes: Iterable[tuple[str, str, float]]) -> int:
        """Write (unit, metric, value) outcomes, 25 per BatchWriteItem; unprocessed items are retried."""
        now = utc_now()
        items = [
            {
                "PutRequest": {
                    "Item": {
                        "pk": _experiment_pk(experiment_id),
                        "sk": {"S": f"{_OUTCOME}{metric}#{unit}"},
                        "value": {"N": repr(float(value))},
                        "recorded_at": {"S": now},
                    }
                }
            }
            for unit, metric, value in outcomes
        ]
        for start in range(0, len(items), _BATCH_WRITE_LIMIT):
            pending = {self.table_name: items[start : start + _BATCH_WRITE_LIMIT]}
            while pending:
                pending = self._ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        return len(items)

    def exposures(self, experiment_id: str) -> dict[str, str]:
        """Every exposed unit and its variant."""
        return {
            item["sk"]["S"][len(_EXPOSURE) :]: item["variant"]["S"] for item in self._query(experiment_id, _EXPOSURE)
        }

    def outcomes(self, experiment_id: str) -> dict[str, dict[str, float]]:
        """metric -> unit -> value."""
        values: dict[str, dict[str, float]] = {}
        for item in self._query(experiment_id, _OUTCOME):
            metric, unit = item["sk"]["S"][len(_OUTCOME) :].split("#", 1)
            values.setdefault(metric, {})[unit] = float(item["value"]["N"])
        return values

    # ------------------------------------------------------------------ helpers
    def _query(self, experiment_id: str, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self._ddb.get_paginator("query").paginate(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": _experiment_pk(experiment_id), ":prefix": {"S": prefix}},
            ConsistentRead=True,
        )
        for page in pages:
            yield from page["Items"]

    def _definition_item(self, experiment: Experiment) -> dict[str, Any]:
        return {
            "pk": _experiment_pk(experiment.experiment_id),
            "sk": {"S": DEFINITION},
            "status": {"S": experiment.status.value},
            "name": {"S": experiment.name},
            "document": {"S": experiment.model_dump_json()},
        }
