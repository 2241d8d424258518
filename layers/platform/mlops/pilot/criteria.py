"""The pilot's success criteria (steps ValidateSuccessCriteria and ValidateExperimentCriteria): the model's
after the smoke test, and at the end the A/B test's and the monitoring's too.

The same function explains a failed run: given the state the execution had when it failed, a criterion whose
step never reported has no value, fails, and its `detail` says why (not reached, or the step failed).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Literal

from mlops.pilot.payloads import (
    PARITY_TOLERANCE,
    BusinessImpact,
    CriteriaReport,
    Criterion,
    PilotState,
    PrimaryEffect,
)
from mlops.pilot.use_case import PilotTargets, PilotTargetsInput

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "<": operator.lt,
}


def evaluate_success_criteria(
    state: PilotState, stage: Literal["model", "experiment"] = "model", failed_at: str | None = None
) -> CriteriaReport:
    """The model's criteria; at the "experiment" stage also the A/B test's (ready, projected impact) and the
    monitoring's. `failed_at`: the state a failed run failed at, named in the detail of what it never reached."""
    criteria = _model_criteria(state, failed_at)
    if stage == "experiment":
        criteria |= _experiment_criteria(state, failed_at)
    failed = [name for name, c in criteria.items() if not c.passed]
    return CriteriaReport(all_passed=not failed, criteria=criteria, failed=failed)


def _model_criteria(state: PilotState, failed_at: str | None) -> dict[str, Criterion]:
    targets = _targets(state)
    metrics = state.evaluation.metrics if state.evaluation is not None else None
    registration, smoke = state.registration, state.smoke_test
    evaluated = _why_missing(metrics is not None, "the evaluation", failed_at)
    registered = _why_missing(registration is not None, "the registration", failed_at)
    smoke_tested = _why_missing(smoke is not None, "the smoke test", failed_at)
    return {
        "accuracy": _check(metrics["accuracy"] if metrics else None, ">=", targets.accuracy, evaluated, digits=6),
        "auc_roc": _check(metrics["roc_auc"] if metrics else None, ">=", targets.auc_roc, evaluated, digits=6),
        "latency_p95_ms": _check(smoke.latency_ms.p95 if smoke else None, "<=", targets.latency_p95_ms, smoke_tested),
        "smoke_test_errors": _check(smoke.errors if smoke else None, "==", 0, smoke_tested),
        "onnx_parity": _check(
            registration.parity_max_abs_diff if registration else None, "<=", PARITY_TOLERANCE, registered
        ),
        "served_matches_registered": _check(
            smoke.max_reference_difference if smoke else None, "<=", 1e-6, smoke_tested
        ),
        "model_deployed": _check(
            smoke.served_version if smoke else None,
            "==",
            registration.model_version if registration else None,
            smoke_tested,
        ),
    }


def _experiment_criteria(state: PilotState, failed_at: str | None) -> dict[str, Criterion]:
    """Ready: the experiment runs on the model's traffic, every variant got units with a sane split, and its
    results were computed. Sized: it exposed the units its own power plan asks for. Its primary metric's effect
    is significant at the plan's alpha; and the impact, as the experiment measured it, meets the target.
    Monitoring: the later window (customers no earlier step used) is judged by its own outcomes."""
    targets = _targets(state)
    experiment, campaign, monitoring = state.experiment, state.campaign, state.monitoring
    started = experiment is not None or state.experiment_error is not None
    ready = started and (
        state.experiment_error is None
        and experiment is not None
        and campaign is not None
        and campaign.experiment_id == experiment.experiment_id
        and all(n > 0 for n in campaign.results.sample_ratio.observed.values())
        and not campaign.results.sample_ratio.mismatch
    )
    monitored = _why_missing(monitoring is not None, "the monitoring", failed_at, state.monitoring_error)
    analysed = _why_missing(campaign is not None, "the campaign", failed_at, state.experiment_error)
    impact = campaign.business_impact if campaign else None
    primary = impact.primary_effect if impact else None
    return {
        "monitored_accuracy": _check(
            monitoring.accuracy if monitoring else None, ">=", targets.accuracy, monitored, digits=6
        ),
        "monitored_auc": _check(monitoring.auc if monitoring else None, ">=", targets.auc_roc, monitored, digits=6),
        "no_drift_on_later_window": _check(
            monitoring.drift_detected is False if monitoring else None, "==", True, monitored
        ),
        "ab_testing_ready": _check(
            ready if started else None, "==", True, _why_missing(started, "the A/B test", failed_at)
        ),
        "experiment_units": _check(
            primary.units if primary else None, ">=", primary.planned_units if primary else None, analysed
        ),
        "primary_effect_p_value": _check(
            primary.p_value if primary else None,
            "<",
            primary.alpha if primary else None,
            analysed or _effect_detail(primary),
            digits=6,
        ),
        "projected_annual_impact_usd": _check(
            impact.projected_annual_impact_usd if impact else None,
            ">=",
            targets.projected_annual_impact_usd,
            analysed or _impact_detail(impact),
        ),
    }


def _effect_detail(primary: PrimaryEffect | None) -> str | None:
    if primary is None or primary.difference is None or primary.always_valid_p_value is None:
        return None
    low, high = primary.confidence_interval
    interval = f"[{low:+.4f}, {high:+.4f}]" if low is not None and high is not None else "[?]"
    return (
        f"{primary.metric} ({primary.estimate}): model - baseline = {primary.difference:+.4f} {interval}, "
        f"always-valid p = {primary.always_valid_p_value:.4g}, {primary.units:,} of {primary.planned_units:,} "
        "planned units"
    )


def _impact_detail(impact: BusinessImpact | None) -> str | None:
    if impact is None:
        return None
    measured, truth = impact.measured_by_experiment, impact.simulated_truth
    low, high = measured.projected_annual_impact_ci_usd
    interval = f"[{low:,.0f}, {high:,.0f}]" if low is not None and high is not None else "[?]"
    return (
        f"measured by the experiment ({measured.estimate}), 95% CI {interval}; simulated truth "
        f"{truth.projected_annual_impact_usd:,.0f} (a check of the estimate)"
    )


def _targets(state: PilotState) -> PilotTargets | PilotTargetsInput:
    """The run's targets as PrepareData resolved them (input over schema over defaults); before that, what the
    input gave (None where it gave none)."""
    return state.use_case.targets if state.dataset is not None else state.targets


def _why_missing(reported: bool, step: str, failed_at: str | None, error: dict[str, Any] | None = None) -> str | None:
    """None when the step reported; else why not: its Catch stored an error, or the run never reached it."""
    if reported:
        return None
    if error is not None:
        return f"not measured: {step} failed ({error.get('Error')})"
    if failed_at:
        return f"not reached: the run failed at {failed_at}"
    return f"not measured: no report of {step}"


def _check(value: Any, comparison: str, target: Any, missing: str | None, digits: int | None = None) -> Criterion:
    """`missing`: why the value's step did not report (its value is then None). A value of None fails.
    `digits`: the value is shown rounded, but compared as measured."""
    passed = value is not None and target is not None and _COMPARISONS[comparison](value, target)
    shown = round(value, digits) if digits is not None and isinstance(value, float) else value
    return Criterion(value=shown, target=target, comparison=comparison, passed=passed, detail=missing)
