"""What then happens: outcomes (did the customer churn?) logged through `POST /outcomes` (`OutcomeLog`),
one JSON-lines object per request under `outcomes/<model>/dt=<day>/`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from mlops.api.contracts import EntityId, IsoDateTime
from mlops.core.clock import utc
from mlops.core.observability import MetricUnit, metrics
from mlops.monitoring.store import JsonLinesStore, hours_between

OUTCOMES_PREFIX = "outcomes"
MAX_OUTCOMES = 1000
"""Outcomes one POST /outcomes may log."""


class Outcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: EntityId
    churned: StrictBool  # not 0/1 or "yes": the document says boolean
    observed_at: IsoDateTime = Field(description="When the outcome was known (ISO-8601 with a time zone).")


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
        self.put_lines(key, [{**o.model_dump(mode="json"), "logged_at": moment.isoformat()} for o in outcomes])
        return key

    def read(self, since: dt.datetime, until: dt.datetime) -> list[Outcome]:
        """Outcomes logged between `since` and `until` (by when they were logged, not observed)."""
        since, until = utc(since), utc(until)
        days = sorted({hour.date() for hour in hours_between(since, until)})
        rows = (
            row
            for day in days
            for row in self.read_lines(self._day_prefix(dt.datetime.combine(day, dt.time(), dt.UTC)))
        )
        return [
            Outcome.model_validate({k: v for k, v in row.items() if k != "logged_at"})
            for row in rows
            if since <= dt.datetime.fromisoformat(row["logged_at"]) <= until
        ]

    def _day_prefix(self, moment: dt.datetime) -> str:
        return f"{OUTCOMES_PREFIX}/{self.model_name}/dt={moment:%Y-%m-%d}/"


def accept_outcomes(log: OutcomeLog, outcomes: Sequence[Outcome], request_id: str) -> OutcomesAccepted:
    """What `POST /outcomes` does: the outcomes in one object (named after the request), counted (`OutcomesLogged`)."""
    key = log.write(outcomes, request_id)
    metrics.add_metric(name="OutcomesLogged", unit=MetricUnit.Count, value=len(outcomes))
    return OutcomesAccepted(accepted=len(outcomes), key=key)
