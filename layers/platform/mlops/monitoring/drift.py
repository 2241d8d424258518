"""Data drift: recent inference inputs compared to the training baseline (:mod:`mlops.monitoring.baseline`).

:func:`detect_drift` compares recent columns (and scores) with the baseline and returns a :class:`DriftReport`.

numpy, scipy and pydantic only: this module runs in a Lambda function, without pandas or scikit-learn.

How drift is measured:

* **Numeric features and the score**: population stability index (PSI) over the baseline's quantile bins,
  plus a "missing" bin whenever either side has missing values (so a column that stops arriving is drift).
* **Categorical features**: chi-square goodness of fit of the recent counts against the baseline shares,
  over the baseline categories, an ``OTHER`` bucket (rare and unseen categories) and the "missing" bin.
  A categorical feature drifts only when the test is significant *and* its PSI exceeds
  ``thresholds.categorical_min_psi``: with thousands of rows the test finds trivially small differences
  significant, and with few rows the PSI of a many-category feature (``state``: 51 values) is inflated by
  sampling noise alone; requiring both flags differences that are real and large enough to matter.
* Shares are smoothed with :data:`PSI_EPSILON`: a bin empty on one side would otherwise give an infinite
  PSI (and a zero expected count for the test). A value never seen in training still weighs heavily.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats

from mlops.monitoring.baseline import OTHER, CategoricalBaseline, DriftBaseline, NumericBaseline, bin_counts, row_count

PSI_EPSILON = 1e-4
"""Smallest share a bin is given in a PSI (or chi-square expectation), so empty bins stay finite."""
SCORE_KEY = "churn_probability"
"""Key of the model's score in a capture record, and the name of the score in a report."""
MISSING_LABEL = "missing"
OTHER_LABEL = "other"


class DriftThresholds(BaseModel):
    psi: float = Field(default=0.2, gt=0, description="A numeric feature (or the score) drifted above this PSI.")
    chi_square_p_value: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="A categorical feature drifted below this chi-square p-value (and above categorical_min_psi).",
    )
    categorical_min_psi: float = Field(
        default=0.1, ge=0, description="A significant categorical difference counts only above this PSI."
    )
    min_rows: int = Field(default=200, ge=1, description="Fewer recent rows than this: no verdict.")


class FeatureDrift(BaseModel):
    feature: str
    kind: Literal["numeric", "categorical", "score"]
    test: Literal["psi", "chi_square"]
    psi: float
    chi_square: float | None = None
    p_value: float | None = None
    drifted: bool
    expected: list[float]
    actual: list[float]
    bins: list[str]


class DriftReport(BaseModel):
    rows: int
    sufficient_data: bool
    thresholds: DriftThresholds
    features: list[FeatureDrift]
    score: FeatureDrift | None
    drifted_features: list[str]
    drift_detected: bool
    max_feature_psi: float
    score_psi: float | None


def population_stability_index(
    expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray, epsilon: float = PSI_EPSILON
) -> float:
    """PSI = sum over bins of (actual - expected) * ln(actual / expected), shares raised to at least ``epsilon``.

    Usual reading: under 0.1 stable, 0.1-0.2 a moderate shift, above 0.2 a significant one.
    """
    expected_shares = np.maximum(np.asarray(expected, dtype=np.float64), epsilon)
    actual_shares = np.maximum(np.asarray(actual, dtype=np.float64), epsilon)
    return float(np.sum((actual_shares - expected_shares) * np.log(actual_shares / expected_shares)))


def detect_drift(
    baseline: DriftBaseline,
    columns: Mapping[str, np.ndarray],
    scores: np.ndarray | None,
    thresholds: DriftThresholds | None = None,
) -> DriftReport:
    """Compare recent columns (and scores) with the baseline; see the module docstring for the tests used.

    Baseline features absent from ``columns`` are all missing. With fewer rows than ``thresholds.min_rows``
    every statistic is still computed but nothing is flagged (``sufficient_data`` False). ``drifted_features``
    lists features only; the score's verdict is ``score.drifted`` (both count for ``drift_detected``).
    """
    thresholds = thresholds or DriftThresholds()
    rows = row_count([*columns.values(), *([] if scores is None else [np.asarray(scores)])])
    verdict = rows >= thresholds.min_rows
    features = [
        _numeric_drift(name, "numeric", _numeric_binned(numeric, columns.get(name), rows), thresholds, verdict)
        for name, numeric in baseline.numeric.items()
    ] + [
        _categorical_drift(name, _categorical_binned(categorical, columns.get(name), rows), thresholds, verdict)
        for name, categorical in baseline.categorical.items()
    ]
    score = None
    if scores is not None:
        score = _numeric_drift(SCORE_KEY, "score", _numeric_binned(baseline.score, scores, rows), thresholds, verdict)
    drifted = [feature.feature for feature in features if feature.drifted]
    return DriftReport(
        rows=rows,
        sufficient_data=verdict,
        thresholds=thresholds,
        features=features,
        score=score,
        drifted_features=drifted,
        drift_detected=bool(drifted) or (score is not None and score.drifted),
        max_feature_psi=max((feature.psi for feature in features), default=0.0),
        score_psi=None if score is None else score.psi,
    )


@dataclass(frozen=True)
class _Binned:
    """One feature's bins: labels, baseline shares of all rows, and recent counts."""

    labels: list[str]
    expected: np.ndarray
    observed: np.ndarray

    @property
    def actual(self) -> np.ndarray:
        return self.observed / max(int(self.observed.sum()), 1)


def _binned(
    labels: list[str], proportions: Sequence[float], missing_share: float, counts: np.ndarray, missing: int
) -> _Binned:
    """Baseline shares rescaled to all rows, plus a "missing" bin when either side has missing values."""
    expected = np.asarray(proportions, dtype=np.float64) * (1.0 - missing_share)
    if missing_share > 0 or missing > 0:
        return _Binned([*labels, MISSING_LABEL], np.append(expected, missing_share), np.append(counts, missing))
    return _Binned(labels, expected, counts)


def _numeric_binned(baseline: NumericBaseline, values: np.ndarray | None, rows: int) -> _Binned:
    values = np.full(rows, np.nan) if values is None else np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    counts = bin_counts(np.asarray(baseline.edges, dtype=np.float64), finite)
    labels = _interval_labels(baseline.edges)
    return _binned(labels, baseline.proportions, baseline.missing_share, counts, values.size - finite.size)


def _categorical_binned(baseline: CategoricalBaseline, values: np.ndarray | None, rows: int) -> _Binned:
    index = {category: position for position, category in enumerate(baseline.proportions)}
    present = [value for value in values if isinstance(value, str)] if values is not None else []
    positions = np.fromiter((index.get(value, index[OTHER]) for value in present), dtype=np.intp, count=len(present))
    counts = np.bincount(positions, minlength=len(index))
    labels = [OTHER_LABEL if category == OTHER else category for category in baseline.proportions]
    return _binned(labels, list(baseline.proportions.values()), baseline.missing_share, counts, rows - len(present))


def _numeric_drift(
    name: str, kind: Literal["numeric", "score"], binned: _Binned, thresholds: DriftThresholds, verdict: bool
) -> FeatureDrift:
    psi = population_stability_index(binned.expected, binned.actual)
    return FeatureDrift(
        feature=name,
        kind=kind,
        test="psi",
        psi=psi,
        drifted=verdict and psi > thresholds.psi,
        expected=binned.expected.tolist(),
        actual=binned.actual.tolist(),
        bins=binned.labels,
    )


def _categorical_drift(name: str, binned: _Binned, thresholds: DriftThresholds, verdict: bool) -> FeatureDrift:
    psi = population_stability_index(binned.expected, binned.actual)
    chi_square, p_value = _chi_square(binned)
    significant = p_value < thresholds.chi_square_p_value and psi > thresholds.categorical_min_psi
    return FeatureDrift(
        feature=name,
        kind="categorical",
        test="chi_square",
        psi=psi,
        chi_square=chi_square,
        p_value=p_value,
        drifted=verdict and significant,
        expected=binned.expected.tolist(),
        actual=binned.actual.tolist(),
        bins=binned.labels,
    )


def _chi_square(binned: _Binned) -> tuple[float, float]:
    """Goodness of fit of the recent counts to the (smoothed) baseline shares: (statistic, p-value)."""
    rows = int(binned.observed.sum())
    if rows == 0:
        return 0.0, 1.0
    expected = np.maximum(binned.expected, PSI_EPSILON)
    result = stats.chisquare(binned.observed, expected / expected.sum() * rows)
    return float(result.statistic), float(result.pvalue)


def _interval_labels(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["all values"]
    text = [f"{edge:.6g}" for edge in edges]
    middle = [f"{low} \N{EN DASH} {high}" for low, high in pairwise(text)]
    return [f"< {text[0]}", *middle, f"\N{GREATER-THAN OR EQUAL TO} {text[-1]}"]
