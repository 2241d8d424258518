"""The pilot state machine file: the same one AWS runs, checked where `sam validate` does not look."""

from __future__ import annotations

import json
import re

import pytest

from helpers import PILOT_ASL_PATH, load_template

TRANSIENT_LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


@pytest.fixture(scope="module")
def substitutions() -> dict:
    return load_template()["Resources"]["PilotStateMachine"]["Properties"]["DefinitionSubstitutions"]


@pytest.fixture(scope="module")
def definition(substitutions: dict) -> dict:
    text = PILOT_ASL_PATH.read_text()
    # Given the definition with every placeholder replaced, as CloudFormation does
    numbers = {"RetryIntervalSeconds", "ApprovalTimeoutSeconds"}  # substituted unquoted, as numbers
    for name in substitutions:
        text = text.replace("${" + name + "}", "1" if name in numbers else f"sub-{name}")
    return json.loads(text)


def test_every_placeholder_has_a_substitution_and_every_substitution_is_used(substitutions: dict) -> None:
    # Given the raw definition text
    placeholders = set(re.findall(r"\$\{(\w+)\}", PILOT_ASL_PATH.read_text()))
    # Then placeholders and the template's DefinitionSubstitutions match exactly
    assert placeholders == set(substitutions)


def test_every_state_is_reachable_and_every_transition_exists(definition: dict) -> None:
    states = definition["States"]
    # When walking from StartAt through Next, Default, Choices and Catch
    reachable, frontier = set(), [definition["StartAt"]]
    while frontier:
        name = frontier.pop()
        if name in reachable:
            continue
        assert name in states, f"transition to missing state {name}"
        reachable.add(name)
        state = states[name]
        targets = [state.get("Next"), state.get("Default")]
        targets += [c["Next"] for c in state.get("Choices", [])]
        targets += [c["Next"] for c in state.get("Catch", [])]
        frontier += [t for t in targets if t]
    # Then nothing is dead
    assert reachable == set(states)


def test_every_task_retries_transient_lambda_errors_with_backoff_and_catches(definition: dict) -> None:
    tasks = {n: s for n, s in definition["States"].items() if s["Type"] == "Task"}
    assert len(tasks) >= 12
    for name, task in tasks.items():
        retry = task["Retry"][0]
        assert retry["BackoffRate"] >= 2, name
        assert retry["MaxAttempts"] >= 2, name
        if task["Resource"].startswith("sub-"):  # a Lambda function
            assert set(retry["ErrorEquals"]) >= TRANSIENT_LAMBDA_ERRORS, name
            assert "States.ALL" not in retry["ErrorEquals"], f"{name} must not retry permanent errors"
        if name != "RecordFailure":
            assert task["Catch"][0]["ErrorEquals"] == ["States.ALL"], name


def test_steps_after_deployment_started_roll_back_before_failing(definition: dict) -> None:
    states = definition["States"]
    for name in ("DeployModel", "SmokeTest", "ValidateSuccessCriteria"):
        assert states[name]["Catch"][0]["Next"] == "RollBack"
    for name in (
        "ValidateEnvironment",
        "IngestFeatures",
        "PrepareData",
        "TrainModel",
        "EvaluateModel",
        "RegisterModel",
    ):
        assert states[name]["Catch"][0]["Next"] == "RecordFailure"
    assert states["RollBack"]["Next"] == "RecordFailure"
    assert states["RecordFailure"]["Next"] == "PilotFailed"


def reachable_from(definition: dict, start: str) -> set[str]:
    states, seen, frontier = definition["States"], set(), [start]
    while frontier:
        name = frontier.pop()
        if name in seen:
            continue
        seen.add(name)
        state = states[name]
        frontier += [t for t in (state.get("Next"), state.get("Default")) if t]
        frontier += [c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])]
    return seen


def test_a_failing_ab_test_never_rolls_the_validated_model_back(definition: dict) -> None:
    states = definition["States"]
    # Given the monitoring and A/B test steps, which start only once the model met its own criteria
    assert states["AllCriteriaMet"]["Choices"][0]["Next"] == "MonitorModel"
    assert states["AllCriteriaMet"]["Default"] == "CriteriaNotMet"
    # Then their failures, and the monitoring and report steps' after them, are caught into the state and still
    # reach the final criteria check ...
    for name, result_path, after in (
        ("MonitorModel", "$.monitoring_error", "StartExperiment"),
        ("StartExperiment", "$.experiment_error", "ValidateExperimentCriteria"),
        ("RunRetentionCampaign", "$.experiment_error", "ValidateExperimentCriteria"),
        ("PublishReport", "$.report_error", "ExperimentCriteriaMet"),
    ):
        catch = states[name]["Catch"][0]
        assert (catch["ResultPath"], catch["Next"]) == (result_path, after), name
    assert states["ValidateExperimentCriteria"]["Parameters"]["stage"] == "experiment"
    assert states["ExperimentCriteriaMet"]["Default"] == "ExperimentCriteriaNotMet"
    # ... and from nowhere after the model's criteria can the execution reach RollBack
    after_the_model = (
        "MonitorModel",
        "StartExperiment",
        "RunRetentionCampaign",
        "ValidateExperimentCriteria",
        "PublishReport",
        "ExperimentCriteriaNotMet",
    )
    for name in after_the_model:
        assert "RollBack" not in reachable_from(definition, name), name
        assert "PilotFailed" in reachable_from(definition, name), name
    assert "RollBack" in reachable_from(definition, "ValidateSuccessCriteria")


def test_the_order_of_the_pilot_steps(definition: dict) -> None:
    order, name = [], definition["StartAt"]
    while name and definition["States"][name]["Type"] == "Task":
        order.append(name)
        state = definition["States"][name]
        name = state.get("Next")
        if name and definition["States"][name]["Type"] == "Choice":
            name = definition["States"][name]["Choices"][0]["Next"]
    assert order == [
        "ValidateEnvironment",
        "IngestFeatures",
        "PrepareData",
        "TrainModel",
        "EvaluateModel",
        "RegisterModel",
        "DecideApproval",
        "DeployModel",
        "SmokeTest",
        "ValidateSuccessCriteria",
        "MonitorModel",
        "StartExperiment",
        "RunRetentionCampaign",
        "ValidateExperimentCriteria",
        "PublishReport",
    ]


def test_a_version_the_policy_does_not_approve_waits_for_a_human_with_a_task_token(definition: dict) -> None:
    states = definition["States"]
    gate = states["ApprovalGate"]
    assert gate["Choices"] == [
        {"Variable": "$.approval_decision.approved", "BooleanEquals": True, "Next": "DeployModel"}
    ]
    assert gate["Default"] == "WaitForApproval"
    wait = states["WaitForApproval"]
    assert wait["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert wait["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert wait["TimeoutSeconds"] == 1  # the ApprovalTimeoutSeconds substitution
    assert wait["Next"] == "DeployModel"
