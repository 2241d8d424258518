"""The approval gate of the real state machine on the local stack: with automatic approval off, the pilot
waits at WaitForApproval (a Step Functions task token) until a human approves or rejects through the API, as an
operator: signed with SigV4 by the local stack's IAM principal, whose ARN the decision records."""

from __future__ import annotations

import time
from typing import Any

import pytest

from api_clients import client, operator_client
from helpers import pilot_args
from local_cloud.cli import start_pilot
from local_cloud.platform import LocalPlatform
from mlops.core.errors import InvalidTransitionError
from mlops.registry.store import ModelRegistry, ModelStatus

pytestmark = pytest.mark.slow


def registry_of(platform: LocalPlatform) -> ModelRegistry:
    return ModelRegistry(platform.stack.physical_id("ModelRegistryTable"), platform.client("dynamodb"))


def wait_for_pending_version(platform: LocalPlatform, execution_arn: str, timeout_s: float = 300) -> str:
    """The version the execution registered, once its task token is stored (the execution then waits)."""
    registry, deadline = registry_of(platform), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        name = execution_arn.rsplit(":", 1)[-1]
        for version in registry.list_versions("churn"):
            if version.execution_arn == execution_arn and registry.approval_token("churn", version.version):
                return version.version
        status = platform.client("stepfunctions").describe_execution(executionArn=execution_arn)["status"]
        assert status == "RUNNING", f"{name} ended ({status}) before waiting for approval"
        time.sleep(0.2)
    raise TimeoutError("the execution never waited for approval")


def test_a_human_approval_resumes_the_waiting_pilot(platform: LocalPlatform, tmp_path: Any) -> None:
    api, operator = client(platform), operator_client(platform)
    # Given a pilot with automatic approval off
    arn = start_pilot(platform, pilot_args(tmp_path, manual_approval=True))
    # When it waits for a decision, the version is not deployable
    version = wait_for_pending_version(platform, arn)
    record = api.get(f"/models/{version}").get_json()
    assert record["status"] == "PendingApproval"
    assert registry_of(platform).get_production("churn") is None
    # And when a scoring client tries to approve it, it is refused (an operator action: SigV4)
    assert api.post(f"/models/{version}/approve", json={"reason": "not mine to approve"}).status_code == 403
    # And when a human operator approves it through the API, signed
    approved = operator.post(f"/models/{version}/approve", json={"reason": "reviewed the model card"})
    assert approved.status_code == 200, approved.get_json()
    # Then the execution resumes, deploys it and succeeds
    result = platform.wait_for_execution(arn, timeout_s=600)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert [s.name for s in result.states if s.name in {"ApprovalGate", "WaitForApproval", "DeployModel"}] == [
        "ApprovalGate",
        "WaitForApproval",
        "DeployModel",
    ]
    assert result.output["approval_decision"]["mode"] == "manual"
    history = api.get(f"/models/{version}").get_json()["status_history"]
    assert [h["status"] for h in history] == ["PendingApproval", "Approved", "Deployed"]
    assert history[1]["reason"] == "reviewed the model card"
    assert history[1]["by"] == platform.operator.arn
    # And a decision is taken only once
    again = operator.post(f"/models/{version}/approve")
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "invalid_transition"


def test_a_rejection_fails_the_pilot_and_leaves_production_unchanged(platform: LocalPlatform, tmp_path: Any) -> None:
    operator = operator_client(platform)
    serving = registry_of(platform).get_production("churn")
    # Given a second pilot waiting for a decision
    arn = start_pilot(platform, pilot_args(tmp_path, manual_approval=True, seed=7))
    version = wait_for_pending_version(platform, arn)
    # When a human rejects it
    rejected = operator.post(f"/models/{version}/reject", json={"reason": "recall too low on the West region"})
    assert rejected.status_code == 200
    # Then the execution fails as ModelRejected, and the version that served keeps serving
    result = platform.wait_for_execution(arn, timeout_s=300)
    assert result.status == "FAILED"
    waited = next(s for s in result.states if s.name == "WaitForApproval")
    assert waited.error == "ModelRejected"
    assert "DeployModel" not in {s.name for s in result.states}
    assert registry_of(platform).get_production("churn") == serving
    assert registry_of(platform).get("churn", version).status is ModelStatus.REJECTED
    assert registry_of(platform).get("churn", version).status_history[-1].by == platform.operator.arn
    # And an unapproved (rejected) version cannot be deployed
    request = {"action": "deploy", "model_version": version, "deployment_id": "by-hand"}
    with pytest.raises(InvalidTransitionError, match="only an approved version can be deployed"):
        platform.runtime.invoke("DeployModelFunction", {**request, "expected_current_version": serving.version})


def test_rollback_redeploys_the_previous_version(platform: LocalPlatform, tmp_path: Any) -> None:
    operator = operator_client(platform)
    first = registry_of(platform).get_production("churn").version
    # Given a third pilot, approved automatically (same data and seed: no metric worse), replacing the first
    arn = start_pilot(platform, pilot_args(tmp_path))
    assert platform.wait_for_execution(arn, timeout_s=600).status == "SUCCEEDED"
    second = registry_of(platform).get_production("churn").version
    assert second != first
    # When production is rolled back through the API
    response = operator.post(f"/models/{second}/rollback", json={"reason": "complaints from the retention team"})
    # Then the previous version serves again, and rolling back a version that does not serve is refused
    assert response.status_code == 200, response.get_json()
    assert registry_of(platform).get_production("churn").version == first
    # (in the operator's name: it redeployed the first version and retired the second)
    for version in (first, second):
        assert registry_of(platform).get("churn", version).status_history[-1].by == platform.operator.arn
    assert operator.post(f"/models/{second}/rollback").status_code == 409
