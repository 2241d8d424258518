"""Results of an experiment from its exposures and outcomes: every metric, every treatment against control.

Each exposed unit counts once per metric, with value 0 when it has no outcome (a unit that did not convert,
or earned nothing). Outcomes of units that were never exposed are not analysed.

Each analysis is one look of the sequential test: given the running results of the previous looks
(`SequentialState`, kept by the store), it reports the running always-valid p-value and confidence sequence,
and `sequential_states` gives what to keep for the next look. No AWS here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

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
    SequentialState,
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


type SequentialKey = tuple[str, str]
"""(metric, treatment): a comparison of an experiment (the control is the experiment's)."""


def analyse(
    experiment: Experiment,
    exposures: Mapping[str, str],
    outcomes: Mapping[str, Mapping[str, float]],
    analysed_at: str,
    previous: Mapping[SequentialKey, SequentialState] | None = None,
) -> ExperimentResults:
    """The results at this look; `previous` holds the running sequential results of the earlier looks (none: this
    is the first). The sequential summaries are the running ones, this look included."""
    names = [v.name for v in experiment.variants]
    units = {name: [u for u, variant in exposures.items() if variant == name] for name in names}
    counts = np.array([len(units[name]) for name in names])
    weights = np.array([v.weight for v in experiment.variants])
    srm = st.sample_ratio_mismatch(counts, weights)
    covariate = _covariate(experiment, exposures, outcomes)
    metrics = [
        _metric_result(experiment, spec, role, units, outcomes.get(spec.name, {}), covariate, previous or {})
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
    previous: Mapping[SequentialKey, SequentialState],
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
            _compare(
                experiment,
                spec,
                role,
                variant.name,
                arrays,
                covariates,  # type: ignore[arg-type]
                previous.get((spec.name, variant.name)),
            )
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
    treatment: str,
    arrays: Mapping[str, np.ndarray],
    covariates: tuple[np.ndarray, np.ndarray] | None,
    previous: SequentialState | None,
) -> VariantComparison:
    control = experiment.control
    y_c, y_t = arrays[control], arrays[treatment]
    alpha = experiment.alpha
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
            sequential=_sequential_summary(_restored(previous), previous.looks if previous else 0, 0.0, alpha),
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
    cuped = _cuped(experiment, y_c, y_t, covariates, result) if covariates else None

    pooled_sd = float(np.sqrt((y_c.var(ddof=1) + y_t.var(ddof=1)) / 2))
    mixing_sd = spec.minimum_detectable_effect
    if role == "primary":
        mixing_sd = experiment.minimum_detectable_effect
    mixing_sd = mixing_sd or st.default_mixing_sd(pooled_sd)
    # CUPED's estimate has the same expectation with less variance: the sequential test gains the same power.
    tested = cuped[1] if cuped is not None else result
    look = st.msprt(tested.difference, tested.standard_error**2, mixing_sd, alpha)
    running = st.running_sequential(_restored(previous), look)
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
        sequential=_sequential_summary(
            running,
            (previous.looks if previous else 0) + 1,
            float(mixing_sd),
            alpha,
            "cuped" if cuped is not None else "unadjusted",
        ),
        probability_treatment_better=_number(better),
        cuped=cuped[0] if cuped is not None else None,
        achieved_power=_achieved_power(experiment, len(y_c), len(y_t)) if role == "primary" else None,
    )


def _restored(state: SequentialState | None) -> st.SequentialResult | None:
    """The running sequential result of the earlier looks, as `statistics` takes it."""
    if state is None:
        return None
    p_value = np.float64(state.always_valid_p_value)
    with np.errstate(divide="ignore"):
        likelihood_ratio = np.minimum(1 / p_value, np.exp(700.0))
    return st.SequentialResult(
        always_valid_p_value=p_value,
        cs_low=np.float64(state.cs_low),
        cs_high=np.float64(state.cs_high),
        likelihood_ratio=likelihood_ratio,
    )


def _sequential_summary(
    running: st.SequentialResult | None,
    looks: int,
    mixing_sd: float,
    alpha: float,
    estimate: Literal["unadjusted", "cuped"] = "unadjusted",
) -> SequentialSummary:
    if running is None:
        return SequentialSummary(
            always_valid_p_value=None,
            confidence_sequence=Interval(low=None, high=None),
            significant=False,
            mixing_sd=mixing_sd,
            looks=looks,
            estimate=estimate,
        )
    p_value = _number(running.always_valid_p_value)
    return SequentialSummary(
        always_valid_p_value=p_value,
        confidence_sequence=_interval(running.cs_low, running.cs_high),
        significant=p_value is not None and p_value <= alpha,
        mixing_sd=mixing_sd,
        looks=looks,
        estimate=estimate,
    )


def sequential_states(
    results: ExperimentResults, previous: Mapping[SequentialKey, SequentialState] | None = None
) -> list[SequentialState]:
    """What to keep of this look for the next one: the running result of each comparison this look analysed."""
    states = []
    for metric in results.metrics:
        for comparison in metric.comparisons:
            sequential = comparison.sequential
            before = (previous or {}).get((metric.metric, comparison.treatment))
            p_value, interval = sequential.always_valid_p_value, sequential.confidence_sequence
            if sequential.looks == (before.looks if before else 0):
                continue  # not analysed at this look (too few units)
            if p_value is None or interval.low is None or interval.high is None:
                continue  # no finite result yet
            states.append(
                SequentialState(
                    metric=metric.metric,
                    treatment=comparison.treatment,
                    always_valid_p_value=p_value,
                    cs_low=interval.low,
                    cs_high=interval.high,
                    looks=sequential.looks,
                    last_look_at=results.analysed_at,
                )
            )
    return states


def _cuped(
    experiment: Experiment,
    y_c: np.ndarray,
    y_t: np.ndarray,
    covariates: tuple[np.ndarray, np.ndarray],
    unadjusted: st.Comparison,
) -> tuple[CupedSummary, st.Comparison]:
    adjusted_c, adjusted_t, theta = st.cuped_adjust(y_c, y_t, *covariates)
    result = st.compare_means(adjusted_c, adjusted_t, experiment.alpha)
    reduction = None
    if float(unadjusted.standard_error) > 0:
        reduction = 1 - float(result.standard_error) ** 2 / float(unadjusted.standard_error) ** 2
    assert experiment.cuped_covariate is not None
    summary = CupedSummary(
        covariate=experiment.cuped_covariate,
        theta=float(theta),
        difference=_number(result.difference),
        confidence_interval=_interval(result.ci_low, result.ci_high),
        p_value=_number(result.p_value),
        variance_reduction=_number(reduction),
    )
    return summary, result


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
