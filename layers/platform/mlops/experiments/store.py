"""Experiments on DynamoDB (the ExperimentsTable): definitions, the running experiment per model, exposures, outcomes.

One table, `pk`/`sk`:
- `EXPERIMENT#<id>` / `DEFINITION`: the experiment as JSON in `document`, `status` also top level;
- `EXPERIMENT#<id>` / `EXPOSURE#<unit>`: the unit's variant, written once (conditional put: idempotent);
- `EXPERIMENT#<id>` / `OUTCOME#<metric>#<unit>`: the unit's value of a metric (the last one written wins);
- `EXPERIMENT#<id>` / `SEQUENTIAL#<metric>#<treatment>`: the running sequential result of a comparison over
  every look so far (`SequentialState` as JSON in `document`, `looks` also top level), written by each analysis
  on the condition that `looks` is still what it read (optimistic locking: a concurrent analysis is repeated);
- `MODEL#<model>` / `RUNNING_EXPERIMENT`: a copy of the experiment splitting that model's /predict traffic,
  written with the definition (a transaction) and deleted when it stops, so scoring needs one read.
Metric, variant names and unit ids cannot contain `#`, so the keys parse unambiguously.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from mlops.core.clock import utc_now
from mlops.core.errors import ExperimentConflictError, ExperimentNotFoundError
from mlops.core.retries import with_retries
from mlops.experiments.models import Experiment, ExperimentStatus, SequentialState

DEFINITION = "DEFINITION"
RUNNING = "RUNNING_EXPERIMENT"
_EXPOSURE = "EXPOSURE#"
_OUTCOME = "OUTCOME#"
_SEQUENTIAL = "SEQUENTIAL#"
_BATCH_WRITE_LIMIT = 25
_BATCH_GET_LIMIT = 100
_TRANSACTION_LIMIT = 100  # 11 metrics x 9 treatments at most: one transaction always holds a look


class SequentialStateConflictError(Exception):
    """Another analysis saved its look after this one read the running sequential results: analyse again."""


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
    def log_exposures(self, experiment_id: str, exposures: Mapping[str, str]) -> int:
        """Record each unit's first exposure (unit -> variant); returns how many were first exposures.

        Batched: one consistent BatchGetItem per 100 units finds those already exposed, one BatchWriteItem per 25
        writes the others (unprocessed items are resent; throttling and 5xx are retried by `mlops.core.retries`,
        the last error is raised once retries run out). A unit already exposed is never rewritten. Two requests
        racing on the same new unit both write it, with the same variant (assignment is deterministic), so the
        analysis counts it once; only its `exposed_at` is the later of the two.
        """
        units = list(dict.fromkeys(exposures))
        known: set[str] = set()
        for start in range(0, len(units), _BATCH_GET_LIMIT):
            chunk = units[start : start + _BATCH_GET_LIMIT]
            keys = [{"pk": _experiment_pk(experiment_id), "sk": {"S": _EXPOSURE + unit}} for unit in chunk]
            request: dict[str, Any] = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
            while request:
                answer = with_retries(lambda request=request: self._ddb.batch_get_item(RequestItems=request))
                known.update(item["sk"]["S"][len(_EXPOSURE) :] for item in answer["Responses"].get(self.table_name, []))
                request = answer.get("UnprocessedKeys") or {}
        now = utc_now()
        items = [
            {
                "PutRequest": {
                    "Item": {
                        "pk": _experiment_pk(experiment_id),
                        "sk": {"S": _EXPOSURE + unit},
                        "variant": {"S": exposures[unit]},
                        "exposed_at": {"S": now},
                    }
                }
            }
            for unit in units
            if unit not in known
        ]
        self._batch_write(items)
        return len(items)

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
        self._batch_write(items)
        return len(items)

    def _batch_write(self, items: list[dict[str, Any]]) -> None:
        """25 items per BatchWriteItem; unprocessed items are resent, throttling and 5xx retried."""
        for start in range(0, len(items), _BATCH_WRITE_LIMIT):
            pending: dict[str, Any] = {self.table_name: items[start : start + _BATCH_WRITE_LIMIT]}
            while pending:
                answer = with_retries(lambda pending=pending: self._ddb.batch_write_item(RequestItems=pending))
                pending = answer.get("UnprocessedItems") or {}

    def exposures(self, experiment_id: str) -> dict[str, str]:
        """Every exposed unit and its variant."""
        return {
            item["sk"]["S"][len(_EXPOSURE) :]: item["variant"]["S"]
            for item in self._query(experiment_id, _EXPOSURE, ("sk", "variant"))
        }

    def outcomes(self, experiment_id: str) -> dict[str, dict[str, float]]:
        """metric -> unit -> value."""
        values: dict[str, dict[str, float]] = {}
        for item in self._query(experiment_id, _OUTCOME, ("sk", "value")):
            metric, unit = item["sk"]["S"][len(_OUTCOME) :].split("#", 1)
            values.setdefault(metric, {})[unit] = float(item["value"]["N"])
        return values

    # ------------------------------------------------------------------ sequential results
    def sequential_states(self, experiment_id: str) -> dict[tuple[str, str], SequentialState]:
        """(metric, treatment) -> the running sequential result of that comparison over the looks so far."""
        states = (
            SequentialState.model_validate_json(item["document"]["S"])
            for item in self._query(experiment_id, _SEQUENTIAL)
        )
        return {(state.metric, state.treatment): state for state in states}

    def save_sequential_states(
        self,
        experiment_id: str,
        states: Iterable[SequentialState],
        previous: Mapping[tuple[str, str], SequentialState],
    ) -> None:
        """Save one look's running results, all or none (one transaction), each on the condition that its item still
        holds `previous` (the looks this one was computed from). Raises `SequentialStateConflictError` when another
        analysis saved first: the caller reads the states again and repeats its look."""
        writes = []
        for state in states:
            before = previous.get((state.metric, state.treatment))
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
            if before is not None:
                condition = {
                    "ConditionExpression": "looks = :looks",
                    "ExpressionAttributeValues": {":looks": {"N": str(before.looks)}},
                }
            item = {
                "pk": _experiment_pk(experiment_id),
                "sk": {"S": f"{_SEQUENTIAL}{state.metric}#{state.treatment}"},
                "looks": {"N": str(state.looks)},
                "document": {"S": state.model_dump_json()},
            }
            writes.append({"Put": {"TableName": self.table_name, "Item": item, **condition}})
        if not writes:
            return
        if len(writes) > _TRANSACTION_LIMIT:
            raise ValueError(f"{len(writes)} comparisons exceed one transaction ({_TRANSACTION_LIMIT} items)")
        try:
            self._ddb.transact_write_items(TransactItems=writes)
        except self._ddb.exceptions.TransactionCanceledException as error:
            # A failed condition, or a concurrent transaction on the same items: either way someone else wrote.
            raise SequentialStateConflictError(experiment_id) from error

    # ------------------------------------------------------------------ helpers
    def _query(self, experiment_id: str, prefix: str, attributes: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
        """The experiment's items under `prefix`; only the named `attributes` of each if some are given."""
        projection: dict[str, Any] = {}
        if attributes:  # names through placeholders: "value" is a DynamoDB reserved word
            names = {f"#a{index}": name for index, name in enumerate(attributes)}
            projection = {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
        pages = self._ddb.get_paginator("query").paginate(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": _experiment_pk(experiment_id), ":prefix": {"S": prefix}},
            ConsistentRead=True,
            **projection,
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
