"""Accuracy on logged outcomes: each outcome joined with the latest audited prediction for its customer made
before it was observed (`measure_accuracy`, over `audited_predictions`), as an `AccuracyReport`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from mlops.audit.queries import query_audit
from mlops.audit.records import AuditEventType
from mlops.core.clock import utc
from mlops.monitoring.outcomes import Outcome

MIN_OUTCOMES_FOR_ACCURACY = 50
AUDIT_PAGE = 500


class AccuracyReport(BaseModel):
    """The model's own decisions (probability >= its threshold, whatever variant was served) against outcomes."""

    outcomes: int
    matched: int = Field(description="Outcomes with a prediction for the same customer before them.")
    sufficient_data: bool
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    confusion_matrix: dict[str, int] | None = None


def audited_predictions(
    audit_table: str, dynamodb_client: Any, since: dt.datetime, until: dt.datetime
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(occurred_at, prediction) for every audited prediction in the span, single or batched records."""
    token = None
    while True:
        page = query_audit(
            audit_table,
            dynamodb_client,
            event_type=AuditEventType.PREDICTION,
            since=since,
            until=until,
            limit=AUDIT_PAGE,
            page_token=token,
        )
        for record in page.records:
            details = record.event.details
            entries = details.get("predictions", [details])
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict):
                    yield record.event.occurred_at, entry
        token = page.next_page_token
        if token is None:
            return


def measure_accuracy(
    outcomes: Sequence[Outcome], predictions: Iterator[tuple[str, dict[str, Any]]], model_version: str | None = None
) -> AccuracyReport:
    """Join each outcome with the latest prediction for its customer made before it was observed."""
    by_customer: dict[str, list[tuple[dt.datetime, dict[str, Any]]]] = {}
    for occurred_at, entry in predictions:
        if model_version is None or entry.get("model_version") == model_version:
            by_customer.setdefault(str(entry.get("customer_id")), []).append(
                (dt.datetime.fromisoformat(occurred_at), entry)
            )
    pairs = []
    for outcome in outcomes:
        before = [p for p in by_customer.get(outcome.customer_id, []) if p[0] <= utc(outcome.observed_at)]
        if before:
            entry = max(before, key=lambda p: p[0])[1]
            pairs.append((float(entry["churn_probability"]) >= float(entry["threshold"]), outcome.churned))
    if len(pairs) < MIN_OUTCOMES_FOR_ACCURACY:
        return AccuracyReport(outcomes=len(outcomes), matched=len(pairs), sufficient_data=False)
    predicted, actual = (np.array(side, dtype=bool) for side in zip(*pairs, strict=True))
    tp, fp = int((predicted & actual).sum()), int((predicted & ~actual).sum())
    fn, tn = int((~predicted & actual).sum()), int((~predicted & ~actual).sum())
    return AccuracyReport(
        outcomes=len(outcomes),
        matched=len(pairs),
        sufficient_data=True,
        accuracy=round((tp + tn) / len(pairs), 6),
        precision=round(tp / (tp + fp), 6) if tp + fp else 0.0,
        recall=round(tp / (tp + fn), 6) if tp + fn else 0.0,
        confusion_matrix={"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    )
