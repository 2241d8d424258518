"""The fixed-horizon statistics, checked by simulation (thousands of experiments at once) and against statsmodels.

Every simulation is seeded and vectorised: one call analyses every simulated experiment. The sequential test
(mSPRT, and its running result over looks) is checked in test_experiment_sequential.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.gof import chisquare as sm_chisquare
from statsmodels.stats.power import normal_sample_size_one_tail
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


def test_the_z_test_and_its_interval_match_statsmodels_wald() -> None:
    # Given one experiment: 520 / 4,000 control and 585 / 4,100 treatment conversions
    # When it is tested
    result = st.compare_proportions(520, 4000, 585, 4100, ALPHA)
    # Then the p-value and the interval are statsmodels' Wald (unpooled) test and interval for the difference
    reference = sm_proportion.test_proportions_2indep(585, 4100, 520, 4000, method="wald", compare="diff")
    low, high = sm_proportion.confint_proportions_2indep(
        585, 4100, 520, 4000, method="wald", compare="diff", alpha=ALPHA
    )
    assert float(result.p_value) == pytest.approx(reference.pvalue, rel=1e-9)
    assert (float(result.ci_low), float(result.ci_high)) == pytest.approx((low, high), rel=1e-9)
    assert float(result.standard_error) ** 2 == pytest.approx(reference.variance, rel=1e-9)


def test_the_z_test_is_significant_exactly_when_its_interval_excludes_zero() -> None:
    """Over 100,000 random 2x2 tables (arms of 2 to 100,000 units drawn independently, so often 1:1,000
    unequal; rates anywhere in [0, 1], effects up to a few points) p < alpha in exactly the tables whose
    interval excludes 0: 0 disagreements, with 32% of the tables significant (the pooled p-value beside the
    unpooled interval disagreed on 14,455 of these tables)."""
    # Given 100,000 random tables, some with an arm all 0 or all 1
    rng = np.random.default_rng(12)
    tables = 100_000
    control_n = np.exp(rng.uniform(np.log(2), np.log(100_000), tables)).astype(int)
    treatment_n = np.exp(rng.uniform(np.log(2), np.log(100_000), tables)).astype(int)
    control_rate = rng.uniform(0, 1, tables)
    treatment_rate = np.clip(control_rate + rng.normal(0, 0.03, tables), 0, 1)
    control = rng.binomial(control_n, control_rate)
    treatment = rng.binomial(treatment_n, treatment_rate)
    # When each is tested at alpha 0.05
    result = st.compare_proportions(control, control_n, treatment, treatment_n, ALPHA)
    # Then significance and "the interval excludes 0" agree on every table
    significant = result.p_value < ALPHA
    excludes_zero = (result.ci_low > 0) | (result.ci_high < 0)
    assert np.array_equal(significant, excludes_zero), int((significant != excludes_zero).sum())
    # And both outcomes are common, so the agreement is not trivial
    assert 0.2 < significant.mean() < 0.8, significant.mean()


@pytest.mark.parametrize(
    ("rate", "control_n", "treatment_n"),
    [(0.10, 5000, 5000), (0.05, 1000, 10000), (0.05, 10000, 1000), (0.10, 500, 5000), (0.50, 100, 2000)],
)
def test_the_z_test_false_positive_rate_under_a_a_is_alpha_with_unequal_arms(
    rate: float, control_n: int, treatment_n: int
) -> None:
    """Measured over 20,000 A/A experiments each (seed 13): 0.051 (10%, 5,000 : 5,000), 0.052 (5%, 1,000 :
    10,000), 0.053 (5%, 10,000 : 1,000), 0.053 (10%, 500 : 5,000), 0.055 (50%, 100 : 2,000). With fewer than
    about 50 expected conversions in the smaller arm the Wald test runs above alpha (0.066 at 2%, 500 : 5,000)."""
    # Given 20,000 A/A experiments with arms up to 1:20 unequal, at least 50 expected conversions per arm
    rng = np.random.default_rng(13)
    control = rng.binomial(control_n, rate, 20_000)
    treatment = rng.binomial(treatment_n, rate, 20_000)
    # When each is tested at alpha 0.05
    result = st.compare_proportions(control, control_n, treatment, treatment_n, ALPHA)
    # Then the false-positive rate is alpha within 1 point
    false_positive_rate = float((result.p_value < ALPHA).mean())
    assert 0.04 <= false_positive_rate <= 0.06, false_positive_rate


def test_welch_matches_statsmodels() -> None:
    rng = np.random.default_rng(3)
    control, treatment = rng.normal(10, 3, 300), rng.normal(10.6, 5, 450)
    result = st.compare_means(control, treatment, ALPHA)
    reference = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    _, reference_p, _ = reference.ttest_ind(usevar="unequal")
    low, high = reference.tconfint_diff(alpha=ALPHA, usevar="unequal")
    assert float(result.p_value) == pytest.approx(reference_p, rel=1e-9)
    assert (float(result.ci_low), float(result.ci_high)) == pytest.approx((low, high), rel=1e-9)


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


def per_experiment_weights(rng: np.random.Generator, experiments: int, variants: int = 3) -> np.ndarray:
    """One row of traffic weights per experiment, each at least 0.1, summing to 1."""
    return 0.1 + (1 - 0.1 * variants) * rng.dirichlet(np.ones(variants), experiments)


def test_the_srm_check_takes_one_row_of_weights_per_experiment() -> None:
    """20,000 experiments of 3 variants, each with its own weights (every weight >= 0.1) and 5,000 to 50,000
    units, counts drawn from those weights: 17 alarms (0.085%) at the 0.001 threshold, 5.0% of p-values below
    0.05. The same counts checked against weights 20% off in a third of the experiments raise the alarm in each
    of those."""
    # Given 20,000 experiments, each split by weights of its own, and their counts drawn with those weights
    rng = np.random.default_rng(14)
    weights = per_experiment_weights(rng, 20_000)
    units = rng.integers(5_000, 50_001, 20_000)
    counts = rng.multinomial(units, weights)
    # When all are checked in one call, one row of weights per experiment
    check = st.sample_ratio_mismatch(counts, weights)
    # Then each row's expected counts follow its own weights and its own total
    assert check.expected.shape == (20_000, 3)
    assert np.allclose(check.expected, weights * units[:, None])
    # And each row is the check of that experiment alone (here the first ten), with weights that need not sum to 1
    for row in range(10):
        alone = st.sample_ratio_mismatch(counts[row], 10 * weights[row])
        assert float(alone.p_value) == pytest.approx(check.p_value[row], rel=1e-12)
    # And on correct traffic the p-values are uniform: the alarm rate is the threshold, 5% fall below 0.05
    assert check.mismatch.mean() <= 0.003, check.mismatch.mean()
    assert 0.045 <= (check.p_value < 0.05).mean() <= 0.055, (check.p_value < 0.05).mean()


def test_the_srm_check_fires_on_the_experiments_whose_traffic_left_their_weights() -> None:
    # Given 3,000 experiments of 20,000 units, the last 1,000 of which served 20% less to their first variant
    rng = np.random.default_rng(15)
    weights = per_experiment_weights(rng, 3000)
    served = weights.copy()
    served[2000:, 0] *= 0.8
    served /= served.sum(axis=1, keepdims=True)
    counts = rng.multinomial(20_000, served)
    # When every experiment is checked against its configured weights
    check = st.sample_ratio_mismatch(counts, weights)
    # Then every broken split raises the alarm, and at most 0.3% of the correct ones do
    assert check.mismatch[2000:].all()
    assert check.mismatch[:2000].mean() <= 0.003


def test_an_experiment_without_units_has_nothing_to_check() -> None:
    check = st.sample_ratio_mismatch(np.array([[0, 0], [600, 400]]), np.array([[0.5, 0.5], [0.6, 0.4]]))
    assert check.p_value.tolist() == [1.0, pytest.approx(1.0)]
    assert not check.mismatch.any()


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
