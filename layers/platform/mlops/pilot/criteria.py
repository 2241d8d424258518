"""The pilot's success criteria (steps ValidateSuccessCriteria and ValidateExperimentCriteria): the model's
after the smoke test, and at the end the A/B test's and the monitoring's too."""

from __future__ import annotations

from typing import Literal

from mlops.pilot.payloads import PARITY_TOLERANCE, CriteriaReport, Criterion, PilotState


def evaluate_success_criteria(state: PilotState, stage: Literal["model", "experiment"] = "model") -> CriteriaReport:
    """The model's criteria; at the "experiment" stage also the A/B test's (ready, projected impact)."""
    if state.evaluation is None or state.smoke_test is None or state.registration is None:
        raise ValueError("success criteria need the evaluation, registration and smoke_test sections")
    metrics = state.evaluation.metrics
    targets = state.targets
    smoke = state.smoke_test
    criteria = {
        "accuracy": _at_least(metrics["accuracy"], targets.accuracy),
        "auc_roc": _at_least(metrics["roc_auc"], targets.auc_roc),
        "latency_p95_ms": Criterion(
            value=smoke.latency_ms.p95,
            target=targets.latency_p95_ms,
            comparison="<=",
            passed=smoke.latency_ms.p95 <= targets.latency_p95_ms,
        ),
        "smoke_test_errors": Criterion(value=smoke.errors, target=0, comparison="==", passed=smoke.errors == 0),
        "onnx_parity": Criterion(
            value=state.registration.parity_max_abs_diff,
            target=PARITY_TOLERANCE,
            comparison="<=",
            passed=state.registration.parity_max_abs_diff <= PARITY_TOLERANCE,
        ),
        "served_matches_registered": Criterion(
            value=smoke.max_reference_difference,
            target=1e-6,
            comparison="<=",
            passed=smoke.max_reference_difference <= 1e-6,
        ),
        "model_deployed": Criterion(
            value=smoke.served_version,
            target=state.registration.model_version,
            comparison="==",
            passed=smoke.served_version == state.registration.model_version,
        ),
    }
    if stage == "experiment":
        criteria |= _experiment_criteria(state)
    failed = [name for name, c in criteria.items() if not c.passed]
    return CriteriaReport(all_passed=not failed, criteria=criteria, failed=failed)


def _experiment_criteria(state: PilotState) -> dict[str, Criterion]:
    """Ready: the experiment runs on the model's traffic, every variant got units with a sane split, and its
    results were computed. The impact is the campaign's measured incremental net value, projected."""
    campaign = state.campaign
    ready = (
        state.experiment_error is None
        and state.experiment is not None
        and campaign is not None
        and campaign.experiment_id == state.experiment.experiment_id
        and all(n > 0 for n in campaign.results.sample_ratio.observed.values())
        and not campaign.results.sample_ratio.mismatch
    )
    impact = campaign.business_impact.projected_annual_impact_usd if campaign else None
    target = state.targets.projected_annual_impact_usd
    monitoring = state.monitoring
    accuracy = monitoring.accuracy if monitoring else None
    no_drift = monitoring is not None and monitoring.drift_detected is False
    return {
        # The monitoring path end to end: the accuracy measured from logged outcomes joined with the served
        # predictions meets the accuracy target the held-out evaluation had to meet; and the held-out traffic,
        # drawn like the training data, raises no drift.
        "monitored_accuracy": _at_least(accuracy, state.targets.accuracy),
        "no_drift_on_held_out_traffic": Criterion(value=no_drift, target=True, comparison="==", passed=no_drift),
        "ab_testing_ready": Criterion(value=ready, target=True, comparison="==", passed=ready),
        "projected_annual_impact_usd": Criterion(
            value=impact, target=target, comparison=">=", passed=impact is not None and impact >= target
        ),
    }


def _at_least(value: float | None, target: float) -> Criterion:
    if value is None:  # not measured: fails
        return Criterion(value=None, target=target, comparison=">=", passed=False)
    return Criterion(value=round(value, 6), target=target, comparison=">=", passed=value >= target)
