"""The sequential test, checked by simulation: one look (mSPRT), the running result over looks, and CUPED.

Every simulation is seeded and vectorised over experiments; the looks of an experiment are folded one at a
time with `running_sequential`, as the experiment store does across analyses.
"""

from __future__ import annotations

from dataclasses import astuple

import numpy as np
import pytest

from mlops.experiments import statistics as st
from mlops.experiments.analysis import analyse, sequential_states
from mlops.experiments.models import Experiment, ExperimentCreate
from mlops.experiments.service import new_experiment

ALPHA = 0.05


def peeking_simulation(rate_c: float, rate_t: float, seed: int, experiments: int = 2000, batches: int = 20):
    """Cumulative conversions after each of `batches` batches of 250 units per arm: (experiments, batches)."""
    rng = np.random.default_rng(seed)
    batch = 250
    control = rng.binomial(batch, rate_c, (experiments, batches)).cumsum(axis=1)
    treatment = rng.binomial(batch, rate_t, (experiments, batches)).cumsum(axis=1)
    n = batch * np.arange(1, batches + 1)
    return control, treatment, n


def each_look(control, treatment, n, mixing_sd: float) -> st.SequentialResult:
    """Every look on its own (the current look's mSPRT), shape (experiments, looks)."""
    fixed = st.compare_proportions(control, n, treatment, n, ALPHA)
    return st.msprt(fixed.difference, fixed.standard_error**2, mixing_sd, ALPHA)


def running_over_looks(looks: st.SequentialResult) -> st.SequentialResult:
    """The running result after each look, folding the looks (last axis) one by one, shape (experiments, looks)."""
    running, history = None, []
    for k in range(looks.always_valid_p_value.shape[-1]):
        running = st.running_sequential(running, st.SequentialResult(*(field[..., k] for field in astuple(looks))))
        history.append(astuple(running))
    return st.SequentialResult(*(np.stack(field, axis=-1) for field in zip(*history, strict=True)))


def turned_non_significant(significant: np.ndarray) -> np.ndarray:
    """Per experiment: significant at some look and not at a later one."""
    return (np.maximum.accumulate(significant, axis=-1) & ~significant).any(axis=-1)


# ---------------------------------------------------------------------------------------- one look
def test_checking_the_sequential_test_after_every_batch_keeps_false_positives_at_alpha() -> None:
    # Given 2,000 A/A experiments at 20%, looked at after each of 20 batches of 250 units per arm
    control, treatment, n = peeking_simulation(0.20, 0.20, seed=4)
    # When stopping at the first look where a test says "significant"
    naive = (st.compare_proportions(control, n, treatment, n, ALPHA).p_value < ALPHA).any(axis=1)
    always_valid = (each_look(control, treatment, n, mixing_sd=0.02).always_valid_p_value <= ALPHA).any(axis=1)
    # Then peeking at the fixed-horizon test inflates false positives well past alpha, the sequential test does not
    assert naive.mean() > 0.10, naive.mean()
    assert always_valid.mean() <= ALPHA, always_valid.mean()


def test_the_sequential_test_still_detects_a_real_effect() -> None:
    # Given experiments with a real 20% -> 23% lift
    control, treatment, n = peeking_simulation(0.20, 0.23, seed=5)
    # Then the always-valid test stops with a significant result in most of them (a fixed test at the last look
    # has ~95% power here: always-validity costs some power, not all of it)
    significant = each_look(control, treatment, n, mixing_sd=0.02).always_valid_p_value <= ALPHA
    assert significant.any(axis=1).mean() > 0.7


def test_the_confidence_sequence_contains_the_fixed_interval_and_covers_the_truth_at_every_look() -> None:
    control, treatment, n = peeking_simulation(0.20, 0.22, seed=6)
    fixed = st.compare_proportions(control, n, treatment, n, ALPHA)
    sequential = st.msprt(fixed.difference, fixed.standard_error**2, 0.02, ALPHA)
    # The always-valid interval is wider than the fixed one at each look ...
    assert np.all(sequential.cs_low <= fixed.ci_low)
    assert np.all(sequential.cs_high >= fixed.ci_high)
    # ... and contains the true difference at every look in at least 95% of the experiments
    covered_throughout = ((sequential.cs_low <= 0.02) & (sequential.cs_high >= 0.02)).all(axis=1)
    assert covered_throughout.mean() >= 0.95


# ---------------------------------------------------------------------------------------- over looks
def test_once_significant_the_running_result_stays_significant_at_every_later_look() -> None:
    """2,000 experiments with a real 20% -> 23% effect, 20 looks each (seed 5): judged on the current look
    only, 489 (24.5%) are significant at some look and not at a later one; judged on the running result, 0.
    79.1% end significant, and at all 40,000 looks p <= alpha exactly when the running sequence excludes 0."""
    # Given 2,000 experiments with a real effect, each looked at after every one of 20 batches
    control, treatment, n = peeking_simulation(0.20, 0.23, seed=5)
    looks = each_look(control, treatment, n, mixing_sd=0.02)
    # When the looks are folded into the running result
    running = running_over_looks(looks)
    significant = running.always_valid_p_value <= ALPHA
    # Then the current look alone flips back to "not significant" in many experiments, the running result never
    assert turned_non_significant(looks.always_valid_p_value <= ALPHA).mean() > 0.1
    assert not turned_non_significant(significant).any()
    # And the p-value only falls and the sequence only narrows
    assert np.all(np.diff(running.always_valid_p_value, axis=1) <= 0)
    assert np.all(np.diff(running.cs_low, axis=1) >= 0)
    assert np.all(np.diff(running.cs_high, axis=1) <= 0)
    # And p <= alpha exactly when the running sequence excludes 0, at every look
    excludes_zero = (running.cs_low > 0) | (running.cs_high < 0)
    assert np.array_equal(significant, excludes_zero)
    # And the power is the one of stopping at the first significant look (nothing lost, nothing gained)
    assert significant[:, -1].mean() == (looks.always_valid_p_value <= ALPHA).any(axis=1).mean() > 0.7


def test_the_running_result_keeps_the_false_positive_rate_under_alpha_and_covers_the_truth() -> None:
    """2,000 A/A experiments at 20%, 20 looks each (seed 4): 1.05% ever reject (alpha 5%); the running
    intersection of the sequences holds the true difference 0 through all 20 looks in 98.95%, and is never empty."""
    # Given 2,000 A/A experiments looked at 20 times each, folded into the running result
    control, treatment, n = peeking_simulation(0.20, 0.20, seed=4)
    running = running_over_looks(each_look(control, treatment, n, mixing_sd=0.02))
    # When an experiment counts as rejected if any look's running result is significant
    ever_rejected = (running.always_valid_p_value <= ALPHA).any(axis=1)
    # Then at most alpha of them are, and the running sequence covers 0 at every look in at least 1 - alpha
    assert ever_rejected.mean() <= ALPHA, ever_rejected.mean()
    covered = ((running.cs_low <= 0) & (running.cs_high >= 0)).all(axis=1)
    assert covered.mean() >= 1 - ALPHA, covered.mean()
    assert np.all(running.cs_low <= running.cs_high)


def test_the_first_look_is_the_running_result_and_a_look_without_a_result_changes_nothing() -> None:
    # Given a first look, then a look with no result (no variance yet shows as NaN)
    first = st.msprt(np.array([0.03, -0.01]), np.array([1e-4, 1e-4]), 0.02, ALPHA)
    empty = st.SequentialResult(*(np.full(2, np.nan) for _ in range(4)))
    # When they are folded
    after_first = st.running_sequential(None, first)
    after_empty = st.running_sequential(after_first, empty)
    # Then the first look stands as it is, and the empty look leaves it unchanged
    assert after_first is first
    for before, after in zip(astuple(after_first), astuple(after_empty), strict=True):
        assert np.array_equal(before, after)


# ---------------------------------------------------------------------------------------- CUPED
def cuped_peeking_power(effect: float, seed: int, experiments: int = 2000, batches: int = 10, batch: int = 100):
    """Share of experiments the running sequential test ends significant in, without and with CUPED.

    Outcome per unit: 10 + effect (treatment) + 0.7 x + sqrt(1 - 0.7^2) noise, x a pre-experiment covariate
    (N(0, 1)); looks after every batch of `batch` units per arm; mixing scale 0.1 standard deviations.
    """
    rng = np.random.default_rng(seed)
    units, rho = batch * batches, 0.7
    covariate_c, covariate_t = rng.normal(0, 1, (experiments, units)), rng.normal(0, 1, (experiments, units))
    noise = np.sqrt(1 - rho**2)
    control = 10 + rho * covariate_c + noise * rng.normal(0, 1, (experiments, units))
    treatment = 10 + effect + rho * covariate_t + noise * rng.normal(0, 1, (experiments, units))
    plain = cuped = None
    for look in range(1, batches + 1):
        seen = slice(0, look * batch)
        unadjusted = st.compare_means(control[:, seen], treatment[:, seen], ALPHA)
        adjusted = st.compare_means(
            *st.cuped_adjust(control[:, seen], treatment[:, seen], covariate_c[:, seen], covariate_t[:, seen])[:2],
            ALPHA,
        )
        plain = st.running_sequential(plain, st.msprt(unadjusted.difference, unadjusted.standard_error**2, 0.1))
        cuped = st.running_sequential(cuped, st.msprt(adjusted.difference, adjusted.standard_error**2, 0.1))
    assert plain is not None
    assert cuped is not None
    return float((plain.always_valid_p_value <= ALPHA).mean()), float((cuped.always_valid_p_value <= ALPHA).mean())


def test_the_sequential_test_on_cuped_gains_power_with_a_correlated_covariate() -> None:
    """2,000 experiments with a real effect of 0.12 standard deviations and a covariate correlated 0.7 with the
    outcome, 10 looks of 100 units per arm (seed 1): power 42.8% on the unadjusted difference, 81.5% on CUPED's."""
    # Given experiments with a real effect and a pre-experiment covariate correlated 0.7 with the outcome
    # When the running sequential test is run on the unadjusted and on the CUPED-adjusted difference
    plain, cuped = cuped_peeking_power(effect=0.12, seed=1)
    # Then CUPED detects the effect far more often (its variance is ~1 - 0.7^2 = 51% of the unadjusted one)
    assert cuped >= plain + 0.25, (plain, cuped)
    assert cuped >= 0.75, cuped


def test_the_sequential_test_on_cuped_keeps_the_false_positive_rate_under_alpha() -> None:
    """2,000 A/A experiments, 10 looks each (seed 2): 1.05% reject on the unadjusted difference, 1.5% on CUPED's."""
    # Given A/A experiments with the same covariate
    # When the running sequential test is run on both differences
    plain, cuped = cuped_peeking_power(effect=0.0, seed=2)
    # Then neither rejects more often than alpha
    assert plain <= ALPHA, plain
    assert cuped <= ALPHA, cuped


# ---------------------------------------------------------------------------------------- the analysis
def conversion_experiment() -> Experiment:
    request = ExperimentCreate(
        experiment_id="exp-looks",
        name="looks",
        variants=[{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
        primary_metric={"name": "retained", "kind": "conversion"},
        minimum_detectable_effect=0.05,
        baseline_value=0.5,
    )
    return new_experiment(request, "2026-11-24T00:00:00.000Z")


def conversions(per_arm: int, control_rate: float, treatment_rate: float, start: int = 0):
    """Exposures and `retained` outcomes: the first rate x units of each arm converted."""
    exposures, retained = {}, {}
    for arm, rate in (("control", control_rate), ("treatment", treatment_rate)):
        for i in range(per_arm):
            unit = f"{arm}-{start + i}"
            exposures[unit] = arm
            retained[unit] = float(i < rate * per_arm)
    return exposures, retained


def test_the_analysis_reports_the_running_result_so_a_significant_look_stays_significant() -> None:
    # Given a first look at 200 units per arm, 50% against 80% retained: significant
    experiment = conversion_experiment()
    exposures, retained = conversions(200, 0.5, 0.8)
    first = analyse(experiment, exposures, {"retained": retained}, "2026-11-24T01:00:00.000Z")
    first_look = first.metrics[0].comparisons[0].sequential
    assert first_look.significant
    assert first_look.looks == 1
    # And 20,000 more units per arm with no difference, after which the data alone are no longer significant
    more_exposures, more_retained = conversions(20_000, 0.5, 0.5, start=200)
    exposures, retained = exposures | more_exposures, retained | more_retained
    alone = analyse(experiment, exposures, {"retained": retained}, "2026-11-25T01:00:00.000Z")
    assert not alone.metrics[0].comparisons[0].sequential.significant
    # When the second look is analysed with the running result of the first
    previous = {(s.metric, s.treatment): s for s in sequential_states(first)}
    second = analyse(experiment, exposures, {"retained": retained}, "2026-11-25T01:00:00.000Z", previous)
    # Then it stays significant: the minimum p-value, the intersection of both sequences, two looks
    looked = second.metrics[0].comparisons[0].sequential
    assert looked.significant
    assert looked.looks == 2
    assert looked.always_valid_p_value == first_look.always_valid_p_value
    assert looked.confidence_sequence.low == max(
        first_look.confidence_sequence.low, alone.metrics[0].comparisons[0].sequential.confidence_sequence.low
    )
    assert looked.confidence_sequence.high == min(
        first_look.confidence_sequence.high, alone.metrics[0].comparisons[0].sequential.confidence_sequence.high
    )
    # And what is kept for the next look is that running result
    (state,) = sequential_states(second, previous)
    assert (state.metric, state.treatment, state.looks) == ("retained", "treatment", 2)
    assert state.always_valid_p_value == looked.always_valid_p_value
    assert state.last_look_at == "2026-11-25T01:00:00.000Z"


def test_the_analysis_tests_the_cuped_difference_sequentially_when_a_covariate_is_declared() -> None:
    # Given a continuous experiment with a covariate that predicts the outcome
    request = ExperimentCreate(
        experiment_id="exp-cuped-looks",
        name="cuped_looks",
        variants=[{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
        primary_metric={"name": "revenue", "kind": "continuous"},
        minimum_detectable_effect=1.0,
        baseline_value=100.0,
        standard_deviation=10.0,
        cuped_covariate="revenue_before",
    )
    experiment = new_experiment(request, "2026-11-24T00:00:00.000Z")
    rng = np.random.default_rng(16)
    before = {arm: rng.normal(100, 20, 300) for arm in ("control", "treatment")}
    after = {arm: before[arm] + rng.normal(1.5 if arm == "treatment" else 0, 4, 300) for arm in before}
    units = {arm: [f"{arm}-{i}" for i in range(300)] for arm in before}
    exposures = {unit: arm for arm, members in units.items() for unit in members}
    outcomes = {
        name: {unit: float(values[arm][i]) for arm, members in units.items() for i, unit in enumerate(members)}
        for name, values in (("revenue", after), ("revenue_before", before))
    }
    # When it is analysed
    comparison = analyse(experiment, exposures, outcomes, "2026-11-24T01:00:00.000Z").metrics[0].comparisons[0]
    # Then the sequential test ran on CUPED's difference and variance, not the unadjusted ones
    adjusted = st.compare_means(
        *st.cuped_adjust(after["control"], after["treatment"], before["control"], before["treatment"])[:2], ALPHA
    )
    expected = st.msprt(adjusted.difference, adjusted.standard_error**2, 1.0, ALPHA)
    assert comparison.sequential.estimate == "cuped"
    assert comparison.sequential.always_valid_p_value == pytest.approx(float(expected.always_valid_p_value))
    assert comparison.sequential.confidence_sequence.low == pytest.approx(float(expected.cs_low))
    # And with the covariate explaining most of the variance it is significant where the unadjusted test is not
    assert comparison.cuped is not None
    assert comparison.cuped.variance_reduction > 0.7
    assert comparison.sequential.significant
    assert comparison.p_value > ALPHA
