"""Classification metrics of a model's probabilities at a decision threshold."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)


class ClassificationMetrics(BaseModel):
    """Binary classification metrics at a decision threshold.

    ``positive_rate`` is the share of actual positives in the evaluated rows (the churn base rate);
    ``predicted_positive_rate`` the share predicted positive. ``roc_auc``/``pr_auc`` are None when
    ``y_true`` holds a single class.
    """

    accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float | None
    pr_auc: float | None
    confusion_matrix: dict[str, int]
    threshold: float
    n_samples: int
    positive_rate: float
    predicted_positive_rate: float


def evaluate(probabilities: np.ndarray, y_true: np.ndarray, threshold: float = 0.5) -> ClassificationMetrics:
    """Metrics of positive-class ``probabilities`` against 0/1 ``y_true`` (positive when p >= threshold)."""
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    if probabilities.shape != y_true.shape or y_true.size == 0:
        raise ValueError("probabilities and y_true must be non-empty and of the same length")
    predicted = (probabilities >= threshold).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y_true, predicted, labels=[0, 1]).ravel())
    both_classes = len(np.unique(y_true)) == 2
    return ClassificationMetrics(
        accuracy=float(accuracy_score(y_true, predicted)),
        precision=float(precision_score(y_true, predicted, zero_division=0)),
        recall=float(recall_score(y_true, predicted, zero_division=0)),
        f1=float(f1_score(y_true, predicted, zero_division=0)),
        roc_auc=float(roc_auc_score(y_true, probabilities)) if both_classes else None,
        pr_auc=float(average_precision_score(y_true, probabilities)) if both_classes else None,
        confusion_matrix={"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        threshold=float(threshold),
        n_samples=int(y_true.size),
        positive_rate=float(y_true.mean()),
        predicted_positive_rate=float(predicted.mean()),
    )
