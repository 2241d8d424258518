"""Results of an experiment from its exposures and outcomes: every metric, every treatment against control.

Each exposed unit counts once per metric, with value 0 when it has no outcome (a unit that did not convert,
or earned nothing). Outcomes of units that were never exposed are not analysed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from mlops.experiments import statistics as st
from mlops.experiments.models import (
    CupedSummary,
    Direction,
    Experiment,
    ExperimentCreate,
    ExperimentResults,
    Interval,
    MetricKind,
    MetricResult,
    MetricSpec,
    SampleRatioSummary,
    SampleSizePlan,
    SequentialSummary,
    VariantComparison,
    VariantMetric,
)

MIN_UNITS_PER_VARIANT = 2


def _number(value: float | np.ndarray | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _interval(low: float | np.ndarray, high: float | np.ndarray) -> Interval:
    return Interval(low=_number(low), high=_number(high))


def plan_sample_size(request: ExperimentCreate) -> SampleSizePlan:
    """Units per variant so that the smallest treatment against control reaches the planned power."""
    control = next(v for v in request.variants if v.name == request.control_name)
    smallest = min((v for v in request.variants if v.name != control.name), key=lambda v: v.weight)
    ratio = smallest.weight / control.weight
    if request.primary_metric.kind is MetricKind.CONVERSION:
        n_control, _ = st.sample_size_proportions(
            request.baseline_value, request.minimum_detectable_effect, request.alpha, request.power, ratio
        )
        method = "two-proportion z-test (pooled), normal approximation"
    else:
        assert request.standard_deviation is not None
        n_control, _ = st.sample_size_means(
            request.standard_deviation, request.minimum_detectable_effect, request.alpha, request.power, ratio
        )
        method = "Welch's t-test, normal approximation"
    per_variant = {v.name: math.ceil(n_control * v.weight / control.weight) for v in request.variants}
    return SampleSizePlan(units_per_variant=per_variant, total_units=sum(per_variant.values()), method=method)


def analyse(
    experiment: Experiment,
    exposures: Mapping[str, str],
    outcomes: Mapping[str, Mapping[str, float]],
    analysed_at: str,
) -> ExperimentResults:
    names = [v.name for v in experiment.variants]
    units = {name: [u for u, variant in exposures.items() if variant == name] for name in names}
    counts = np.array([len(units[name]) for name in names])
    weights = np.array([v.weight for v in experiment.variants])
    srm = st.sample_ratio_mismatch(counts, weights)
    covariate = _covariate(experiment, exposures, outcomes)
    metrics = [
        _metric_result(experiment, spec, role, units, outcomes.get(spec.name, {}), covariate)
        for spec, role in experiment.metrics
    ]
    total = int(counts.sum())
    return ExperimentResults(
        experiment_id=experiment.experiment_id,
        name=experiment.name,
        status=experiment.status,
        analysed_at=analysed_at,
        units=total,
        alpha=experiment.alpha,
        plan=experiment.plan,
        plan_progress=round(total / experiment.plan.total_units, 6),
        sample_ratio=SampleRatioSummary(
            observed=dict(zip(names, counts.tolist(), strict=True)),
            expected={n: round(float(e), 3) for n, e in zip(names, srm.expected, strict=True)},
            chi_square=float(srm.chi_square),
            p_value=float(srm.p_value),
            threshold=st.SRM_P_VALUE_THRESHOLD,
            mismatch=bool(srm.mismatch),
        ),
        metrics=metrics,
    )


def _covariate(
    experiment: Experiment, exposures: Mapping[str, str], outcomes: Mapping[str, Mapping[str, float]]
) -> dict[str, float] | None:
    """The CUPED covariate per exposed unit; a unit without one gets the mean (adds no information)."""
    if experiment.cuped_covariate is None:
        return None
    observed = {u: v for u, v in outcomes.get(experiment.cuped_covariate, {}).items() if u in exposures}
    if len(observed) < MIN_UNITS_PER_VARIANT:
        return None
    mean = float(np.mean(list(observed.values())))
    return {unit: observed.get(unit, mean) for unit in exposures}


def _metric_result(
    experiment: Experiment,
    spec: MetricSpec,
    role: str,
    units: Mapping[str, list[str]],
    values: Mapping[str, float],
    covariate: Mapping[str, float] | None,
) -> MetricResult:
    arrays = {name: np.array([values.get(u, 0.0) for u in members], float) for name, members in units.items()}
    summaries = {
        name: VariantMetric(
            units=len(array), mean=_number(array.mean()) if len(array) else None, total=float(array.sum())
        )
        for name, array in arrays.items()
    }
    comparisons = []
    for variant in experiment.variants:
        if variant.name == experiment.control:
            continue
        covariates = None
        if covariate is not None:
            covariates = tuple(
                np.array([covariate[u] for u in units[name]], float) for name in (experiment.control, variant.name)
            )
        comparisons.append(
            _compare(experiment, spec, role, experiment.control, variant.name, arrays, covariates)  # type: ignore[arg-type]
        )
    breached = role == "guardrail" and any(c.significant and _worse(spec, c.difference) for c in comparisons)
    return MetricResult(
        metric=spec.name,
        kind=spec.kind,
        role=role,  # type: ignore[arg-type]
        direction=spec.direction,
        variants=summaries,
        comparisons=comparisons,
        guardrail_breached=breached,
    )


def _worse(spec: MetricSpec, difference: float | None) -> bool:
    if difference is None:
        return False
    return difference < 0 if spec.direction is Direction.INCREASE else difference > 0


def _compare(
    experiment: Experiment,
    spec: MetricSpec,
    role: str,
    control: str,
    treatment: str,
    arrays: Mapping[str, np.ndarray],
    covariates: tuple[np.ndarray, np.ndarray] | None,
) -> VariantComparison:
    y_c, y_t = arrays[control], arrays[treatment]
    alpha = experiment.alpha
    empty_sequential = SequentialSummary(
        always_valid_p_value=None, confidence_sequence=Interval(low=None, high=None), significant=False, mixing_sd=0
    )
    if min(len(y_c), len(y_t)) < MIN_UNITS_PER_VARIANT:
        return VariantComparison(
            control=control,
            treatment=treatment,
            difference=None,
            confidence_interval=Interval(low=None, high=None),
            relative_lift=None,
            relative_lift_interval=Interval(low=None, high=None),
            p_value=None,
            significant=False,
            test="not enough units",
            sequential=empty_sequential,
            probability_treatment_better=None,
        )
    if spec.kind is MetricKind.CONVERSION:
        result = st.compare_proportions(y_c.sum(), len(y_c), y_t.sum(), len(y_t), alpha)
        test = "two-proportion z-test"
        better = st.probability_treatment_beats_control(y_c.sum(), len(y_c), y_t.sum(), len(y_t))
    else:
        result = st.compare_means(y_c, y_t, alpha)
        test = "Welch's t-test"
        better = st.probability_treatment_beats_control_normal(float(result.difference), float(result.standard_error))
    if spec.direction is Direction.DECREASE:
        better = 1 - better

    pooled_sd = float(np.sqrt((y_c.var(ddof=1) + y_t.var(ddof=1)) / 2))
    mixing_sd = spec.minimum_detectable_effect
    if role == "primary":
        mixing_sd = experiment.minimum_detectable_effect
    mixing_sd = mixing_sd or st.default_mixing_sd(pooled_sd)
    sequential = st.msprt(result.difference, result.standard_error**2, mixing_sd, alpha)
    p_value = _number(result.p_value)

    return VariantComparison(
        control=control,
        treatment=treatment,
        difference=_number(result.difference),
        confidence_interval=_interval(result.ci_low, result.ci_high),
        relative_lift=_number(result.relative_lift),
        relative_lift_interval=_interval(result.relative_ci_low, result.relative_ci_high),
        p_value=p_value,
        significant=p_value is not None and p_value < alpha,
        test=test,
        sequential=SequentialSummary(
            always_valid_p_value=_number(sequential.always_valid_p_value),
            confidence_sequence=_interval(sequential.cs_low, sequential.cs_high),
            significant=bool(sequential.always_valid_p_value <= alpha),
            mixing_sd=float(mixing_sd),
        ),
        probability_treatment_better=_number(better),
        cuped=_cuped(experiment, y_c, y_t, covariates, result) if covariates else None,
        achieved_power=_achieved_power(experiment, len(y_c), len(y_t)) if role == "primary" else None,
    )


def _cuped(
    experiment: Experiment,
    y_c: np.ndarray,
    y_t: np.ndarray,
    covariates: tuple[np.ndarray, np.ndarray],
    unadjusted: st.Comparison,
) -> CupedSummary:
    adjusted_c, adjusted_t, theta = st.cuped_adjust(y_c, y_t, *covariates)
    result = st.compare_means(adjusted_c, adjusted_t, experiment.alpha)
    reduction = None
    if float(unadjusted.standard_error) > 0:
        reduction = 1 - float(result.standard_error) ** 2 / float(unadjusted.standard_error) ** 2
    assert experiment.cuped_covariate is not None
    return CupedSummary(
        covariate=experiment.cuped_covariate,
        theta=float(theta),
        difference=_number(result.difference),
        confidence_interval=_interval(result.ci_low, result.ci_high),
        p_value=_number(result.p_value),
        variance_reduction=_number(reduction),
    )


def _achieved_power(experiment: Experiment, n_control: int, n_treatment: int) -> float | None:
    if experiment.primary_metric.kind is MetricKind.CONVERSION:
        baseline = experiment.baseline_value
        power = st.power_proportions(
            baseline, baseline + experiment.minimum_detectable_effect, n_control, n_treatment, experiment.alpha
        )
    else:
        assert experiment.standard_deviation is not None
        power = st.power_means(
            experiment.minimum_detectable_effect,
            experiment.standard_deviation,
            n_control,
            n_treatment,
            experiment.alpha,
        )
    return _number(power)
