"""The statistics engine, checked by simulation (thousands of experiments at once) and against statsmodels.

Every simulation is seeded and vectorised: one call analyses every simulated experiment.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats.gof import chisquare as sm_chisquare
from statsmodels.stats.power import normal_sample_size_one_tail
from statsmodels.stats.proportion import proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from mlops.experiments import statistics as st
from mlops.experiments.assignment import Assigner

ALPHA = 0.05
EXPERIMENTS = 4000


def simulate_conversions(rng: np.random.Generator, rate_c: float, rate_t: float, n: int, experiments: int):
    return rng.binomial(n, rate_c, experiments), rng.binomial(n, rate_t, experiments)


# ---------------------------------------------------------------------------------------- fixed horizon
def test_the_z_test_false_positive_rate_under_a_a_is_alpha() -> None:
    # Given 4,000 A/A experiments of 5,000 units per arm at a 10% conversion rate
    rng = np.random.default_rng(1)
    control, treatment = simulate_conversions(rng, 0.10, 0.10, 5000, EXPERIMENTS)
    # When each is tested at alpha 0.05
    result = st.compare_proportions(control, 5000, treatment, 5000, ALPHA)
    false_positive_rate = float((result.p_value < ALPHA).mean())
    # Then about 5% are (falsely) significant, and the intervals cover the true difference (0) ~95% of the time
    assert 0.03 <= false_positive_rate <= 0.07, false_positive_rate
    coverage = float(((result.ci_low <= 0) & (result.ci_high >= 0)).mean())
    assert 0.93 <= coverage <= 0.97, coverage


def test_welchs_false_positive_rate_under_a_a_is_alpha_on_skewed_data_with_unequal_arms() -> None:
    # Given 1,000 A/A experiments of skewed (exponential) values, 400 control and 800 treatment units each
    rng = np.random.default_rng(2)
    control = rng.exponential(50.0, (1000, 400))
    treatment = rng.exponential(50.0, (1000, 800))
    # When compared with Welch's t-test
    result = st.compare_means(control, treatment, ALPHA)
    # Then the false-positive rate is about alpha
    false_positive_rate = float((result.p_value < ALPHA).mean())
    assert 0.03 <= false_positive_rate <= 0.07, false_positive_rate


def test_the_z_test_matches_statsmodels() -> None:
    # Given one experiment: 520 / 4,000 control and 585 / 4,100 treatment conversions
    result = st.compare_proportions(520, 4000, 585, 4100, ALPHA)
    # Then z-test p-value equals statsmodels' pooled two-proportion z-test
    _, reference_p = proportions_ztest([585, 520], [4100, 4000])
    assert float(result.p_value) == pytest.approx(reference_p, rel=1e-9)
    # And the interval is the unpooled Wald interval
    se = np.sqrt(0.13 * 0.87 / 4000 + (585 / 4100) * (1 - 585 / 4100) / 4100)
    assert float(result.ci_low) == pytest.approx(585 / 4100 - 0.13 - stats.norm.ppf(0.975) * se)


def test_welch_matches_statsmodels() -> None:
    rng = np.random.default_rng(3)
    control, treatment = rng.normal(10, 3, 300), rng.normal(10.6, 5, 450)
    result = st.compare_means(control, treatment, ALPHA)
    reference = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    _, reference_p, _ = reference.ttest_ind(usevar="unequal")
    low, high = reference.tconfint_diff(alpha=ALPHA, usevar="unequal")
    assert float(result.p_value) == pytest.approx(reference_p, rel=1e-9)
    assert (float(result.ci_low), float(result.ci_high)) == pytest.approx((low, high), rel=1e-9)


# ---------------------------------------------------------------------------------------- sequential
def peeking_simulation(rate_c: float, rate_t: float, seed: int, experiments: int = 2000, batches: int = 20):
    """Cumulative conversions after each of `batches` batches of 250 units per arm: (experiments, batches)."""
    rng = np.random.default_rng(seed)
    batch = 250
    control = rng.binomial(batch, rate_c, (experiments, batches)).cumsum(axis=1)
    treatment = rng.binomial(batch, rate_t, (experiments, batches)).cumsum(axis=1)
    n = batch * np.arange(1, batches + 1)
    return control, treatment, n


def sequential_rejections(control, treatment, n, mixing_sd: float) -> np.ndarray:
    fixed = st.compare_proportions(control, n, treatment, n, ALPHA)
    sequential = st.msprt(fixed.difference, fixed.standard_error**2, mixing_sd, ALPHA)
    return (sequential.always_valid_p_value <= ALPHA).any(axis=1)


def test_checking_the_sequential_test_after_every_batch_keeps_false_positives_at_alpha() -> None:
    # Given 2,000 A/A experiments at 20%, looked at after each of 20 batches of 250 units per arm
    control, treatment, n = peeking_simulation(0.20, 0.20, seed=4)
    # When stopping at the first look where a test says "significant"
    naive = (st.compare_proportions(control, n, treatment, n, ALPHA).p_value < ALPHA).any(axis=1)
    always_valid = sequential_rejections(control, treatment, n, mixing_sd=0.02)
    # Then peeking at the fixed-horizon test inflates false positives well past alpha, the sequential test does not
    assert naive.mean() > 0.10, naive.mean()
    assert always_valid.mean() <= ALPHA, always_valid.mean()


def test_the_sequential_test_still_detects_a_real_effect() -> None:
    # Given experiments with a real 20% -> 23% lift
    control, treatment, n = peeking_simulation(0.20, 0.23, seed=5)
    # Then the always-valid test stops with a significant result in most of them (a fixed test at the last look
    # has ~95% power here: always-validity costs some power, not all of it)
    assert sequential_rejections(control, treatment, n, mixing_sd=0.02).mean() > 0.7


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


# ---------------------------------------------------------------------------------------- power
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_the_empirical_power_matches_the_power_calculation(scale: float) -> None:
    # Given the sample size for 10% -> 12% at alpha 0.05 and power 0.8 (and half of it)
    n_c, n_t = st.sample_size_proportions(0.10, 0.02, ALPHA, 0.8)
    n_c, n_t = int(n_c * scale), int(n_t * scale)
    planned = float(st.power_proportions(0.10, 0.12, n_c, n_t, ALPHA))
    # When 4,000 experiments with that real effect are tested
    rng = np.random.default_rng(7)
    control, treatment = rng.binomial(n_c, 0.10, EXPERIMENTS), rng.binomial(n_t, 0.12, EXPERIMENTS)
    empirical = float((st.compare_proportions(control, n_c, treatment, n_t, ALPHA).p_value < ALPHA).mean())
    # Then the share of significant results is the calculated power (within 5 points)
    assert abs(empirical - planned) <= 0.05, (empirical, planned)
    if scale == 1.0:
        assert planned == pytest.approx(0.8, abs=0.005)


def test_the_sample_size_matches_statsmodels_and_the_means_power_agrees_with_simulation() -> None:
    # Given the proportions formula, checked against statsmodels' normal sample size
    n_c, _ = st.sample_size_proportions(0.10, 0.02, ALPHA, 0.8)
    pooled = 0.11
    reference = normal_sample_size_one_tail(
        0.02,
        0.8,
        ALPHA / 2,
        std_null=np.sqrt(2 * pooled * (1 - pooled)),
        std_alternative=np.sqrt(0.10 * 0.90 + 0.12 * 0.88),
    )
    assert n_c == int(np.ceil(reference))
    # And for means: the planned size reaches the planned power in simulation
    n_c, n_t = st.sample_size_means(20.0, 2.0, ALPHA, 0.9)
    rng = np.random.default_rng(8)
    control, treatment = rng.normal(100, 20, (1000, n_c)), rng.normal(102, 20, (1000, n_t))
    empirical = float((st.compare_means(control, treatment, ALPHA).p_value < ALPHA).mean())
    assert abs(empirical - float(st.power_means(2.0, 20.0, n_c, n_t, ALPHA))) <= 0.05


# ---------------------------------------------------------------------------------------- sample ratio
def test_the_srm_check_fires_on_52_48_traffic_and_not_on_the_real_assignment() -> None:
    # Given a 50/50 experiment that received 52/48 traffic over 20,000 units
    skewed = st.sample_ratio_mismatch(np.array([10400, 9600]), np.array([0.5, 0.5]))
    # And 20,000 units assigned by the real assignment code
    assigner = Assigner("srm-check", ["control", "treatment"], [0.5, 0.5])
    variants = [assigner.assign(f"user-{i}") for i in range(20000)]
    correct = st.sample_ratio_mismatch(
        np.array([variants.count("control"), variants.count("treatment")]), np.array([0.5, 0.5])
    )
    # Then the alarm fires on the first only, and the p-value is statsmodels' chi-square one
    assert skewed.mismatch
    assert float(skewed.p_value) < st.SRM_P_VALUE_THRESHOLD
    assert not correct.mismatch, correct.p_value
    assert skewed.p_value == pytest.approx(sm_chisquare([10400, 9600], [10000, 10000])[1], rel=1e-9)


def test_the_srm_alarm_rate_on_correct_traffic_is_its_threshold() -> None:
    # Given 20,000 experiments of 20,000 units split 50/50 by chance
    rng = np.random.default_rng(9)
    control = rng.binomial(20000, 0.5, 20000)
    check = st.sample_ratio_mismatch(np.stack([control, 20000 - control], axis=1), np.array([0.5, 0.5]))
    # Then the alarm fires on about 0.1% of them, as its threshold says
    assert check.mismatch.mean() <= 0.003, check.mismatch.mean()


# ---------------------------------------------------------------------------------------- CUPED
def test_cuped_keeps_the_estimate_unbiased_and_shrinks_its_variance() -> None:
    # Given 1,000 experiments whose outcome correlates 0.7 with a pre-experiment covariate, true effect 0.5
    rng = np.random.default_rng(10)
    shape = (1000, 500)
    covariate_c, covariate_t = rng.normal(0, 1, shape), rng.normal(0, 1, shape)
    noise = np.sqrt(1 - 0.7**2)
    control = 10 + 0.7 * covariate_c + noise * rng.normal(0, 1, shape)
    treatment = 10.5 + 0.7 * covariate_t + noise * rng.normal(0, 1, shape)
    # When analysed with and without CUPED
    plain = st.compare_means(control, treatment, ALPHA)
    adjusted_c, adjusted_t, theta = st.cuped_adjust(control, treatment, covariate_c, covariate_t)
    cuped = st.compare_means(adjusted_c, adjusted_t, ALPHA)
    # Then theta is the regression slope, the estimate stays centred on 0.5, and its variance drops by ~rho^2
    assert theta.mean() == pytest.approx(0.7, abs=0.01)
    assert cuped.difference.mean() == pytest.approx(0.5, abs=0.01)
    reduction = 1 - cuped.difference.var() / plain.difference.var()
    assert 0.40 <= reduction <= 0.58, reduction
    assert np.median(cuped.ci_high - cuped.ci_low) < np.median(plain.ci_high - plain.ci_low)


def test_cuped_keeps_the_false_positive_rate_at_alpha() -> None:
    rng = np.random.default_rng(11)
    shape = (2000, 400)
    covariate_c, covariate_t = rng.gamma(2, 10, shape), rng.gamma(2, 10, shape)
    control = covariate_c + rng.normal(0, 10, shape)
    treatment = covariate_t + rng.normal(0, 10, shape)
    adjusted_c, adjusted_t, _ = st.cuped_adjust(control, treatment, covariate_c, covariate_t)
    false_positive_rate = float((st.compare_means(adjusted_c, adjusted_t, ALPHA).p_value < ALPHA).mean())
    assert 0.03 <= false_positive_rate <= 0.07, false_positive_rate


# ---------------------------------------------------------------------------------------- Bayesian
def test_the_probability_that_treatment_beats_control_matches_numerical_integration() -> None:
    # Given 120/1000 control and 140/1000 treatment conversions with uniform priors
    estimate = st.probability_treatment_beats_control(120, 1000, 140, 1000)
    # Then it equals P(p_t > p_c) = integral of f_t(x) F_c(x) dx over the two Beta posteriors
    control, treatment = stats.beta(121, 881), stats.beta(141, 861)
    reference, _ = integrate.quad(lambda x: treatment.pdf(x) * control.cdf(x), 0, 1, points=[0.12, 0.14])
    assert estimate == pytest.approx(reference, abs=0.005)
    # And identical data gives a coin flip
    assert st.probability_treatment_beats_control(50, 500, 50, 500) == pytest.approx(0.5, abs=0.01)
