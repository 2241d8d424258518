"""Model registry on DynamoDB (moto), with the table built from template.yaml's own definition."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from helpers import load_template
from mlops.core.artifacts import ArtifactRef
from mlops.core.clock import utc_now
from mlops.core.errors import DeploymentConflictError, InvalidTransitionError, ModelNotFoundError
from mlops.registry.store import ModelRegistry, ModelStatus, ModelVersion

MODEL = "churn"


@pytest.fixture
def registry() -> Iterator[ModelRegistry]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        properties = load_template()["Resources"]["ModelRegistryTable"]["Properties"]
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="registry",
            AttributeDefinitions=properties["AttributeDefinitions"],
            KeySchema=properties["KeySchema"],
            BillingMode=properties["BillingMode"],
        )
        yield ModelRegistry("registry", client)


def a_version(version: str, status: ModelStatus = ModelStatus.APPROVED) -> ModelVersion:
    ref = ArtifactRef(key=f"models/{MODEL}/{version}/model.onnx", sha256="0" * 64, size_bytes=1)
    return ModelVersion(
        model_name=MODEL,
        version=version,
        status=status,
        created_at=utc_now(),
        algorithm="gradient_boosting",
        threshold=0.5,
        metrics={"roc_auc": 0.95},
        artifacts={"onnx": ref},
        dataset_sha256="1" * 64,
    )


def test_registered_versions_are_listed_newest_first_and_read_back_exactly(registry: ModelRegistry) -> None:
    # Given two registered versions
    first, second = a_version("v1"), a_version("v2")
    registry.register(first)
    registry.register(second)
    # When reading them back
    listed = registry.list_versions(MODEL)
    # Then the records round-trip and the newest comes first
    assert [v.version for v in listed] == ["v2", "v1"]
    assert registry.get(MODEL, "v1") == first


def test_a_version_cannot_be_registered_twice(registry: ModelRegistry) -> None:
    registry.register(a_version("v1"))
    with pytest.raises(registry._ddb.exceptions.ConditionalCheckFailedException):
        registry.register(a_version("v1"))


def test_deploying_moves_the_alias_and_retires_the_previous_version(registry: ModelRegistry) -> None:
    # Given v1 in production and an approved v2
    registry.register(a_version("v1"))
    registry.register(a_version("v2"))
    registry.deploy(MODEL, "v1", deployment_id="d1", expected_current=None, changed_by="test", reason="first")
    # When v2 is deployed over v1
    alias = registry.deploy(MODEL, "v2", deployment_id="d2", expected_current="v1", changed_by="test", reason="better")
    # Then production serves v2, v1 is retired, and both histories say why
    assert registry.get_production(MODEL).version == "v2"
    assert alias.previous_version == "v1"
    assert registry.get(MODEL, "v2").status is ModelStatus.DEPLOYED
    retired = registry.get(MODEL, "v1")
    assert retired.status is ModelStatus.RETIRED
    assert retired.status_history[-1].reason == "replaced by v2 (d2)"


def test_an_unapproved_version_cannot_be_deployed(registry: ModelRegistry) -> None:
    registry.register(a_version("v1", ModelStatus.PENDING_APPROVAL))
    with pytest.raises(InvalidTransitionError, match="only an approved version"):
        registry.deploy(MODEL, "v1", deployment_id="d1", expected_current=None, changed_by="test", reason="x")
    assert registry.get_production(MODEL) is None


def test_a_deployment_that_expects_another_production_version_changes_nothing(
    registry: ModelRegistry,
) -> None:
    # Given v1 serving
    for v in ("v1", "v2", "v3"):
        registry.register(a_version(v))
    registry.deploy(MODEL, "v1", deployment_id="d1", expected_current=None, changed_by="test", reason="x")
    # When a deployment believes v2 is serving
    with pytest.raises(DeploymentConflictError, match="serves v1, not the expected v2"):
        registry.deploy(MODEL, "v3", deployment_id="d3", expected_current="v2", changed_by="test", reason="x")
    # Then v1 still serves and v3 was not marked deployed
    assert registry.get_production(MODEL).version == "v1"
    assert registry.get(MODEL, "v3").status is ModelStatus.APPROVED


def test_undeploy_removes_the_alias(registry: ModelRegistry) -> None:
    registry.register(a_version("v1"))
    registry.deploy(MODEL, "v1", deployment_id="d1", expected_current=None, changed_by="test", reason="x")
    registry.undeploy(MODEL, expected_current="v1", changed_by="test", reason="smoke test failed")
    assert registry.get_production(MODEL) is None
    assert registry.get(MODEL, "v1").status is ModelStatus.RETIRED


def test_an_unknown_version_is_a_clear_not_found(registry: ModelRegistry) -> None:
    with pytest.raises(ModelNotFoundError, match="has no version v9"):
        registry.get(MODEL, "v9")


def test_a_pending_version_is_approved_or_rejected_once_and_keeps_its_history(registry: ModelRegistry) -> None:
    # Given a version awaiting approval, with the token of the execution waiting for it
    registry.register(a_version("v1", ModelStatus.PENDING_APPROVAL))
    registry.set_approval_token("churn", "v1", "token-1")
    assert registry.approval_token("churn", "v1") == "token-1"
    # When a reviewer approves it
    approved = registry.decide("churn", "v1", approved=True, by="arn:aws:iam::1:user/reviewer", reason="card read")
    # Then it is approved with who and why, the token is gone, and it can be deployed
    assert approved.status is ModelStatus.APPROVED
    assert (approved.status_history[-1].by, approved.status_history[-1].reason) == (
        "arn:aws:iam::1:user/reviewer",
        "card read",
    )
    assert registry.approval_token("churn", "v1") is None
    registry.deploy("churn", "v1", deployment_id="d1", expected_current=None, changed_by="t", reason="r")
    # And no second decision is taken
    with pytest.raises(InvalidTransitionError, match="only a version awaiting approval"):
        registry.decide("churn", "v1", approved=False, by="someone", reason="too late")
    # And a rejected version never deploys
    registry.register(a_version("v2", ModelStatus.PENDING_APPROVAL))
    registry.decide("churn", "v2", approved=False, by="reviewer", reason="recall too low")
    with pytest.raises(InvalidTransitionError, match="only an approved version"):
        registry.deploy("churn", "v2", deployment_id="d2", expected_current="v1", changed_by="t", reason="r")
