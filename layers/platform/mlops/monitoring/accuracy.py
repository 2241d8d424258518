"""Accuracy on logged outcomes (`measure_accuracy`, over `audited_predictions`), as an `AccuracyReport`.

Which outcomes judge which predictions is the `AccuracyWindow`: for the hourly alarm, the outcomes logged in the
monitor's window judge the predictions made up to the outcome lookback before it (outcomes arrive long after
their predictions); for an explicit window (a cohort of traffic, such as the pilot's later window), the
predictions made in it are judged by the outcomes logged from its start until the monitor runs.

Each outcome is joined with the audited prediction it judges: exactly, by the `prediction_id` it names, or else
with the latest prediction for its customer made before it was observed. A prediction is judged once: audited
twice (a retried write) it is one prediction, and when several outcomes reach it the last one logged stands (a
resent batch counts once, a correction replaces what it corrects).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats

from mlops.audit.queries import query_audit
from mlops.audit.records import AuditEventType
from mlops.core.clock import utc
from mlops.monitoring.outcomes import Outcome

MIN_OUTCOMES_FOR_ACCURACY = 50
AUDIT_PAGE = 500


class JoinKind(StrEnum):
    PREDICTION_ID = "prediction_id"
    CUSTOMER = "customer"


class AccuracyScope(StrEnum):
    RECENT_OUTCOMES = "recent_outcomes"
    """The outcomes logged in the window, against the predictions made up to the outcome lookback before it."""
    WINDOW_PREDICTIONS = "window_predictions"
    """The predictions made in the window, against the outcomes logged from its start until the monitor ran."""


class AccuracyWindow(BaseModel):
    """The outcomes and the predictions an accuracy was measured on (all bounds inclusive)."""

    scope: AccuracyScope
    outcomes_logged_from: dt.datetime
    outcomes_logged_to: dt.datetime
    predictions_from: dt.datetime
    predictions_to: dt.datetime

    @classmethod
    def of(
        cls, scope: AccuracyScope, window: tuple[dt.datetime, dt.datetime], lookback: dt.timedelta, now: dt.datetime
    ) -> AccuracyWindow:
        """The spans a monitor's `window` (start, end) gives, run at `now` with an outcome `lookback`."""
        start, end = window
        if scope is AccuracyScope.WINDOW_PREDICTIONS:
            return cls(
                scope=scope,
                outcomes_logged_from=start,
                outcomes_logged_to=max(now, end),
                predictions_from=start,
                predictions_to=end,
            )
        return cls(
            scope=scope,
            outcomes_logged_from=start,
            outcomes_logged_to=end,
            predictions_from=start - lookback,
            predictions_to=end,
        )


class AccuracyReport(BaseModel):
    """The model's own decisions (probability >= the threshold it was served with, whatever variant was served)
    and its probabilities against the outcomes, one verdict per prediction judged."""

    window: AccuracyWindow | None = Field(
        default=None, description="What was joined (None only in reports stored before it was recorded)."
    )
    outcomes: int = Field(description="Outcomes logged in the window's outcome span.")
    matched: int = Field(description="Predictions judged: each joined with the last outcome logged for it.")
    matched_by_prediction_id: int = Field(default=0, description="Of those, joined by the outcome's prediction_id.")
    matched_by_customer: int = Field(
        default=0, description="Of those, joined with the customer's latest prediction before the outcome."
    )
    superseded_outcomes: int = Field(
        default=0, description="Outcomes for a prediction that an outcome logged later also judged (not counted)."
    )
    unknown_prediction_ids: int = Field(
        default=0,
        description="Outcomes naming a prediction_id the audit trail does not hold for the judged model version "
        "in the window's prediction span (not joined with the customer either).",
    )
    sufficient_data: bool
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    confusion_matrix: dict[str, int] | None = None
    auc: float | None = Field(
        default=None,
        description="ROC AUC of the churn probabilities; None without enough data or with one class only.",
    )
    brier_score: float | None = Field(default=None, description="Mean squared error of the churn probabilities.")


class AuditedPrediction(NamedTuple):
    key: str
    """The prediction's id (what makes it one prediction)."""
    occurred_at: dt.datetime
    churn_probability: float
    threshold: float


class _Verdict(NamedTuple):
    prediction: AuditedPrediction
    churned: bool
    join: JoinKind


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


class _PredictionIndex:
    """The audited predictions of one model version (or all), each once, by id and by customer."""

    def __init__(self, predictions: Iterable[tuple[str, dict[str, Any]]], model_version: str | None) -> None:
        self.by_id: dict[str, AuditedPrediction] = {}
        self.by_customer: dict[str, list[AuditedPrediction]] = {}
        for occurred_at, entry in predictions:
            if model_version is not None and entry.get("model_version") != model_version:
                continue
            prediction_id = entry.get("prediction_id")
            # Records older than prediction ids get a key of their own: they can only be joined by customer.
            key = str(prediction_id).lower() if prediction_id else f"{entry.get('customer_id')}@{occurred_at}"
            if key in self.by_id:
                continue  # the same prediction audited twice
            prediction = AuditedPrediction(
                key=key,
                occurred_at=dt.datetime.fromisoformat(occurred_at),
                churn_probability=float(entry["churn_probability"]),
                threshold=float(entry["threshold"]),
            )
            self.by_id[key] = prediction
            self.by_customer.setdefault(str(entry.get("customer_id")), []).append(prediction)

    def latest_before(self, customer_id: str, moment: dt.datetime) -> AuditedPrediction | None:
        before = [p for p in self.by_customer.get(customer_id, []) if p.occurred_at <= moment]
        return max(before, key=lambda p: p.occurred_at) if before else None


def measure_accuracy(
    outcomes: Sequence[Outcome],
    predictions: Iterable[tuple[str, dict[str, Any]]],
    model_version: str | None = None,
    *,
    window: AccuracyWindow,
) -> AccuracyReport:
    """Join each outcome (in the order logged) with the prediction it judges, and score the model on them.
    `outcomes` and `predictions` are those of `window`, which the report names."""
    index = _PredictionIndex(predictions, model_version)
    verdicts: dict[str, _Verdict] = {}
    superseded = unknown = 0
    for outcome in outcomes:
        if outcome.prediction_id is not None:
            judged, join = index.by_id.get(outcome.prediction_id), JoinKind.PREDICTION_ID
            if judged is None:
                unknown += 1
                continue
        else:
            judged, join = index.latest_before(outcome.customer_id, utc(outcome.observed_at)), JoinKind.CUSTOMER
            if judged is None:
                continue
        if judged.key in verdicts:
            superseded += 1
        verdicts[judged.key] = _Verdict(judged, outcome.churned, join)
    report = AccuracyReport(
        window=window,
        outcomes=len(outcomes),
        matched=len(verdicts),
        matched_by_prediction_id=sum(v.join is JoinKind.PREDICTION_ID for v in verdicts.values()),
        matched_by_customer=sum(v.join is JoinKind.CUSTOMER for v in verdicts.values()),
        superseded_outcomes=superseded,
        unknown_prediction_ids=unknown,
        sufficient_data=len(verdicts) >= MIN_OUTCOMES_FOR_ACCURACY,
    )
    return _scored(report, list(verdicts.values())) if report.sufficient_data else report


def _scored(report: AccuracyReport, verdicts: list[_Verdict]) -> AccuracyReport:
    """The report with the model's decisions (at each prediction's served threshold) and probabilities scored."""
    probability = np.array([v.prediction.churn_probability for v in verdicts], dtype=np.float64)
    predicted = probability >= np.array([v.prediction.threshold for v in verdicts], dtype=np.float64)
    actual = np.array([v.churned for v in verdicts], dtype=bool)
    tp, fp = int((predicted & actual).sum()), int((predicted & ~actual).sum())
    fn, tn = int((~predicted & actual).sum()), int((~predicted & ~actual).sum())
    return report.model_copy(
        update={
            "accuracy": round((tp + tn) / len(verdicts), 6),
            "precision": round(tp / (tp + fp), 6) if tp + fp else 0.0,
            "recall": round(tp / (tp + fn), 6) if tp + fn else 0.0,
            "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
            "auc": _roc_auc(probability, actual),
            "brier_score": round(float(np.mean((probability - actual) ** 2)), 6),
        }
    )


def _roc_auc(probability: np.ndarray, actual: np.ndarray) -> float | None:
    """The Mann-Whitney form of the ROC AUC (ties count one half); None when only one class was observed."""
    positives, negatives = int(actual.sum()), int((~actual).sum())
    if not positives or not negatives:
        return None
    ranks = stats.rankdata(probability)
    return round(float((ranks[actual].sum() - positives * (positives + 1) / 2) / (positives * negatives)), 6)
