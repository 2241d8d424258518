"""The decision threshold that maximises the retention campaign's business value.

Every customer the model flags gets an offer that costs `offer_cost_usd`; a flagged customer who was about to
churn is kept with probability `offer_acceptance_rate`, worth `annual_value_per_customer_usd`. So a threshold's
net value over `n` customers is  TP * (acceptance * annual value) - (TP + FP) * offer cost. The threshold is
chosen on validation predictions (out-of-fold on the training split), never on the held-out test split.

A model must also meet an accuracy target, so the choice is constrained: the most valuable threshold among
those whose validation accuracy meets `min_accuracy`. When none does, the choice says so and names the best
accuracy any threshold reaches, so that the quality gate can refuse the model with that figure.
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
    accuracy: float
    net_value_usd: float


class ThresholdChoice(BaseModel):
    """The chosen threshold, the value it gives on the validation rows and the whole curve it was read from."""

    threshold: float
    accuracy: float = Field(description="Validation accuracy at the chosen threshold.")
    min_accuracy: float = Field(default=0.0, description="The accuracy the threshold had to reach.")
    meets_min_accuracy: bool = True
    best_accuracy: float = Field(default=0.0, description="The highest validation accuracy of any threshold.")
    best_accuracy_threshold: float = 0.5
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
    min_accuracy: float = 0.0,
) -> ThresholdChoice:
    """The threshold in [0.01, 0.99] (steps of 0.01) with the highest net value among those whose accuracy is at
    least `min_accuracy`; ties go to the higher threshold (fewer offers for the same value). When no threshold
    reaches `min_accuracy`, the most accurate one is chosen and `meets_min_accuracy` is False."""
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    if probabilities.shape != labels.shape or labels.size == 0:
        raise ValueError("probabilities and labels must be non-empty and of the same length")
    positives = int(labels.sum())
    negatives = int(labels.size - positives)
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
                accuracy=round((tp + negatives - (offers - tp)) / labels.size, 6),
                net_value_usd=round(tp * value_per_saved_customer_usd - offers * offer_cost_usd, 2),
            )
        )
    candidates = [p for p in curve if 0.0 < p.threshold < 1.0]
    most_accurate = max(candidates, key=lambda p: (p.accuracy, p.threshold))
    accurate_enough = [p for p in candidates if p.accuracy >= min_accuracy]
    best = max(accurate_enough, key=lambda p: (p.net_value_usd, p.threshold)) if accurate_enough else most_accurate
    return ThresholdChoice(
        threshold=best.threshold,
        accuracy=best.accuracy,
        min_accuracy=min_accuracy,
        meets_min_accuracy=bool(accurate_enough),
        best_accuracy=most_accurate.accuracy,
        best_accuracy_threshold=most_accurate.threshold,
        net_value_usd=best.net_value_usd,
        net_value_per_customer_usd=round(best.net_value_usd / labels.size, 4),
        rows=int(labels.size),
        source=source,
        value_per_saved_customer_usd=value_per_saved_customer_usd,
        offer_cost_usd=offer_cost_usd,
        curve=curve,
    )
