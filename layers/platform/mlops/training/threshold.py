"""The decision threshold that maximises the retention campaign's business value.

Every customer the model flags gets an offer that costs `offer_cost_usd`; a flagged customer who was about to
churn is kept with probability `offer_acceptance_rate`, worth `annual_value_per_customer_usd`. So a threshold's
net value over `n` customers is  TP * (acceptance * annual value) - (TP + FP) * offer cost. The threshold is
chosen on validation predictions (out-of-fold on the training split), never on the held-out test split.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field


class ThresholdPoint(BaseModel):
    threshold: float
    offers: int
    true_positives: int
    false_positives: int
    precision: float
    recall: float
    net_value_usd: float


class ThresholdChoice(BaseModel):
    """The chosen threshold, the value it gives on the validation rows and the whole curve it was read from."""

    threshold: float
    net_value_usd: float
    net_value_per_customer_usd: float
    rows: int
    source: str = Field(description="Which predictions the threshold was chosen on.")
    value_per_saved_customer_usd: float
    offer_cost_usd: float
    curve: list[ThresholdPoint]


CURVE_POINTS = 101


def choose_threshold(
    probabilities: np.ndarray,
    labels: np.ndarray,
    *,
    value_per_saved_customer_usd: float,
    offer_cost_usd: float,
    source: str,
) -> ThresholdChoice:
    """The threshold in [0.01, 0.99] (steps of 0.01) with the highest net value; ties go to the higher threshold
    (fewer offers for the same value)."""
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    if probabilities.shape != labels.shape or labels.size == 0:
        raise ValueError("probabilities and labels must be non-empty and of the same length")
    positives = int(labels.sum())
    curve = []
    for threshold in np.round(np.linspace(0.0, 1.0, CURVE_POINTS), 2):
        flagged = probabilities >= threshold
        tp = int((flagged & labels).sum())
        offers = int(flagged.sum())
        curve.append(
            ThresholdPoint(
                threshold=float(threshold),
                offers=offers,
                true_positives=tp,
                false_positives=offers - tp,
                precision=tp / offers if offers else 0.0,
                recall=tp / positives if positives else 0.0,
                net_value_usd=round(tp * value_per_saved_customer_usd - offers * offer_cost_usd, 2),
            )
        )
    candidates = [p for p in curve if 0.0 < p.threshold < 1.0]
    best = max(candidates, key=lambda p: (p.net_value_usd, p.threshold))
    return ThresholdChoice(
        threshold=best.threshold,
        net_value_usd=best.net_value_usd,
        net_value_per_customer_usd=round(best.net_value_usd / labels.size, 4),
        rows=int(labels.size),
        source=source,
        value_per_saved_customer_usd=value_per_saved_customer_usd,
        offer_cost_usd=offer_cost_usd,
        curve=curve,
    )
