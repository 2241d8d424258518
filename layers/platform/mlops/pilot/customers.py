"""The customers the pilot sends to the scoring function (a split of the run, or generated ones), read with the
csv module only, so that the zip steps using them (the monitoring step) need no pandas."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops.data.schema import DataSchema


@dataclass(frozen=True)
class Customers:
    """Customers to send to /predict, and whether each would churn (its label, or the simulation's draw)."""

    ids: list[str]
    features: list[dict[str, float | str | None]]
    would_churn: np.ndarray
    simulated: np.ndarray  # True for a generated customer


def read_customers(csv_bytes: bytes, schema: DataSchema) -> Customers:
    """A split written by pandas, read with the csv module: empty cells are missing values."""
    ids, features, labels = [], [], []
    for row in csv.DictReader(io.StringIO(csv_bytes.decode())):
        ids.append(row[schema.id_column])
        record: dict[str, float | str | None] = {}
        for name in schema.numerical:
            record[name] = float(row[name]) if row.get(name) not in (None, "") else None
        for name in schema.categorical:
            record[name] = row[name] if row.get(name) not in (None, "") else None
        features.append(record)
        labels.append(row[schema.target] == schema.positive_label)
    return Customers(ids=ids, features=features, would_churn=np.array(labels, bool), simulated=np.zeros(len(ids), bool))


def response_predictions(response: dict[str, Any]) -> list[dict[str, Any]]:
    return json.loads(response["body"])["predictions"]
