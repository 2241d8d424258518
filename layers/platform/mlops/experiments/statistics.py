"""The statistics of an A/B test: fixed-horizon tests, always-valid sequential tests, power, SRM, CUPED, Bayes.

No AWS here, and no per-experiment loops: every function takes numpy arrays (or scalars) and broadcasts, so
one call analyses one experiment in the API or thousands of simulated ones in the tests. Distributions and
tests come from scipy (`scipy.stats`); the formulas on top of them are the textbook ones, cited per function.

Conventions: "control" and "treatment" are two variants; a difference is treatment minus control; `alpha`
is two-sided.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

ArrayLike = np.ndarray | float | int

SRM_P_VALUE_THRESHOLD = 0.001
"""A sample-ratio-mismatch alarm at p < 0.001: strict, because a broken split invalidates every result."""
DEFAULT_STANDARDISED_MIXING_SD = 0.1
"""mSPRT mixing scale, in pooled standard deviations, for metrics that state no minimum detectable effect."""


@dataclass(frozen=True)
class Comparison:
    """Treatment against control for one metric (arrays when the inputs were arrays)."""

    control_mean: np.ndarray
    treatment_mean: np.ndarray
    difference: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    relative_lift: np.ndarray
    relative_ci_low: np.ndarray
    relative_ci_high: np.ndarray
    p_value: np.ndarray
    standard_error: np.ndarray


@dataclass(frozen=True)
class SequentialResult:
    """Always-valid inference (mSPRT): valid whenever it is looked at, however often."""

    always_valid_p_value: np.ndarray
    cs_low: np.ndarray
    cs_high: np.ndarray
    likelihood_ratio: np.ndarray


@dataclass(frozen=True)
class SampleRatioCheck:
    observed: np.ndarray
    expected: np.ndarray
    chi_square: np.ndarray
    p_value: np.ndarray
    mismatch: np.ndarray


def _relative(
    control_mean: np.ndarray, difference: np.ndarray, var_control_mean: np.ndarray, var_treatment_mean: np.ndarray, z
):
    """Relative lift (treatment / control - 1) with a delta-method interval (needs a non-zero control mean)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        treatment_mean = control_mean + difference
        lift = difference / control_mean
        # Var(T/C) ~ Var(T)/C^2 + T^2 Var(C)/C^4 (delta method, independent arms)
        se = np.sqrt(var_treatment_mean / control_mean**2 + treatment_mean**2 * var_control_mean / control_mean**4)
        return lift, lift - z * se, lift + z * se


def compare_proportions(
    control_successes: ArrayLike,
    control_n: ArrayLike,
    treatment_successes: ArrayLike,
    treatment_n: ArrayLike,
    alpha: float = 0.05,
) -> Comparison:
    """Two-proportion z-test and Wald interval for the difference, both on the unpooled variance.

    Var(p_t - p_c) = p_c (1 - p_c) / n_c + p_t (1 - p_t) / n_t serves the p-value and the interval alike (as in
    GrowthBook's gbstats), so p < alpha exactly when the interval excludes 0; a pooled p-value beside an unpooled
    interval disagree on some tables, mostly with unequal arms. Equals statsmodels'
    `test_proportions_2indep(..., method="wald")` and `confint_proportions_2indep(..., method="wald")`. With no
    variance at all (both arms all 0 or all 1) the interval is the point: p = 1 if the rates are equal, else 0.
    """
    cs, cn = np.asarray(control_successes, float), np.asarray(control_n, float)
    ts, tn = np.asarray(treatment_successes, float), np.asarray(treatment_n, float)
    p_c, p_t = cs / cn, ts / tn
    difference = p_t - p_c
    var_c, var_t = p_c * (1 - p_c) / cn, p_t * (1 - p_t) / tn
    se = np.sqrt(var_c + var_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, np.abs(difference) / se, np.where(difference == 0, 0.0, np.inf))
    p_value = 2 * stats.norm.sf(z)
    z_crit = stats.norm.ppf(1 - alpha / 2)
    lift, lift_low, lift_high = _relative(p_c, difference, var_c, var_t, z_crit)
    return Comparison(
        control_mean=p_c,
        treatment_mean=p_t,
        difference=difference,
        ci_low=difference - z_crit * se,
        ci_high=difference + z_crit * se,
        relative_lift=lift,
        relative_ci_low=lift_low,
        relative_ci_high=lift_high,
        p_value=p_value,
        standard_error=se,
    )


def compare_means(control: np.ndarray, treatment: np.ndarray, alpha: float = 0.05) -> Comparison:
    """Welch's t-test (unequal variances) over the last axis, with its interval for the difference in means."""
    control, treatment = np.asarray(control, float), np.asarray(treatment, float)
    result = stats.ttest_ind(treatment, control, equal_var=False, axis=-1)
    interval = result.confidence_interval(confidence_level=1 - alpha)
    mean_c, mean_t = control.mean(axis=-1), treatment.mean(axis=-1)
    var_c = control.var(axis=-1, ddof=1) / control.shape[-1]
    var_t = treatment.var(axis=-1, ddof=1) / treatment.shape[-1]
    difference = mean_t - mean_c
    se = np.sqrt(var_c + var_t)
    # Both arms constant (e.g. no outcome yet): no evidence of a difference rather than NaN.
    p_value = np.where(np.isnan(result.pvalue) & (se == 0), np.where(difference == 0, 1.0, 0.0), result.pvalue)
    lift, lift_low, lift_high = _relative(mean_c, difference, var_c, var_t, stats.norm.ppf(1 - alpha / 2))
    return Comparison(
        control_mean=mean_c,
        treatment_mean=mean_t,
        difference=difference,
        ci_low=np.where(se == 0, difference, interval.low),
        ci_high=np.where(se == 0, difference, interval.high),
        relative_lift=lift,
        relative_ci_low=lift_low,
        relative_ci_high=lift_high,
        p_value=p_value,
        standard_error=se,
    )


def cuped_adjust(
    control: np.ndarray, treatment: np.ndarray, control_covariate: np.ndarray, treatment_covariate: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CUPED (Deng et al. 2013): Y - theta (X - mean X), theta = Cov(X, Y) / Var(X) pooled over both arms.

    X must be measured before the experiment (so treatment cannot move it); the adjusted means keep the
    same expected difference with less variance when X predicts Y. Returns (control, treatment, theta).
    """
    y = np.concatenate([control, treatment], axis=-1)
    x = np.concatenate([control_covariate, treatment_covariate], axis=-1)
    x_centred = x - x.mean(axis=-1, keepdims=True)
    y_centred = y - y.mean(axis=-1, keepdims=True)
    variance = (x_centred**2).mean(axis=-1, keepdims=True)
    theta = np.where(
        variance > 0, (x_centred * y_centred).mean(axis=-1, keepdims=True) / np.where(variance > 0, variance, 1), 0.0
    )
    split = control.shape[-1]
    adjusted = y - theta * x_centred
    return adjusted[..., :split], adjusted[..., split:], np.squeeze(theta, axis=-1)


def msprt(difference: ArrayLike, variance: ArrayLike, mixing_sd: ArrayLike, alpha: float = 0.05) -> SequentialResult:
    """Mixture sequential probability ratio test (Johari et al. 2017, "always valid p-values"): one look.

    `difference` is the current estimate and `variance` its variance (Var = s_c^2/n_c + s_t^2/n_t, or the
    CUPED-adjusted ones); the effect gets a N(0, mixing_sd^2) mixing prior. The likelihood ratio against "no
    difference" is Lambda = sqrt(V / (V + tau^2)) exp(tau^2 d^2 / (2 V (V + tau^2))); by Ville's inequality it
    exceeds 1/alpha at any look with probability at most alpha under H0. The confidence sequence is the set of
    effects not rejected that way, so at each look p <= alpha exactly when it excludes 0. This is the current
    look only: `running_sequential` folds the looks into the running p-value and sequence that are reported.
    """
    d = np.asarray(difference, float)
    v = np.asarray(variance, float)
    tau2 = np.asarray(mixing_sd, float) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lr = 0.5 * np.log(v / (v + tau2)) + tau2 * d**2 / (2 * v * (v + tau2))
        half_width = np.sqrt(v * (v + tau2) / tau2 * (np.log((v + tau2) / v) + 2 * np.log(1 / alpha)))
    # No variance at all (e.g. every unit 0): certain when the arms differ, no evidence when they do not.
    degenerate = ~(v > 0)
    log_lr = np.where(degenerate, np.where(d == 0, -np.inf, np.inf), log_lr)
    half_width = np.where(degenerate, 0.0, half_width)
    return SequentialResult(
        always_valid_p_value=np.minimum(1.0, np.exp(-log_lr)),
        cs_low=d - half_width,
        cs_high=d + half_width,
        likelihood_ratio=np.exp(np.minimum(log_lr, 700.0)),
    )


def running_sequential(previous: SequentialResult | None, current: SequentialResult) -> SequentialResult:
    """The always-valid result over every look so far: `previous` (None before the first look) and `current`.

    The p-value is the running minimum and the confidence sequence the running intersection (low = max of the
    lows, high = min of the highs), the likelihood ratio the running maximum. Ville's inequality bounds the
    ratio at every look at once, so this costs no error rate (Johari et al. 2017; Howard et al. 2021), and it
    makes the result monotone: once significant, significant at every later look, and p <= alpha exactly when
    the sequence excludes 0. The intersection is empty (low > high) only if some look's sequence missed the
    true effect (probability at most alpha); it then excludes 0 and p <= alpha. A look without a result (NaN)
    leaves the running one as it was.
    """
    if previous is None:
        return current
    return SequentialResult(
        always_valid_p_value=np.fmin(previous.always_valid_p_value, current.always_valid_p_value),
        cs_low=np.fmax(previous.cs_low, current.cs_low),
        cs_high=np.fmin(previous.cs_high, current.cs_high),
        likelihood_ratio=np.fmax(previous.likelihood_ratio, current.likelihood_ratio),
    )


def sample_ratio_mismatch(
    observed_counts: np.ndarray, expected_weights: np.ndarray, threshold: float = SRM_P_VALUE_THRESHOLD
) -> SampleRatioCheck:
    """Chi-square goodness of fit of the units per variant (last axis) against the configured traffic weights.

    Counts and weights broadcast: one row of weights per experiment (or one for all), each row normalised
    along the variant axis, so weights need not sum to 1.
    """
    observed, weights = np.broadcast_arrays(np.asarray(observed_counts, float), np.asarray(expected_weights, float))
    totals = observed.sum(axis=-1, keepdims=True)
    expected = weights / weights.sum(axis=-1, keepdims=True) * totals
    with np.errstate(divide="ignore", invalid="ignore"):
        result = stats.chisquare(observed, expected, axis=-1)
    # No unit yet: nothing to check.
    p_value = np.where(totals[..., 0] > 0, result.pvalue, 1.0)
    chi_square = np.where(totals[..., 0] > 0, result.statistic, 0.0)
    return SampleRatioCheck(observed, expected, chi_square, p_value, p_value < threshold)


def sample_size_proportions(
    baseline_rate: float, minimum_detectable_effect: float, alpha: float, power: float, treatment_ratio: float = 1.0
) -> tuple[int, int]:
    """Units (control, treatment) for the two-proportion z-test to detect an absolute change of `mde`.

    n_c = (z_{1-a/2} sqrt(p(1-p)(1 + 1/k)) + z_{power} sqrt(p_c q_c + p_t q_t / k))^2 / mde^2, with k the
    treatment/control ratio and p the pooled rate (Fleiss, Statistical Methods for Rates and Proportions).
    """
    p_c, p_t, k = baseline_rate, baseline_rate + minimum_detectable_effect, treatment_ratio
    pooled = (p_c + k * p_t) / (1 + k)
    z_alpha, z_power = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    root = z_alpha * np.sqrt(pooled * (1 - pooled) * (1 + 1 / k)) + z_power * np.sqrt(
        p_c * (1 - p_c) + p_t * (1 - p_t) / k
    )
    n_control = int(np.ceil(root**2 / minimum_detectable_effect**2))
    return n_control, int(np.ceil(k * n_control))


def power_proportions(
    control_rate: ArrayLike, treatment_rate: ArrayLike, control_n: ArrayLike, treatment_n: ArrayLike, alpha: float
) -> np.ndarray:
    """Power of the two-sided pooled two-proportion z-test (both rejection tails)."""
    p_c, p_t = np.asarray(control_rate, float), np.asarray(treatment_rate, float)
    n_c, n_t = np.asarray(control_n, float), np.asarray(treatment_n, float)
    pooled = (p_c * n_c + p_t * n_t) / (n_c + n_t)
    se_null = np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    se_alt = np.sqrt(p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t)
    z_alpha = stats.norm.ppf(1 - alpha / 2)
    delta = np.abs(p_t - p_c)
    return stats.norm.cdf((delta - z_alpha * se_null) / se_alt) + stats.norm.cdf((-delta - z_alpha * se_null) / se_alt)


def sample_size_means(
    standard_deviation: float,
    minimum_detectable_effect: float,
    alpha: float,
    power: float,
    treatment_ratio: float = 1.0,
) -> tuple[int, int]:
    """Units (control, treatment) to detect a difference in means of `mde` (normal approximation)."""
    z_alpha, z_power = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    n_control = (z_alpha + z_power) ** 2 * standard_deviation**2 * (1 + 1 / treatment_ratio)
    n_control = int(np.ceil(n_control / minimum_detectable_effect**2))
    return n_control, int(np.ceil(treatment_ratio * n_control))


def power_means(
    difference: ArrayLike, standard_deviation: ArrayLike, control_n: ArrayLike, treatment_n: ArrayLike, alpha: float
) -> np.ndarray:
    se = np.asarray(standard_deviation, float) * np.sqrt(1 / np.asarray(control_n, float) + 1 / np.asarray(treatment_n))
    shift = np.abs(np.asarray(difference, float)) / se
    z_alpha = stats.norm.ppf(1 - alpha / 2)
    return stats.norm.cdf(shift - z_alpha) + stats.norm.cdf(-shift - z_alpha)


def probability_treatment_beats_control(
    control_successes: float,
    control_n: float,
    treatment_successes: float,
    treatment_n: float,
    *,
    prior: tuple[float, float] = (1.0, 1.0),
    draws: int = 200_000,
    seed: int = 0,
) -> float:
    """P(p_t > p_c | data) with independent Beta(prior) priors (Beta-Binomial), by seeded Monte Carlo."""
    rng = np.random.default_rng(seed)
    a, b = prior
    control = stats.beta(a + control_successes, b + control_n - control_successes).rvs(draws, random_state=rng)
    treatment = stats.beta(a + treatment_successes, b + treatment_n - treatment_successes).rvs(draws, random_state=rng)
    return float((treatment > control).mean())


def probability_treatment_beats_control_normal(difference: float, standard_error: float) -> float:
    """P(treatment mean > control mean) under a flat prior and a normal likelihood (continuous metrics)."""
    if standard_error <= 0:
        return 0.5 if difference == 0 else float(difference > 0)
    return float(stats.norm.cdf(difference / standard_error))


def default_mixing_sd(pooled_standard_deviation: float) -> float:
    return max(DEFAULT_STANDARDISED_MIXING_SD * pooled_standard_deviation, np.finfo(float).eps)
