"""The drift test's calibration on the telecom data, by simulation: false alarms without a shift, detection with one.

A simulated window is a random split of the 4,000 telecom rows into 3,200 (the baseline) and 800 (the window).
Both are drawn from the same rows, so any drift flagged is a false alarm.

* **No shift: 8,000 splits** (``SPLITS``). At that size a calibrated test's rate at p < 0.01 has a standard
  error of 0.11%, so "at most 1.5% for every feature" is a sound check of 20 rates. With 1,000 splits (SE
  0.31%), a perfectly calibrated test would exceed 1.5% on at least one feature in about half the seeds. The
  counts of all splits are built at once with numpy (the baseline's quantile bins from ranks, and its
  categories with the rare ones in OTHER) and tested with the monitor's own ``two_sample_chi_square``.
  ``test_the_simulated_counts_are_the_monitors_own`` proves, on 40 splits, that the real ``build_baseline``
  and ``detect_drift`` give the same statistics.
  Measured false-alarm rate at p < 0.01: from 0.81% (``total_night_minutes``) to 1.18%
  (``total_eve_minutes``) over the 19 features and the score; ``state`` 0.89%. The drift verdict (p < 0.01
  and PSI above its floor) false-alarms only on ``state``, at 0.89%. No other feature's noise PSI reaches its
  floor.
* **Known shifts: 1,000 splits** through the real ``build_baseline`` and ``detect_drift``. Measured detection
  (p < 0.01) / verdict:
  - ``total_day_minutes`` + 0.25 sd: 97.5% / 0.0% (PSI about 0.07, under the 0.2 floor);
  - ``total_day_minutes`` + 0.5 sd: 100% / 86.9%;
  - ``international_plan`` "yes" share doubled (9.8% to 19.5%): 99.9% / 24.8% (PSI about 0.08, near the 0.1
    floor);
  - the most common state's share doubled (WV, 3.4% to 6.9%): 28.8% / 28.8%, because one category of 51
    moving is weak evidence in 800 rows.

``.venv/bin/python -m pytest tests/unit/test_drift_calibration.py -s`` prints the rates (about 15 s of CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pytest

from helpers import TELECOM_CSV, TELECOM_SCHEMA
from mlops.data.dataset import frame_to_columns, read_dataset
from mlops.data.features import Columns
from mlops.data.schema import DataSchema
from mlops.monitoring.baseline import MIN_CATEGORY_SHARE, build_baseline
from mlops.monitoring.drift import (
    SCORE_KEY,
    DriftThresholds,
    detect_drift,
    population_stability_index,
    two_sample_chi_square,
)

SPLITS = 8_000
DETECTION_SPLITS = 1_000
FIDELITY_SPLITS = 40
WINDOW_ROWS = 800
BINS = 10
"""build_baseline's default number of quantile bins."""
THRESHOLDS = DriftThresholds()
ALPHA = THRESHOLDS.chi_square_p_value
MAX_FALSE_ALARM_RATE = 0.015

Counts = tuple[np.ndarray, np.ndarray]
"""Baseline counts and window counts, one row per split, one column per bin (empty bins allowed)."""


def stand_in_churn_score(columns: Columns) -> np.ndarray:
    """A fixed, deterministic stand-in for the model: more day minutes, service calls or an intl plan, more churn."""
    logit = (
        -4.0
        + 0.018 * (columns["total_day_minutes"] - 180.0)
        + 0.6 * columns["number_customer_service_calls"]
        + 2.0 * (columns["international_plan"] == "yes")
    )
    return 1.0 / (1.0 + np.exp(-logit))


@dataclass(frozen=True)
class Telecom:
    schema: DataSchema
    columns: Columns
    scores: np.ndarray

    @property
    def rows(self) -> int:
        return self.scores.size

    def split(
        self, window: np.ndarray, names: list[str] | None = None
    ) -> tuple[Columns, np.ndarray, Columns, np.ndarray]:
        """Baseline columns and scores (the rows outside ``window``), then the window's (``names``: all columns)."""
        outside = np.ones(self.rows, dtype=bool)
        outside[window] = False
        baseline = np.flatnonzero(outside)
        names = list(self.columns) if names is None else names
        return (
            {name: self.columns[name][baseline] for name in names},
            self.scores[baseline],
            {name: self.columns[name][window] for name in names},
            self.scores[window],
        )


@pytest.fixture(scope="module")
def telecom() -> Telecom:
    schema = DataSchema.from_file(TELECOM_SCHEMA)
    columns = frame_to_columns(read_dataset(TELECOM_CSV, schema, require_target=True), schema)
    assert not any(np.isnan(columns[name]).any() for name in schema.numerical)  # no "missing" bin to simulate
    assert all(isinstance(value, str) for name in schema.categorical for value in columns[name])
    return Telecom(schema, columns, stand_in_churn_score(columns))


def random_windows(rng: np.random.Generator, splits: int, rows: int, size: int) -> np.ndarray:
    """The window rows of ``splits`` random splits: ``size`` distinct row indices each."""
    return np.stack([rng.choice(rows, size, replace=False) for _ in range(splits)])


class SortedRows:
    """Rows of sorted integers in [0, ``span``), searched all at once: one ``np.searchsorted`` on the rows laid
    end to end, each shifted ``span`` above the previous (32-bit, to halve the memory traffic)."""

    def __init__(self, rows: np.ndarray, span: int) -> None:
        assert rows.shape[0] * span < np.iinfo(np.int32).max
        self._offset = np.arange(rows.shape[0], dtype=np.int32)[:, None] * np.int32(span)
        self._start = np.arange(rows.shape[0], dtype=np.int64)[:, None] * rows.shape[1]
        self._flat = (rows.astype(np.int32, copy=False) + self._offset).ravel()

    def searchsorted(self, values: np.ndarray, side: Literal["left", "right"]) -> np.ndarray:
        """``np.searchsorted(rows[i], values[i], side)`` for every row i."""
        return np.searchsorted(self._flat, values + self._offset, side=side) - self._start


def quantile_bin_counts(values: np.ndarray, windows: np.ndarray) -> Counts:
    """Every split's counts over the baseline's quantile bins, as ``build_baseline`` and ``detect_drift`` bin them.

    With the rows sorted once, the baseline's k-th smallest value is the k-th row outside the window in that
    order, and the baseline's quantile edges are interpolations between two of those. The counts are then the
    rows between consecutive edges. Edges at the baseline's minimum are dropped, and duplicate edges leave
    empty bins, which the test ignores. Where a value lies within float rounding of an interpolated edge, the
    edge is taken from ``np.quantile`` itself.
    """
    rows, (splits, size) = values.size, windows.shape
    assert rows <= np.iinfo(np.int16).max
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    rank = np.empty(rows, np.int16)  # 16-bit, so the sort below is a radix sort
    rank[order] = np.arange(rows)
    window_ranks = rank[windows]
    window_ranks.sort(axis=1, kind="stable")
    window_ranks = window_ranks.astype(np.int32)
    in_window = SortedRows(window_ranks, rows + 1)
    baseline_before = SortedRows(window_ranks - np.arange(size, dtype=np.int32), rows + 1)  # baseline rows before

    def baseline_value(k: np.ndarray) -> np.ndarray:
        """The k-th smallest baseline value of every split (k: one row of indices for all splits)."""
        k = np.repeat(k[None, :], splits, axis=0)
        return ordered[k + baseline_before.searchsorted(k, "right")]

    levels = np.arange(1, BINS) / BINS
    position = (rows - size - 1) * levels
    below = np.floor(position).astype(np.int64)
    fraction = position - below
    assert np.all((fraction > 1e-6) & (fraction < 1 - 1e-6))  # never exactly on a baseline row
    low, high = baseline_value(below), baseline_value(below + 1)
    edges = np.where(low == high, low, low + (high - low) * fraction)
    bounds = np.searchsorted(ordered, edges, side="left")
    tolerance = 1e-9 * np.maximum(np.abs(edges), 1.0)
    touching = (low < high) & (
        (np.abs(ordered[np.minimum(bounds, rows - 1)] - edges) <= tolerance)
        | (np.abs(ordered[np.maximum(bounds - 1, 0)] - edges) <= tolerance)
    )
    for split in np.flatnonzero(touching.any(axis=1)):
        edges[split] = np.quantile(np.delete(values, windows[split]), levels)
        bounds[split] = np.searchsorted(ordered, edges[split], side="left")
    minimum = baseline_value(np.zeros(1, np.int64))
    bounds = np.where(edges > minimum, bounds, 0)
    bounds = np.concatenate([np.zeros((splits, 1), np.int64), bounds, np.full((splits, 1), rows)], axis=1)
    window_counts = np.diff(in_window.searchsorted(bounds, "left"), axis=1)
    return np.diff(bounds, axis=1) - window_counts, window_counts


def category_counts(values: np.ndarray, windows: np.ndarray) -> Counts:
    """Every split's counts over the baseline's categories, those under ``MIN_CATEGORY_SHARE`` of the baseline
    (and unseen ones) in a last OTHER bin, as ``build_baseline`` and ``detect_drift`` count them."""
    categories, codes = np.unique(values.astype(str), return_inverse=True)
    splits, size = windows.shape
    width = categories.size
    flat = (codes[windows] + np.arange(splits)[:, None] * width).ravel()
    window_counts = np.bincount(flat, minlength=splits * width).reshape(splits, width)
    baseline_counts = np.bincount(codes, minlength=width) - window_counts
    kept = baseline_counts / (values.size - size) >= MIN_CATEGORY_SHARE

    def with_other(counts: np.ndarray) -> np.ndarray:
        return np.concatenate([np.where(kept, counts, 0), np.where(kept, 0, counts).sum(axis=1, keepdims=True)], 1)

    return with_other(baseline_counts), with_other(window_counts)


@pytest.fixture(scope="module")
def windows(telecom: Telecom) -> np.ndarray:
    return random_windows(np.random.default_rng(20_240_101), SPLITS, telecom.rows, WINDOW_ROWS)


@pytest.fixture(scope="module")
def simulated(telecom: Telecom, windows: np.ndarray) -> dict[str, Counts]:
    """Baseline and window counts of every feature, and of the score, in every no-shift split."""
    counts = {name: quantile_bin_counts(telecom.columns[name], windows) for name in telecom.schema.numerical}
    counts |= {name: category_counts(telecom.columns[name], windows) for name in telecom.schema.categorical}
    counts[SCORE_KEY] = quantile_bin_counts(telecom.scores, windows)
    return counts


def test_the_simulated_counts_are_the_monitors_own(
    telecom: Telecom, windows: np.ndarray, simulated: dict[str, Counts]
) -> None:
    # Given the first splits, each also run through the real baseline and drift code
    for split in range(FIDELITY_SPLITS):
        baseline_columns, baseline_scores, window_columns, window_scores = telecom.split(windows[split])
        baseline = build_baseline(baseline_columns, baseline_scores, telecom.schema)
        # When the monitor compares the window with the baseline built from the other rows
        report = detect_drift(baseline, window_columns, window_scores)
        # Then every feature's (and the score's) chi-square and p-value are the simulation's, for that split
        assert report.score is not None
        for feature in [*report.features, report.score]:
            test = two_sample_chi_square(*(counts[split] for counts in simulated[feature.feature]))
            assert feature.chi_square == pytest.approx(float(test.statistic), rel=1e-9), (split, feature.feature)
            assert feature.p_value == pytest.approx(float(test.p_value), rel=1e-9, abs=1e-300)


def test_without_a_shift_every_feature_false_alarms_at_about_its_nominal_level(
    telecom: Telecom, simulated: dict[str, Counts]
) -> None:
    # Given 8,000 no-shift windows of 800 rows, each against the baseline of the other 3,200 rows
    false_alarms, verdicts = {}, {}
    for feature, (baseline, window) in simulated.items():
        # When every window is tested against its baseline
        significant = two_sample_chi_square(baseline, window).p_value < ALPHA
        # (the verdict also needs the PSI over the feature's floor: only significant windows can be drift)
        floor = THRESHOLDS.categorical_min_psi if feature in telecom.schema.categorical else THRESHOLDS.psi
        psi = [
            population_stability_index(baseline[split] / baseline[split].sum(), window[split] / WINDOW_ROWS)
            for split in np.flatnonzero(significant)
        ]
        false_alarms[feature] = float(significant.mean())
        verdicts[feature] = sum(value > floor for value in psi) / SPLITS
    print("\nfalse alarms at p < 0.01 (test / verdict), 8,000 no-shift windows:")
    for feature in false_alarms:
        print(f"  {feature:30s} {false_alarms[feature]:.2%} / {verdicts[feature]:.2%}")
    # Then every feature, and the score, false-alarms at most 1.5% of the time at a nominal 1%
    worst = max(false_alarms, key=false_alarms.__getitem__)
    assert false_alarms[worst] <= MAX_FALSE_ALARM_RATE, (worst, false_alarms[worst])
    # And none is so conservative that it would miss real drift (a test that never fires would pass the above)
    assert min(false_alarms.values()) >= 0.005
    # And the verdict, which also needs the PSI over its floor, false-alarms no more than the test
    assert all(verdicts[feature] <= false_alarms[feature] for feature in false_alarms)


Shift = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def moved(by: float) -> Shift:
    return lambda values, rng: values + by


def doubled(category: str) -> Shift:
    """As many other rows relabelled ``category`` as the window already has: its share doubles."""

    def shift(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        shifted = values.copy()
        others = np.flatnonzero(values != category)
        shifted[rng.choice(others, size=int(np.sum(values == category)), replace=False)] = category
        return shifted

    return shift


def test_known_shifts_are_detected_at_the_measured_rates(telecom: Telecom) -> None:
    # Given 1,000 random 3,200/800 splits, and four shifts applied to the window only
    columns = telecom.columns
    minutes_sd = float(np.std(columns["total_day_minutes"]))
    states, tallies = np.unique(columns["state"].astype(str), return_counts=True)
    shifts: dict[str, tuple[str, Shift]] = {
        "total_day_minutes + 0.25 sd": ("total_day_minutes", moved(0.25 * minutes_sd)),
        "total_day_minutes + 0.5 sd": ("total_day_minutes", moved(0.5 * minutes_sd)),
        "international_plan 'yes' doubled": ("international_plan", doubled("yes")),
        f"state {states[np.argmax(tallies)]} doubled": ("state", doubled(str(states[np.argmax(tallies)]))),
    }
    schema = telecom.schema.model_copy(
        update={"numerical": ["total_day_minutes"], "categorical": ["state", "international_plan"]}
    )
    rng = np.random.default_rng(20_240_102)
    detected = {name: np.zeros(DETECTION_SPLITS, bool) for name in shifts}
    drifted = {name: np.zeros(DETECTION_SPLITS, bool) for name in shifts}
    for split, window in enumerate(random_windows(rng, DETECTION_SPLITS, telecom.rows, WINDOW_ROWS)):
        baseline_columns, baseline_scores, window_columns, _ = telecom.split(window, schema.feature_columns)
        baseline = build_baseline(baseline_columns, baseline_scores, schema)
        for name, (feature, shift) in shifts.items():
            # When the monitor compares the shifted window with the baseline (of that feature alone)
            alone = baseline.model_copy(
                update={
                    "numeric": {k: v for k, v in baseline.numeric.items() if k == feature},
                    "categorical": {k: v for k, v in baseline.categorical.items() if k == feature},
                }
            )
            (result,) = detect_drift(alone, {feature: shift(window_columns[feature], rng)}, None).features
            assert result.p_value is not None
            detected[name][split] = result.p_value < ALPHA
            drifted[name][split] = result.drifted
    rates = {name: (float(detected[name].mean()), float(drifted[name].mean())) for name in shifts}
    print("\ndetection at p < 0.01 / drift verdict, 1,000 shifted windows:")
    for name, (test_rate, verdict_rate) in rates.items():
        print(f"  {name:36s} {test_rate:.1%} / {verdict_rate:.1%}")
    # Then a quarter-sd shift of day minutes is found by the test nearly always, yet is no drift: its PSI is
    # under the 0.2 floor
    small, large, plan, state = rates.values()
    assert small[0] >= 0.95
    assert small[1] <= 0.01
    # And half an sd clears the floor in most windows
    assert large == (1.0, pytest.approx(0.87, abs=0.05))
    # And a doubled international-plan share is nearly always significant; its PSI is near the 0.1 floor
    assert plan[0] >= 0.99
    assert 0.1 <= plan[1] <= 0.5
    # And one state of 51 doubling is found in under a third of windows (a limit of 800 rows over 51 categories)
    assert 0.2 <= state[0] <= 0.4
    # And a window is drift only when its test is significant
    assert all(not (drifted[name] & ~detected[name]).any() for name in shifts)
