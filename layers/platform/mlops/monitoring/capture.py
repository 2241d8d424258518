"""What the model sees: a sample of scored requests, in S3 (`InferenceCapture`).

The scoring function captures a sample of what it scored: the raw inputs after stored features are merged in,
the score and the model version, never the customer id. One JSON-lines object per request under
`capture/<model>/dt=<day>/hour=<hh>/`. `score_bucket` names the score's bucket in the scoring metrics.

A prediction may be captured more than once (a retried write, a resent object): `distinct_predictions` keeps
one row per prediction id, so the monitor counts each prediction once.

No scipy here: the scoring function imports this module (`mlops.monitoring.monitor`, which needs scipy for
drift statistics, is for the monitor alone).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from mlops.api.contracts import Prediction
from mlops.core.clock import utc
from mlops.data.features import Columns
from mlops.monitoring.store import JsonLinesStore, hours_between

CAPTURE_PREFIX = "capture"


def score_bucket(probability: float) -> str:
    """The churn-score bucket of a probability: "0.0-0.1" ... "0.9-1.0" (1.0 falls in the last)."""
    low = min(int(probability * 10), 9) / 10
    return f"{low:.1f}-{low + 0.1:.1f}"


def distinct_predictions[Row: Mapping[str, Any]](rows: Iterable[Row]) -> tuple[list[Row], int]:
    """The rows with the first of each prediction id kept (a row without one is kept as it is), and how many
    repeats were left out."""
    seen: set[str] = set()
    distinct: list[Row] = []
    repeats = 0
    for row in rows:
        prediction_id = row.get("prediction_id")
        if prediction_id is not None:
            if prediction_id in seen:
                repeats += 1
                continue
            seen.add(prediction_id)
        distinct.append(row)
    return distinct, repeats


def _json_value(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    return value


class InferenceCapture(JsonLinesStore):
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
        for hour in hours_between(since, until):
            for row in self.read_lines(self._hour_prefix(hour)):
                captured = dt.datetime.fromisoformat(row["captured_at"])
                if since <= captured <= until and model_version in (None, row["model_version"]):
                    rows.append(row)
        return rows

    def _hour_prefix(self, moment: dt.datetime) -> str:
        return f"{CAPTURE_PREFIX}/{self.model_name}/dt={moment:%Y-%m-%d}/hour={moment:%H}/"
