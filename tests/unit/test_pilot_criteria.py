"""The pilot's success criteria: on the complete states the criteria steps receive, and on the partial state of
a failed run, which the CLI explains with the same function."""

from __future__ import annotations

from typing import Any

from helpers import TELECOM_SCHEMA
from mlops.data.schema import DataSchema
from mlops.pilot.criteria import evaluate_success_criteria
from mlops.pilot.payloads import PilotState
from mlops.pilot.use_case import CampaignAssumptionsInput, PilotTargetsInput, resolve_use_case

MODEL_CRITERIA = [
    "accuracy",
    "auc_roc",
    "latency_p95_ms",
    "smoke_test_errors",
    "onnx_parity",
    "served_matches_registered",
    "model_deployed",
]
EXPERIMENT_CRITERIA = [
    "monitored_accuracy",
    "monitored_auc",
    "no_drift_on_later_window",
    "ab_testing_ready",
    "experiment_units",
    "primary_effect_p_value",
    "projected_annual_impact_usd",
]
ARTIFACT = {"key": "runs/local-1/artifact", "sha256": "0" * 64, "size_bytes": 0}


def pilot_state(**sections: Any) -> PilotState:
    """A pilot state with the input's targets and the given steps' reports."""
    return PilotState.model_validate(
        {
            "data_key": "datasets/telecom_churn.csv",
            "schema_key": "datasets/telecom_churn.schema.json",
            "targets": {"accuracy": 0.87, "auc_roc": 0.999, "latency_p95_ms": 80.0},
            **sections,
        }
    )


EVALUATION = {
    "metrics": {"accuracy": 0.951234567, "roc_auc": 0.9375123, "recall": 0.71},
    "meets_targets": False,
    "failed_targets": ["auc_roc 0.9375 < 0.999"],
}
REGISTRATION = {
    "model_version": "v3",
    "artifacts": {"model": ARTIFACT},
    "parity_max_abs_diff": 2e-7,
    "smoke_test_rows": ARTIFACT,
}
SMOKE_TEST = {
    "calls": 200,
    "errors": 0,
    "served_version": "v3",
    "max_reference_difference": 0.0,
    "latency_ms": {"p50": 3.1, "p95": 91.5, "p99": 120.0, "mean": 9.0, "max": 130.0},
}


def test_a_run_that_failed_after_the_evaluation_reports_its_metrics_and_the_rest_as_not_reached() -> None:
    # Given the state of a run that failed at the quality gate: only the evaluation reported
    state = pilot_state(evaluation=EVALUATION)

    # When every criterion is evaluated on it
    report = evaluate_success_criteria(state, "experiment", failed_at="ModelBelowTargets")

    # Then accuracy and AUC have their measured values against their targets
    accuracy, auc = report.criteria["accuracy"], report.criteria["auc_roc"]
    assert (accuracy.value, accuracy.target, accuracy.passed, accuracy.detail) == (0.951235, 0.87, True, None)
    assert (auc.value, auc.target, auc.comparison, auc.passed, auc.detail) == (0.937512, 0.999, ">=", False, None)
    # And every other criterion is reported, not reached, failed and without a value
    assert list(report.criteria) == MODEL_CRITERIA + EXPERIMENT_CRITERIA
    for name in MODEL_CRITERIA[2:] + EXPERIMENT_CRITERIA:
        criterion = report.criteria[name]
        assert criterion.value is None, name
        assert criterion.passed is False, name
        assert criterion.detail == "not reached: the run failed at ModelBelowTargets", name
    assert report.all_passed is False
    assert report.failed == ["auc_roc", *MODEL_CRITERIA[2:], *EXPERIMENT_CRITERIA]


def test_a_step_the_run_reached_but_that_failed_is_named_in_the_detail() -> None:
    # Given a run whose A/B test and monitoring steps failed, their errors caught into the state
    state = pilot_state(
        evaluation=EVALUATION,
        registration=REGISTRATION,
        smoke_test=SMOKE_TEST,
        experiment_error={"Error": "RuntimeError", "Cause": "injected"},
        monitoring_error={"Error": "TimeoutError", "Cause": "injected"},
    )

    # When the experiment stage's criteria are evaluated
    criteria = evaluate_success_criteria(state, "experiment", failed_at="ExperimentCriteriaNotMet").criteria

    # Then the A/B test was judged not ready, and what its steps would have measured says which step failed
    assert (criteria["ab_testing_ready"].value, criteria["ab_testing_ready"].detail) == (False, None)
    assert criteria["projected_annual_impact_usd"].detail == "not measured: the campaign failed (RuntimeError)"
    assert criteria["monitored_accuracy"].detail == "not measured: the monitoring failed (TimeoutError)"
    assert criteria["no_drift_on_later_window"].value is None


def test_a_complete_model_stage_state_is_judged_on_every_measured_value() -> None:
    # Given the state the ValidateSuccessCriteria step receives, with a slow smoke test
    state = pilot_state(evaluation=EVALUATION, registration=REGISTRATION, smoke_test=SMOKE_TEST)

    # When the model's criteria are evaluated
    report = evaluate_success_criteria(state)

    # Then only the model's criteria are checked, each with its value, and no detail is needed
    assert list(report.criteria) == MODEL_CRITERIA
    assert all(c.detail is None and c.value is not None for c in report.criteria.values())
    assert report.failed == ["auc_roc", "latency_p95_ms"]
    assert report.criteria["latency_p95_ms"].value == 91.5
    assert report.criteria["model_deployed"].passed is True
    assert report.criteria["onnx_parity"].passed is True


def test_the_targets_are_the_ones_prepare_data_resolved_once_it_has_run() -> None:
    # Given a run whose input gave no AUC target, and whose PrepareData resolved it from the schema or default
    schema = DataSchema.from_file(TELECOM_SCHEMA)
    use_case = resolve_use_case(schema, PilotTargetsInput(accuracy=0.9), CampaignAssumptionsInput(), None)
    dataset = {
        "data_key": "datasets/telecom_churn.csv",
        "dataset_sha256": "0" * 64,
        "rows": 4000,
        "train_rows": 2800,
        "test_rows": 800,
        "positive_rate": 0.142,
        "missing_values": {},
        "dropped_rows": 0,
        "use_case": use_case.model_dump(),
        "schema_ref": ARTIFACT,
        "train": ARTIFACT,
        "test": ARTIFACT,
        "monitoring_window": ARTIFACT,
    }
    state = PilotState.model_validate(
        {
            "data_key": "datasets/telecom_churn.csv",
            "schema_key": "datasets/telecom_churn.schema.json",
            "targets": {"accuracy": 0.9},
            "dataset": dataset,
            "evaluation": EVALUATION,
        }
    )

    # When the criteria are evaluated
    criteria = evaluate_success_criteria(state, failed_at="ModelBelowTargets").criteria

    # Then each target is the resolved one: the input's accuracy, the schema's (or the default) AUC
    assert criteria["accuracy"].target == 0.9
    assert criteria["auc_roc"].target == use_case.targets.auc_roc
    assert criteria["latency_p95_ms"].target == use_case.targets.latency_p95_ms
