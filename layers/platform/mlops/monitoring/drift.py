"""Data drift: recent inference inputs compared to the training baseline (:mod:`mlops.monitoring.baseline`).

:func:`detect_drift` compares recent columns (and scores) with the baseline and returns a :class:`DriftReport`.

numpy, scipy and pydantic only: this module runs in a Lambda function, without pandas or scikit-learn.

How drift is measured, for every feature and for the score, over the same bins:

* **Bins**: numeric features and the score use the baseline's quantile bins. Categorical features use the
  baseline categories, an ``OTHER`` bucket (rare and unseen categories) and nothing else. Either kind gets a
  "missing" bin whenever either side has missing values, so a column that stops arriving is drift.
* **Is the difference real?** :func:`two_sample_chi_square` tests the homogeneity of the 2 x k table of
  training counts and recent counts. It is a two-sample test: the baseline is a sample too, with its own
  sampling noise. Treating the training shares as exact (a goodness-of-fit test) false-alarms far above its
  level: ``state`` (51 values) had p < 0.01 in 16% of no-shift 800-row windows against 3,200 training rows.
  Bins expected to hold fewer than :data:`MIN_EXPECTED_COUNT` rows are pooled first, so the chi-square
  approximation holds.
* **Is it large enough to matter?** The effect size is the population stability index (PSI) of the shares.
* **The verdict.** A feature drifts when the test is significant (``p < thresholds.chi_square_p_value``)
  *and* its PSI exceeds its floor: ``thresholds.psi`` for numeric features and the score, and
  ``thresholds.categorical_min_psi`` for categorical ones. With thousands of rows, the test finds trivially
  small differences significant. With few rows, a many-category feature's PSI is inflated by sampling noise
  alone. Requiring both flags differences that are real and large enough to matter.
* **A baseline without a sample size.** A score baseline stored before ``score_rows`` was kept has no known
  sample size, so its score cannot be tested. Its verdict is the PSI threshold alone (``test`` "psi",
  ``p_value`` None), as it was before the test.

``tests/unit/test_drift_calibration.py`` measures the false-alarm and detection rates on the telecom data; see
``docs/monitoring.md``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats

from mlops.monitoring.baseline import OTHER, CategoricalBaseline, DriftBaseline, NumericBaseline, bin_counts, row_count

PSI_EPSILON = 1e-4
"""Smallest share a bin is given in a PSI, so empty bins stay finite."""
MIN_EXPECTED_COUNT = 5.0
"""Bins expected (under no drift) to hold fewer rows than this in either sample are pooled before the test."""
SCORE_KEY = "churn_probability"
"""Key of the model's score in a capture record, and the name of the score in a report."""
MISSING_LABEL = "missing"
OTHER_LABEL = "other"


class DriftThresholds(BaseModel):
    psi: float = Field(
        default=0.2,
        gt=0,
        description="A numeric feature (or the score) drifts only above this PSI (and if significant).",
    )
    chi_square_p_value: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="A feature drifts only below this two-sample chi-square p-value (and above its PSI floor).",
    )
    categorical_min_psi: float = Field(
        default=0.1, ge=0, description="A significant categorical difference counts only above this PSI."
    )
    min_rows: int = Field(default=200, ge=1, description="Fewer recent rows than this: no verdict.")


class FeatureDrift(BaseModel):
    feature: str
    kind: Literal["numeric", "categorical", "score"]
    test: Literal["psi", "chi_square"] = Field(
        description="chi_square: the two-sample test and the PSI; psi: the PSI alone (baseline sample size unknown)."
    )
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


@dataclass(frozen=True)
class HomogeneityTest:
    """A two-sample chi-square test per table (arrays when the inputs were stacks of tables)."""

    statistic: np.ndarray
    p_value: np.ndarray
    degrees_of_freedom: np.ndarray


def population_stability_index(
    expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray, epsilon: float = PSI_EPSILON
) -> float:
    """PSI = sum over bins of (actual - expected) * ln(actual / expected), shares raised to at least ``epsilon``.

    Usual reading: under 0.1 stable, 0.1-0.2 a moderate shift, above 0.2 a significant one.
    """
    expected_shares = np.maximum(np.asarray(expected, dtype=np.float64), epsilon)
    actual_shares = np.maximum(np.asarray(actual, dtype=np.float64), epsilon)
    return float(np.sum((actual_shares - expected_shares) * np.log(actual_shares / expected_shares)))


def two_sample_chi_square(
    baseline_counts: np.ndarray | Sequence[float],
    recent_counts: np.ndarray | Sequence[float],
    min_expected: float = MIN_EXPECTED_COUNT,
) -> HomogeneityTest:
    """Pearson's chi-square test of homogeneity of two samples' counts over the same bins (the last axis).

    Leading axes broadcast, so one call tests one feature in the monitor or thousands of simulated windows.
    Bins whose expected count in the smaller sample is under ``min_expected`` are pooled into one bin, because
    the chi-square approximation needs expected counts of about 5 or more (Cochran's rule). If that pool is
    still under it, the pool joins the least populated remaining bin. The pooling depends only on the table's
    margins (bin totals, sample sizes), which the test conditions on, so it does not bias the p-value. Without
    rows on either side, or with fewer than two bins left, nothing can differ: statistic 0, p-value 1.

    The statistic is ``N^2 / (n1 n2) * sum_j (b_j - n1 t_j / N)^2 / t_j``. Here ``b_j`` is the baseline count
    of bin j and ``t_j`` the bin's total; ``n1``, ``n2`` and ``N`` are the baseline's, the recent sample's and
    both samples' rows. It is ``scipy.stats.chi2_contingency(..., correction=False)`` on the 2 x k table,
    on ``k - 1`` degrees of freedom (k: bins left that hold rows).
    """
    baseline, recent = np.broadcast_arrays(
        np.asarray(baseline_counts, dtype=np.float64), np.asarray(recent_counts, dtype=np.float64)
    )
    baseline, recent = _pool_sparse_bins(baseline, recent, min_expected)
    totals = baseline + recent
    baseline_rows, recent_rows = baseline.sum(axis=-1), recent.sum(axis=-1)
    rows = baseline_rows + recent_rows
    occupied = totals > 0
    degrees_of_freedom = np.maximum(occupied.sum(axis=-1) - 1, 0)
    testable = (degrees_of_freedom > 0) & (baseline_rows > 0) & (recent_rows > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        deviation = baseline - baseline_rows[..., None] * totals / rows[..., None]
        spread = np.where(occupied, deviation**2 / np.where(occupied, totals, 1.0), 0.0).sum(axis=-1)
        statistic = np.where(testable, rows**2 / (baseline_rows * recent_rows) * spread, 0.0)
    p_value = np.where(testable, stats.chi2.sf(statistic, np.maximum(degrees_of_freedom, 1)), 1.0)
    return HomogeneityTest(statistic, p_value, np.where(testable, degrees_of_freedom, 0))


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
        _feature_drift(
            name,
            "numeric",
            _numeric_binned(numeric, columns.get(name), rows, baseline.rows),
            thresholds.psi,
            thresholds,
            verdict,
        )
        for name, numeric in baseline.numeric.items()
    ] + [
        _feature_drift(
            name,
            "categorical",
            _categorical_binned(categorical, columns.get(name), rows, baseline.rows),
            thresholds.categorical_min_psi,
            thresholds,
            verdict,
        )
        for name, categorical in baseline.categorical.items()
    ]
    score = None
    if scores is not None:
        binned = _numeric_binned(baseline.score, scores, rows, baseline.score_rows)
        score = _feature_drift(SCORE_KEY, "score", binned, thresholds.psi, thresholds, verdict)
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
    """One feature's bins: labels, baseline shares of all rows, recent counts and training counts (None when
    the baseline's sample size is unknown)."""

    labels: list[str]
    expected: np.ndarray
    observed: np.ndarray
    training: np.ndarray | None

    @property
    def actual(self) -> np.ndarray:
        return self.observed / max(int(self.observed.sum()), 1)


def _binned(
    labels: list[str],
    proportions: Sequence[float],
    missing_share: float,
    counts: np.ndarray,
    missing: int,
    training: tuple[np.ndarray, int] | None,
) -> _Binned:
    """Baseline shares rescaled to all rows, plus a "missing" bin when either side has missing values."""
    expected = np.asarray(proportions, dtype=np.float64) * (1.0 - missing_share)
    training_counts = None if training is None else training[0]
    if missing_share > 0 or missing > 0:
        if training is not None:
            training_counts = np.append(training[0], training[1])
        return _Binned(
            [*labels, MISSING_LABEL], np.append(expected, missing_share), np.append(counts, missing), training_counts
        )
    return _Binned(labels, expected, counts, training_counts)


def _numeric_binned(baseline: NumericBaseline, values: np.ndarray | None, rows: int, baseline_rows: int) -> _Binned:
    values = np.full(rows, np.nan) if values is None else np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    counts = bin_counts(np.asarray(baseline.edges, dtype=np.float64), finite)
    labels = _interval_labels(baseline.edges)
    missing = values.size - finite.size
    training = baseline.training_counts(baseline_rows)
    return _binned(labels, baseline.proportions, baseline.missing_share, counts, missing, training)


def _categorical_binned(
    baseline: CategoricalBaseline, values: np.ndarray | None, rows: int, baseline_rows: int
) -> _Binned:
    index = {category: position for position, category in enumerate(baseline.proportions)}
    present = [value for value in values if isinstance(value, str)] if values is not None else []
    counts = np.zeros(len(index), dtype=np.int64)
    for category, tally in Counter(present).items():
        counts[index.get(category, index[OTHER])] += tally
    labels = [OTHER_LABEL if category == OTHER else category for category in baseline.proportions]
    proportions = list(baseline.proportions.values())
    training = baseline.training_counts(baseline_rows)
    return _binned(labels, proportions, baseline.missing_share, counts, rows - len(present), training)


def _feature_drift(
    name: str,
    kind: Literal["numeric", "categorical", "score"],
    binned: _Binned,
    min_psi: float,
    thresholds: DriftThresholds,
    verdict: bool,
) -> FeatureDrift:
    """The PSI and the two-sample test of one feature; it drifts when the test is significant and its PSI
    exceeds ``min_psi`` (the PSI alone when the baseline's sample size is unknown)."""
    psi = population_stability_index(binned.expected, binned.actual)
    chi_square = p_value = None
    significant = True
    if binned.training is not None:
        test = two_sample_chi_square(binned.training, binned.observed)
        chi_square, p_value = float(test.statistic), float(test.p_value)
        significant = p_value < thresholds.chi_square_p_value
    return FeatureDrift(
        feature=name,
        kind=kind,
        test="psi" if p_value is None else "chi_square",
        psi=psi,
        chi_square=chi_square,
        p_value=p_value,
        drifted=verdict and significant and psi > min_psi,
        expected=binned.expected.tolist(),
        actual=binned.actual.tolist(),
        bins=binned.labels,
    )


def _pool_sparse_bins(baseline: np.ndarray, recent: np.ndarray, min_expected: float) -> tuple[np.ndarray, np.ndarray]:
    """The table with its sparse bins emptied into one extra last bin, or into the least populated other bin
    when that pool is itself sparse (see :func:`two_sample_chi_square`); emptied bins stay as zero columns."""
    totals = baseline + recent
    baseline_rows = baseline.sum(axis=-1, keepdims=True)
    recent_rows = recent.sum(axis=-1, keepdims=True)
    rows = baseline_rows + recent_rows
    smaller_share = np.minimum(baseline_rows, recent_rows) / np.maximum(rows, 1.0)
    sparse = smaller_share * totals < min_expected  # the bin's expected count in the smaller sample
    pooled_baseline = np.where(sparse, baseline, 0.0).sum(axis=-1)
    pooled_recent = np.where(sparse, recent, 0.0).sum(axis=-1)
    candidates = np.where(sparse, np.inf, totals)
    into = np.argmin(candidates, axis=-1)
    join = (smaller_share[..., 0] * (pooled_baseline + pooled_recent) < min_expected) & ~sparse.all(axis=-1)
    target = (np.arange(baseline.shape[-1]) == into[..., None]) & join[..., None]
    kept_baseline = np.where(sparse, 0.0, baseline) + target * pooled_baseline[..., None]
    kept_recent = np.where(sparse, 0.0, recent) + target * pooled_recent[..., None]
    pool_baseline = np.where(join, 0.0, pooled_baseline)[..., None]
    pool_recent = np.where(join, 0.0, pooled_recent)[..., None]
    return np.concatenate([kept_baseline, pool_baseline], axis=-1), np.concatenate([kept_recent, pool_recent], axis=-1)


def _interval_labels(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["all values"]
    text = [f"{edge:.6g}" for edge in edges]
    middle = [f"{low} \N{EN DASH} {high}" for low, high in pairwise(text)]
    return [f"< {text[0]}", *middle, f"\N{GREATER-THAN OR EQUAL TO} {text[-1]}"]
