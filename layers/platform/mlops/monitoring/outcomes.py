"""What then happens: outcomes (did the customer churn?) logged through `POST /outcomes` (`OutcomeLog`),
one JSON-lines object per request under `outcomes/<model>/dt=<day>/`.

An outcome names the prediction it judges by the `prediction_id` /predict returned (an exact join), or only
the customer (then the monitor judges the customer's latest prediction before the outcome was observed).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, WithJsonSchema

from mlops.api.contracts import EntityId, IsoDateTime
from mlops.core.clock import utc
from mlops.core.observability import MetricUnit, metrics
from mlops.monitoring.store import JsonLinesStore, hours_between

OUTCOMES_PREFIX = "outcomes"
MAX_OUTCOMES = 1000
"""Outcomes one POST /outcomes may log."""

_UUID_PATTERN = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"


def _prediction_id(value: str) -> str:
    if not re.fullmatch(_UUID_PATTERN, value):
        raise ValueError("must be a prediction_id as /predict returned it: a UUID of 8-4-4-4-12 hexadecimal digits")
    return value.lower()  # /predict returns lower case; a caller's upper-case copy names the same prediction


PredictionId = Annotated[
    str,
    AfterValidator(_prediction_id),
    WithJsonSchema({"type": "string", "format": "uuid", "pattern": _UUID_PATTERN}),
]
"""The id /predict returned for one prediction (a UUID, compared in lower case)."""


class Outcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: EntityId
    churned: StrictBool  # not 0/1 or "yes": the document says boolean
    observed_at: IsoDateTime = Field(description="When the outcome was known (ISO-8601 with a time zone).")
    prediction_id: PredictionId | None = Field(
        default=None,
        description="The prediction this outcome judges, as /predict returned it: joined exactly. Omitted: the "
        "customer's latest prediction before `observed_at` is judged.",
    )


class OutcomesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcomes: list[Outcome] = Field(min_length=1, max_length=MAX_OUTCOMES)


class OutcomesAccepted(BaseModel):
    accepted: int
    key: str


class OutcomeLog(JsonLinesStore):
    """Observed outcomes, one object per `POST /outcomes`, partitioned by the day they were logged."""

    def __init__(self, bucket: str, s3_client: Any, model_name: str) -> None:
        super().__init__(bucket, s3_client)
        self.model_name = model_name

    def write(self, outcomes: Sequence[Outcome], request_id: str, now: dt.datetime | None = None) -> str:
        moment = utc(now)
        key = f"{self._day_prefix(moment)}{moment:%H%M%S}-{request_id}.jsonl"
        rows = [{**o.model_dump(mode="json", exclude_none=True), "logged_at": moment.isoformat()} for o in outcomes]
        self.put_lines(key, rows)
        return key

    def read(self, since: dt.datetime, until: dt.datetime) -> list[Outcome]:
        """Outcomes logged between `since` and `until` (by when they were logged, not observed), in the order
        they were logged: a later outcome for the same prediction corrects an earlier one."""
        since, until = utc(since), utc(until)
        days = sorted({hour.date() for hour in hours_between(since, until)})
        rows = (
            row
            for day in days
            for row in self.read_lines(self._day_prefix(dt.datetime.combine(day, dt.time(), dt.UTC)))
        )
        logged = [
            (dt.datetime.fromisoformat(row["logged_at"]), {k: v for k, v in row.items() if k != "logged_at"})
            for row in rows
        ]
        in_window = [(at, row) for at, row in logged if since <= at <= until]
        # A stable sort: the outcomes of one request keep their order.
        return [Outcome.model_validate(row) for _, row in sorted(in_window, key=lambda pair: pair[0])]

    def _day_prefix(self, moment: dt.datetime) -> str:
        return f"{OUTCOMES_PREFIX}/{self.model_name}/dt={moment:%Y-%m-%d}/"


def accept_outcomes(log: OutcomeLog, outcomes: Sequence[Outcome], request_id: str) -> OutcomesAccepted:
    """What `POST /outcomes` does: the outcomes in one object (named after the request), counted (`OutcomesLogged`)."""
    key = log.write(outcomes, request_id)
    metrics.add_metric(name="OutcomesLogged", unit=MetricUnit.Count, value=len(outcomes))
    return OutcomesAccepted(accepted=len(outcomes), key=key)
