"""The local cloud: SAM template on moto, in-process Lambda runtime, Step Functions and the API app.

Uses the tiny stack in local_cloud_fixture/ (not the platform's handlers), except for one test that only
deploys the real template.yaml.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from werkzeug.test import Client

from api_clients import client, operator_client
from local_cloud import InProcessLambdaRuntime, LocalPlatform, StateEvent, deploy_template
from local_cloud.lambda_runtime import RuntimeMarshalError

FIXTURE = Path(__file__).parent / "local_cloud_fixture"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


# ----------------------------------------------------------------------------------------- stack


@pytest.mark.usefixtures("fake_aws_env")
def test_fixture_stack_deploys_with_resolved_names() -> None:
    with mock_aws():
        # Given the fixture template and a parameter override
        # When it is deployed
        stack = deploy_template(FIXTURE / "template.yaml", {"Greeting": "bonjour"}, stack_name="fixture")

        # Then CloudFormation completed and every function sees physical names and parameter values
        status = boto3.client("cloudformation").describe_stacks(StackName="fixture")["Stacks"][0]["StackStatus"]
        assert status == "CREATE_COMPLETE"
        table = stack.physical_id("ItemsTable")
        boto3.client("dynamodb").describe_table(TableName=table)
        echo = stack.functions["EchoFunction"]
        assert echo.environment == {"ITEMS_TABLE": table, "GREETING": "bonjour"}
        assert stack.functions["FlakyFunction"].environment["FLAKY_FAILURES"] == "2"  # a Number, as a string
        assert stack.parameters == {"Greeting": "bonjour", "FlakyFailures": "2", "RetryIntervalSeconds": "1"}
        # And names, ARNs and outputs agree with what moto holds
        config = boto3.client("lambda").get_function_configuration(FunctionName=stack.function_name("EchoFunction"))
        assert config["FunctionArn"] == stack.function_arn("EchoFunction") == echo.function_arn
        assert stack.function(echo.function_arn) is stack.function(echo.function_name) is echo
        assert stack.outputs["ItemsTableName"] == table
        assert stack.outputs["StateMachineArn"] == stack.state_machine_arn("FixtureStateMachine")
        starter_env = stack.functions["StarterFunction"].environment
        assert starter_env["STATE_MACHINE_ARN"] == stack.state_machine_arn("FixtureStateMachine")
        # And both packaging conventions locate the handler
        assert echo.module_file == FIXTURE / "functions/echo/app.py"
        assert echo.handler_name == "handler"
        flaky = stack.functions["FlakyFunction"]
        assert (flaky.package_type, flaky.module_file) == ("Image", FIXTURE / "functions/flaky/app.py")


@pytest.mark.usefixtures("fake_aws_env")
def test_state_machine_definition_is_substituted() -> None:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        # Given the fixture stack deployed with a retry interval override
        stack = deploy_template(FIXTURE / "template.yaml", {"RetryIntervalSeconds": "7"})

        # When its state machine is read back through the Step Functions API
        described = boto3.client("stepfunctions").describe_state_machine(
            stateMachineArn=stack.state_machine_arn("FixtureStateMachine")
        )

        # Then every substitution was applied, numbers included
        states = json.loads(described["definition"])["States"]
        assert states["Flaky"]["Resource"] == stack.function_arn("FlakyFunction")
        assert states["Flaky"]["Retry"][0]["IntervalSeconds"] == 7
        assert states["Echo"]["Parameters"]["FunctionName"] == stack.function_arn("EchoFunction")
        assert states["Echo"]["Parameters"]["Payload"]["table"] == stack.physical_id("ItemsTable")
        assert "FixtureStateMachineRole" in described["roleArn"]


@pytest.mark.usefixtures("fake_aws_env")
def test_missing_definition_substitution_fails_loudly(tmp_path: Path) -> None:
    # Given a copy of the fixture whose template forgets one DefinitionSubstitution
    shutil.copytree(FIXTURE, tmp_path / "stack")
    template = tmp_path / "stack" / "template.yaml"
    template.write_text(template.read_text().replace("        RetryIntervalSeconds: !Ref RetryIntervalSeconds\n", ""))

    # When / Then deploying it names the variable left over
    with (
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        pytest.raises(ValueError, match=r"\$\{RetryIntervalSeconds\}"),
    ):
        deploy_template(template)


@pytest.mark.usefixtures("fake_aws_env")
def test_unknown_parameter_override_is_rejected() -> None:
    with mock_aws(), pytest.raises(ValueError, match="Greting"):
        # Given / When a misspelt override / Then the deploy fails loudly
        deploy_template(FIXTURE / "template.yaml", {"Greting": "typo"})


@pytest.mark.usefixtures("fake_aws_env")
def test_real_template_deploys() -> None:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        # Given the platform's own template.yaml
        template = PROJECT_ROOT / "template.yaml"

        # When it is deployed (no handler is invoked)
        stack = deploy_template(template, {"RetryIntervalSeconds": "1"}, stack_name="real")

        # Then the stack is complete and every function exists with resolved environment variables
        cfn = boto3.client("cloudformation")
        assert cfn.describe_stacks(StackName="real")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
        sam_functions = {k for k, r in stack.template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
        assert set(stack.functions) == sam_functions
        for spec in stack.functions.values():
            assert spec.environment["REGISTRY_TABLE"] == stack.physical_id("ModelRegistryTable")
            assert spec.environment["ARTIFACT_BUCKET"] == stack.physical_id("ArtifactBucket")
            assert all(isinstance(v, str) and "Ref" not in v for v in spec.environment.values()), spec
        assert stack.functions["TrainFunction"].module_file == PROJECT_ROOT / "functions/pipeline/train.py"
        assert stack.functions["TrainFunction"].handler_name == "handler"
        # And the pilot state machine exists with nothing left to substitute
        definition = boto3.client("stepfunctions").describe_state_machine(
            stateMachineArn=stack.state_machine_arn("PilotStateMachine")
        )["definition"]
        assert "${" not in definition
        assert stack.function_arn("TrainFunction") in definition
        assert stack.outputs["PilotStateMachineArn"] == stack.state_machine_arn("PilotStateMachine")


# --------------------------------------------------------------------------------------- runtime


def test_boto3_lambda_invoke_reaches_the_handler() -> None:
    """Guards the patch of moto's private LambdaFunction.invoke (moto is pinned)."""
    original_invoke = LambdaFunction.invoke
    with LocalPlatform(FIXTURE) as platform:
        # Given the runtime installed behind moto's Lambda
        lambda_client = platform.client("lambda")

        # When a function is invoked through boto3
        response = lambda_client.invoke(
            FunctionName=platform.stack.function_name("EchoFunction"), Payload=json.dumps({"n": 1})
        )
        failed = lambda_client.invoke(FunctionName=platform.stack.function_arn("PermanentFunction"), Payload=b"{}")

        # Then the real handler ran with the event
        assert "FunctionError" not in response
        seen = json.load(response["Payload"])
        assert seen["event"] == {"n": 1}
        assert seen["env"]["ITEMS_TABLE"] == platform.stack.physical_id("ItemsTable")
        # And a raised exception comes back as Lambda's unhandled-error payload, with only handler frames
        assert failed["FunctionError"] == "Unhandled"
        error = json.load(failed["Payload"])
        assert error["errorType"] == "PermanentError"
        assert error["errorMessage"] == "this step can never succeed"
        assert all("lambda_runtime.py" not in frame for frame in error["stackTrace"])
        assert any("permanent/app.py" in frame for frame in error["stackTrace"])
    # And leaving the platform restores moto
    assert LambdaFunction.invoke is original_invoke


def test_asynchronous_invoke_runs_and_hides_errors() -> None:
    with LocalPlatform(FIXTURE) as platform:
        # Given / When an Event invocation of a failing function
        response = platform.client("lambda").invoke(
            FunctionName=platform.stack.function_name("PermanentFunction"),
            InvocationType="Event",
            Payload=b"{}",
        )

        # Then the caller sees 202 and no error, but the invocation happened
        assert response["StatusCode"] == 202
        assert "FunctionError" not in response
        assert platform.runtime.invocations[-1].error_type == "PermanentError"


@pytest.mark.usefixtures("fake_aws_env")
def test_module_state_is_warm_within_a_runtime_but_not_shared_between_runtimes() -> None:
    with mock_aws():
        # Given one stack and a runtime
        stack = deploy_template(FIXTURE / "template.yaml")
        first = InProcessLambdaRuntime(stack, FIXTURE)

        # When the same function is invoked twice, another function with the same app.py once,
        # then the first function once more in a second runtime
        counts = [first.invoke("EchoFunction", {})["invocations"] for _ in range(2)]
        same_code = first.invoke("StarterFunction", {})["invocations"]
        other = InProcessLambdaRuntime(stack, FIXTURE).invoke("EchoFunction", {})["invocations"]

        # Then each function imported its module once (cold, then warm) and nothing was shared
        assert counts == [1, 2]
        assert same_code == 1
        assert other == 1
        assert [(i.function, i.cold_start) for i in first.invocations] == [
            ("EchoFunction", True),
            ("EchoFunction", False),
            ("StarterFunction", True),
        ]
        assert all(i.duration_ms >= 0 and i.error_type is None for i in first.invocations)


@pytest.mark.usefixtures("fake_aws_env")
def test_environment_is_the_functions_own_and_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():
        # Given a host variable and a runtime with an extra local variable
        monkeypatch.setenv("HOST_ONLY", "host")
        stack = deploy_template(FIXTURE / "template.yaml")
        runtime = InProcessLambdaRuntime(stack, FIXTURE, extra_environment={"GREETING": "local"})
        before = dict(os.environ)

        # When functions are invoked, one of them failing
        seen = runtime.invoke(stack.function_arn("EchoFunction"), {"x": [1, 2]})
        with pytest.raises(Exception, match="never succeed") as raised:
            runtime.invoke("PermanentFunction", {})

        # Then the handler saw its own environment, the local additions and a Lambda context
        assert seen["env"] == {
            "GREETING": "local",
            "ITEMS_TABLE": stack.physical_id("ItemsTable"),
            "AWS_LAMBDA_FUNCTION_NAME": stack.function_name("EchoFunction"),
            "AWS_REGION": "us-east-1",
            "HOST_ONLY": None,
        }
        assert seen["event"] == {"x": [1, 2]}
        assert 0 < seen["remaining_ms"] <= 10_000
        # And the handler's own exception class reached the caller
        assert type(raised.value).__name__ == "PermanentError"
        # And the process environment is back as it was
        assert dict(os.environ) == before


@pytest.mark.usefixtures("fake_aws_env")
def test_non_json_result_is_a_marshal_error() -> None:
    with mock_aws():
        # Given a handler that returns a set
        runtime = InProcessLambdaRuntime(deploy_template(FIXTURE / "template.yaml"), FIXTURE)

        # When / Then the invocation fails as Lambda would
        with pytest.raises(RuntimeMarshalError):
            runtime.invoke("EchoFunction", {"return_a_set": True})
        assert runtime.invocations[-1].error_type == "Runtime.MarshalError"


# -------------------------------------------------------------------------------- Step Functions


def test_state_machine_retries_then_catches() -> None:
    with LocalPlatform(FIXTURE, {"Greeting": "hi"}) as platform:
        # Given a flaky step that fails twice, and a permanent failure behind a Catch
        reported: list[StateEvent] = []

        # When an execution runs
        arn = platform.start_execution("FixtureStateMachine", {"run": 1}, name="retry-and-catch")
        result = platform.wait_for_execution(arn, timeout_s=30, on_state=reported.append)

        # Then it succeeded through the retry and the catch
        assert result.status == "SUCCEEDED"
        assert result.output["flaky"] == {"attempts": 3}
        assert result.output["echo"] == {"greeting": "hi", "table": platform.stack.physical_id("ItemsTable")}
        assert result.output["error"]["Error"] == "PermanentError"
        assert result.output["recovered"] is True
        # And every state was reported once, in order, with its outcome
        assert reported == result.states
        assert [(s.name, s.type, s.status, s.retries, s.error) for s in result.states] == [
            ("Flaky", "Task", "SUCCEEDED", 2, None),
            ("Echo", "Task", "SUCCEEDED", 0, None),
            ("Permanent", "Task", "CAUGHT", 0, "PermanentError"),
            ("Recovered", "Pass", "SUCCEEDED", 0, None),
            ("Done", "Succeed", "SUCCEEDED", 0, None),
        ]
        assert result.states[0].duration_s >= 2  # two real 1 s retry intervals
        assert all(s.finished_at >= s.started_at for s in result.states)


def test_state_machine_fails_when_retries_are_exhausted() -> None:
    overrides = {"FlakyFailures": "5"}
    with LocalPlatform(FIXTURE, overrides) as platform:
        # Given a flaky step that fails more often than its Retry allows
        # When an execution runs
        result = platform.wait_for_execution(platform.start_execution("FixtureStateMachine", {}), timeout_s=30)

        # Then the execution failed in that state with the handler's error
        assert result.status == "FAILED"
        assert result.error == "FlakyDependencyError"
        assert result.output is None
        assert [(s.name, s.status, s.retries, s.error) for s in result.states] == [
            ("Flaky", "FAILED", 3, "FlakyDependencyError")
        ]


# ------------------------------------------------------------------------------------------- API


@pytest.fixture
def fixture_platform() -> Iterator[LocalPlatform]:
    with LocalPlatform(FIXTURE) as platform:
        yield platform


@pytest.fixture
def api(fixture_platform: LocalPlatform) -> Client:
    return client(fixture_platform)


def test_api_route_with_path_parameter(api: Client) -> None:
    # Given / When a request on a route with a path parameter and a repeated query parameter
    response = api.get("/items/42?tag=a&tag=b", headers={"X-Trace": "t1"})

    # Then the handler's status, headers and body come back
    assert response.status_code == 200
    assert response.headers["X-Item"] == "{'item_id': '42'}"
    event = response.get_json()["event"]
    # And the handler received an API Gateway proxy event
    assert event["resource"] == "/items/{item_id}"
    assert event["path"] == "/items/42"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"item_id": "42"}
    assert event["queryStringParameters"] == {"tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"]}
    assert event["headers"]["X-Trace"] == "t1"
    assert event["multiValueHeaders"]["X-Trace"] == ["t1"]
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    assert event["stageVariables"] is None
    context = event["requestContext"]
    assert context["stage"] == "test"
    assert context["resourcePath"] == "/items/{item_id}"
    assert context["path"] == "/test/items/42"
    assert context["identity"]["sourceIp"]
    assert isinstance(context["requestTimeEpoch"], int)


def test_api_greedy_path_and_binary_body(api: Client) -> None:
    # Given / When a non-UTF-8 body is sent to an ANY {proxy+} route, with the stage prefix
    response = api.put("/test/files/a/b.bin", data=b"\xff\x00\xfe")

    # Then the handler got the whole path and the body base64-encoded
    assert response.status_code == 201
    event = response.get_json()["event"]
    assert event["pathParameters"] == {"proxy": "a/b.bin"}
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\x00\xfe"


def test_api_unknown_route_and_method(api: Client) -> None:
    # Given / When a path without a route, and a route without the method
    missing = api.get("/nothing/here")
    wrong_method = api.delete("/items/42")

    # Then API-style JSON errors come back
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "not_found"
    assert wrong_method.status_code == 405
    assert wrong_method.get_json()["error"]["code"] == "method_not_allowed"


def test_api_crashing_or_malformed_handler_is_a_bad_gateway(api: Client) -> None:
    # Given / When a handler raises, and another returns a malformed proxy response
    crashed = api.post("/boom", json={"a": 1})
    malformed = api.get("/files/malformed")

    # Then both are 502 without any detail of the failure
    for response in (crashed, malformed):
        assert response.status_code == 502
        assert response.get_json() == {
            "error": {"code": "bad_gateway", "message": "Internal server error", "fields": [], "retryable": False}
        }
    assert "PermanentError" not in crashed.get_data(as_text=True)


def test_api_rejects_bodies_over_10_mb(api: Client) -> None:
    # Given / When a body just over API Gateway's limit
    response = api.post("/boom", data=b"x" * (10 * 1024 * 1024 + 1))

    # Then it is refused before any handler runs
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"


def test_api_default_authorizer_aws_iam_needs_a_signature_and_hands_over_the_principal(
    fixture_platform: LocalPlatform,
) -> None:
    # Given an API whose default authorizer is AWS_IAM (/whoami), one route opting out (/status: Authorizer NONE)
    unsigned, operator = client(fixture_platform), operator_client(fixture_platform)

    # When each is called unsigned, then /whoami signed by the local operator (also with the stage prefix)
    refused, opted_out = unsigned.get("/whoami"), unsigned.get("/status")
    signed, staged = operator.get("/whoami?tag=a", headers={"X-Trace": "t1"}), operator.get("/test/whoami")

    # Then the unsigned request is refused before the function runs, the opted-out route answers...
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "MISSING_AUTHENTICATION_TOKEN"
    assert opted_out.status_code == 200
    assert opted_out.get_json()["event"]["requestContext"]["identity"]["userArn"] is None
    # ...and the signed ones reach it with the principal, as API Gateway's AWS_IAM hands it over
    assert (signed.status_code, staged.status_code) == (200, 200)
    event = signed.get_json()["event"]
    principal = fixture_platform.operator
    assert event["requestContext"]["identity"] | {"sourceIp": None, "userAgent": None} == {
        "sourceIp": None,
        "userAgent": None,
        "apiKey": None,
        "apiKeyId": None,
        "accountId": "123456789012",
        "caller": principal.user_id,
        "user": principal.user_id,
        "userArn": principal.arn,
        "accessKey": principal.access_key_id,
        "principalOrgId": None,
        "cognitoIdentityPoolId": None,
        "cognitoIdentityId": None,
        "cognitoAuthenticationType": None,
        "cognitoAuthenticationProvider": None,
    }
    assert event["queryStringParameters"] == {"tag": "a"}
    assert event["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
