"""What the model sees and what then happens: sampled inference capture and logged outcomes, in S3.

- The scoring function captures a sample of what it scored (`InferenceCapture`): the raw inputs after stored
  features are merged in, the score and the model version, never the customer id. One JSON-lines object per
  request under `capture/<model>/dt=<day>/hour=<hh>/`.
- Outcomes (did the customer churn?) arrive later through `POST /outcomes` (`OutcomeLog`), under
  `outcomes/<model>/dt=<day>/`.

Only boto3, numpy, pydantic and Powertools here: the scoring function imports this module
(`mlops.monitoring.monitor`, which needs scipy for drift statistics, is for the monitor alone).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from mlops.api.contracts import EntityId, IsoDateTime, Prediction
from mlops.core.clock import utc
from mlops.core.observability import MetricUnit, metrics
from mlops.data.features import Columns

CAPTURE_PREFIX = "capture"
OUTCOMES_PREFIX = "outcomes"
MAX_OUTCOMES = 1000
"""Outcomes one POST /outcomes may log."""


def score_bucket(probability: float) -> str:
    """The churn-score bucket of a probability: "0.0-0.1" ... "0.9-1.0" (1.0 falls in the last)."""
    low = min(int(probability * 10), 9) / 10
    return f"{low:.1f}-{low + 0.1:.1f}"


def _hours(since: dt.datetime, until: dt.datetime) -> Iterator[dt.datetime]:
    hour = since.replace(minute=0, second=0, microsecond=0)
    while hour <= until:
        yield hour
        hour += dt.timedelta(hours=1)


def _json_value(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    return value


class _JsonLinesStore:
    """JSON-lines objects in one bucket, read back by key prefix."""

    def __init__(self, bucket: str, s3_client: Any) -> None:
        self.bucket = bucket
        self.s3 = s3_client

    def put_lines(self, key: str, rows: Sequence[dict[str, Any]]) -> None:
        body = "\n".join(json.dumps(row, separators=(",", ":")) for row in rows).encode()
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/x-ndjson")

    def read_lines(self, prefix: str) -> Iterator[dict[str, Any]]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                body = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                yield from (json.loads(line) for line in body.splitlines() if line.strip())


# ------------------------------------------------------------------------------------------------ capture
class InferenceCapture(_JsonLinesStore):
    """A sample of scored requests, for drift monitoring (the audit trail keeps only hashes of the inputs)."""

    def __init__(
        self,
        bucket: str,
        s3_client: Any,
        model_name: str,
        sample_rate: float,
        draw: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(bucket, s3_client)
        self.model_name = model_name
        self.sample_rate = sample_rate
        self.draw = draw

    def write(self, predictions: Sequence[Prediction], columns: Columns, now: dt.datetime | None = None) -> int:
        """Store the sampled rows of one request in one object; returns how many rows were kept."""
        keep = [i for i in range(len(predictions)) if self.draw() < self.sample_rate]
        if not keep:
            return 0
        moment = utc(now)
        rows = [
            {
                "captured_at": moment.isoformat(),
                "prediction_id": predictions[i].prediction_id,
                "model_version": predictions[i].model_version,
                "variant": predictions[i].variant,
                "churn_probability": predictions[i].churn_probability,
                "features": {name: _json_value(values[i]) for name, values in columns.items()},
            }
            for i in keep
        ]
        key = f"{self._hour_prefix(moment)}{moment:%M%S}-{uuid.uuid4().hex}.jsonl"
        self.put_lines(key, rows)
        return len(rows)

    def read(self, since: dt.datetime, until: dt.datetime, model_version: str | None = None) -> list[dict[str, Any]]:
        """Captured rows between `since` and `until` (optionally of one model version)."""
        since, until = utc(since), utc(until)
        rows = []
        for hour in _hours(since, until):
            for row in self.read_lines(self._hour_prefix(hour)):
                captured = dt.datetime.fromisoformat(row["captured_at"])
                if since <= captured <= until and model_version in (None, row["model_version"]):
                    rows.append(row)
        return rows

    def _hour_prefix(self, moment: dt.datetime) -> str:
        return f"{CAPTURE_PREFIX}/{self.model_name}/dt={moment:%Y-%m-%d}/hour={moment:%H}/"


# ------------------------------------------------------------------------------------------------ outcomes
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


class OutcomeLog(_JsonLinesStore):
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
        days = sorted({hour.date() for hour in _hours(since, until)})
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
