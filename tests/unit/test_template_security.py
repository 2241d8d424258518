"""Security properties of what `sam deploy` creates from template.yaml, read from the expanded CloudFormation
(SAM policy templates, the usage plan, the scoring alias and its deployment group only exist there).

Least privilege here means: every IAM statement names this stack's own resources (no `*` resource, no `service:*`
action), managed policies are the three SAM attaches for logging, tracing and CodeDeploy, and nothing else.
`make security` runs checkov over the same expanded template.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest

from helpers import PROJECT_ROOT, load_template
from local_cloud.api_server import api_events
from local_cloud.stack import _references, cloudformation_template

EXPECTED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",  # its own log group
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",  # Tracing: Active (X-Ray put APIs have no resource)
    "arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda",  # the scoring function's canary releases
}
# A Distributed Map starts child executions of its own state machine, which cannot Ref itself (a circular
# dependency): SAM scopes these statements by the machine's name prefix instead.
_STATES_ARN = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}"
SELF_REFERENCING_STATEMENTS = {
    ("BatchScoringStateMachineRole", f"{_STATES_ARN}:stateMachine:BatchScoringStateMachine-*"),
    ("BatchScoringStateMachineRole", f"{_STATES_ARN}:execution:BatchScoringStateMachine-*/*"),
}


@cache
def _expanded(overrides: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    return cloudformation_template(PROJECT_ROOT / "template.yaml", dict(overrides))


def _resources(of_type: str, template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    resources = (template or _expanded())["Resources"]
    return {k: r.get("Properties", {}) for k, r in resources.items() if r["Type"] == of_type}


def _statements() -> Iterator[tuple[str, dict[str, Any]]]:
    for role, properties in _resources("AWS::IAM::Role").items():
        for policy in properties.get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                yield role, statement


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_every_iam_statement_names_resources_of_this_stack() -> None:
    # Given the roles of the expanded template
    stack_resources = set(_expanded()["Resources"])
    statements = list(_statements())
    assert len(statements) > 50  # every function and state machine has its own

    # When each Allow statement's resources are read
    unscoped = []
    for role, statement in statements:
        assert statement["Effect"] == "Allow", role
        for resource in _as_list(statement["Resource"]):
            sub = resource.get("Fn::Sub") if isinstance(resource, dict) else None
            if isinstance(sub, str) and (role, sub) in SELF_REFERENCING_STATEMENTS:
                continue
            if resource == "*" or not _references(resource) & stack_resources:
                unscoped.append((role, statement["Action"], json.dumps(resource)))

    # Then none is "*" or outside the stack
    assert unscoped == []


def test_no_statement_grants_a_whole_service() -> None:
    wildcards = [
        (role, action)
        for role, statement in _statements()
        for action in _as_list(statement["Action"])
        if action == "*" or action.endswith(":*")
    ]
    assert wildcards == []


def test_managed_policies_are_only_logging_tracing_and_codedeploy() -> None:
    attached = {arn for role in _resources("AWS::IAM::Role").values() for arn in role.get("ManagedPolicyArns", [])}
    assert attached == EXPECTED_MANAGED_POLICIES


def test_every_bucket_is_encrypted_versioned_and_not_public() -> None:
    buckets = _resources("AWS::S3::Bucket")
    assert len(buckets) == 5
    for name, bucket in buckets.items():
        assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"], name
        assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}, name
        assert bucket["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, name


def test_every_table_has_point_in_time_recovery_and_encryption() -> None:
    tables = _resources("AWS::DynamoDB::Table")
    assert {"ModelRegistryTable", "AuditTable"} <= set(tables)
    for name, table in tables.items():
        assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, name
        assert table["SSESpecification"]["SSEEnabled"] is True, name


OPERATOR_ROUTES = {
    ("/models/{version}/approve", "post"),
    ("/models/{version}/reject", "post"),
    ("/models/{version}/rollback", "post"),
    ("/experiments", "post"),
    ("/experiments/{experiment_id}/stop", "post"),
    ("/features/{customer_id}", "delete"),
    ("/audit", "get"),
    ("/audit/verify", "get"),
}


def test_operator_routes_need_aws_iam_and_client_routes_an_api_key() -> None:
    # Given the API's OpenAPI body as SAM generates it
    (api,) = _resources("AWS::ApiGateway::RestApi").values()
    body = api["Body"]
    assert body["securityDefinitions"]["api_key"] == {"type": "apiKey", "name": "x-api-key", "in": "header"}
    assert body["securityDefinitions"]["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"

    # When each operation's security is read
    operations = {(path, method): op for path, ops in body["paths"].items() for method, op in ops.items()}
    security = {route: op.get("security") for route, op in operations.items()}

    # Then the operator actions take only a SigV4 signature (no key), API Gateway invoking the function under its
    # own permission (not the caller's credentials), every other route but GET /health takes only a key
    assert len(security) == len(api_events(load_template()))
    assert {route for route, required in security.items() if required == [{"AWS_IAM": []}]} == OPERATOR_ROUTES
    assert all("credentials" not in operations[route]["x-amazon-apigateway-integration"] for route in OPERATOR_ROUTES)
    keyed = {route for route, required in security.items() if required == [{"api_key": []}]}
    assert keyed == set(security) - OPERATOR_ROUTES - {("/health", "get")}
    assert security[("/health", "get")] in (None, [])


def test_each_client_has_its_own_key_and_throttled_usage_plan() -> None:
    # Given the usage plans and their keys
    plans = _resources("AWS::ApiGateway::UsagePlan")
    plan_keys = _resources("AWS::ApiGateway::UsagePlanKey")
    # Then each client's plan throttles and caps its own key, from its own parameters, on the API's stage
    assert set(plans) == {"RetentionAppUsagePlan", "SupportDeskUsagePlan"}
    for name, plan in plans.items():
        client = name.removesuffix("UsagePlan")
        assert plan["Throttle"] == {
            "RateLimit": {"Ref": f"{client}RateLimit"},
            "BurstLimit": {"Ref": f"{client}BurstLimit"},
        }
        assert plan["Quota"] == {"Limit": {"Ref": f"{client}DailyQuota"}, "Period": "DAY"}
        assert plan["ApiStages"] == [{"ApiId": {"Ref": "PlatformApi"}, "Stage": {"Ref": "PlatformApiv1Stage"}}]
    assert {(k["KeyId"]["Ref"], k["UsagePlanId"]["Ref"]) for k in plan_keys.values()} == {
        ("RetentionAppApiKey", "RetentionAppUsagePlan"),
        ("SupportDeskApiKey", "SupportDeskUsagePlan"),
    }
    assert {"RetentionAppApiKeyId", "SupportDeskApiKeyId"} <= set(_expanded()["Outputs"])


_AUDIT_TABLE_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}


def _audit_table_actions(role: str) -> set[str]:
    """The actions a role's statements allow on the audit table (or its indexes)."""
    actions: set[str] = set()
    for name, statement in _statements():
        if name == role and any("AuditTable" in _references(r) for r in _as_list(statement["Resource"])):
            actions |= set(_as_list(statement["Action"]))
    return actions


def test_attack_only_the_audit_writer_role_can_write_the_audit_table() -> None:
    # Given every role of the expanded template (each function's and each state machine's)
    roles = _resources("AWS::IAM::Role")
    # When the actions each one may take on the audit table are read
    writers = {role for role in roles if _audit_table_actions(role) & _AUDIT_TABLE_WRITES}
    # Then the audit writer's role is the only one that may write it, and it may not delete
    assert writers == {"AuditWriterFunctionRole"}
    assert not _audit_table_actions("AuditWriterFunctionRole") & {"dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
    # And every other role may at most read it: a scoring role that tries to write is denied by its policy
    for role in roles:
        assert (
            not _audit_table_actions(role)
            - {
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:BatchGetItem",
                "dynamodb:Scan",
                "dynamodb:DescribeTable",
                "dynamodb:ConditionCheckItem",
                "dynamodb:PartiQLSelect",
            }
            - (_AUDIT_TABLE_WRITES if role == "AuditWriterFunctionRole" else set())
        ), role
    assert _audit_table_actions("ScoringFunctionRole") == set()


def test_every_function_that_audits_may_only_send_to_the_audit_queue() -> None:
    # Given the roles that may send to the audit queue
    senders = {
        role
        for role, statement in _statements()
        if any(a.startswith("sqs:SendMessage") for a in _as_list(statement["Action"]))
        and any("AuditQueue" in _references(r) for r in _as_list(statement["Resource"]))
    }
    # Then the request paths and the steps that audit are among them, the writer is not (it only drains)
    assert {"ScoringFunctionRole", "ExplainFunctionRole", "ModelsFunctionRole", "AuditDigestFunctionRole"} <= senders
    assert "AuditWriterFunctionRole" not in senders
    (mapping,) = _resources("AWS::Lambda::EventSourceMapping").values()
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["FunctionName"] == {"Ref": "AuditWriterFunction"}
    queue = _resources("AWS::SQS::Queue")["AuditQueue"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["AuditDeadLetterQueue", "Arn"]}
    alarm = _resources("AWS::CloudWatch::Alarm")["AuditDeadLetterAlarm"]
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["AuditDeadLetterQueue", "QueueName"]}}
    ]


def test_the_digest_bucket_locks_every_digest_in_compliance_mode() -> None:
    bucket = _resources("AWS::S3::Bucket")["AuditBucket"]
    assert bucket["ObjectLockEnabled"] is True
    retention = bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert retention == {"Mode": "COMPLIANCE", "Days": {"Ref": "AuditDigestRetentionDays"}}


def test_gateway_refusals_use_the_api_error_shape() -> None:
    (api,) = _resources("AWS::ApiGateway::RestApi").values()
    responses = api["Body"]["x-amazon-apigateway-gateway-responses"]
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "THROTTLED"} <= set(responses)
    for response in responses.values():
        template = response["responseTemplates"]["application/json"]
        # Gateway variables substituted with placeholder values, the template is the API's ErrorResponse
        rendered = template.replace("$context.error.responseType", "INVALID_API_KEY").replace(
            "$context.error.messageString", '"Forbidden"'
        )
        assert set(json.loads(rendered)["error"]) == {"code", "message", "fields", "retryable"}


def test_scoring_releases_through_a_canary_rolled_back_by_its_latency_and_error_alarms() -> None:
    # Given the expanded template
    template = _expanded()
    (group,) = _resources("AWS::CodeDeploy::DeploymentGroup").values()

    # Then CodeDeploy shifts the live alias gradually and rolls back on either alarm
    assert group["DeploymentConfigName"]["Fn::Sub"][1] == {"ConfigName": "Canary10Percent5Minutes"}
    assert {a["Name"]["Ref"] for a in group["AlarmConfiguration"]["Alarms"]} == {
        "ScoringLatencyP99Alarm",
        "ScoringErrorRateAlarm",
    }
    assert group["AlarmConfiguration"]["Enabled"] is True
    assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]
    alias = template["Resources"]["ScoringFunctionAliaslive"]
    assert alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"] == {
        "Ref": "ScoringFunctionDeploymentGroup"
    }
    # And API Gateway invokes the alias, not $LATEST
    (api,) = _resources("AWS::ApiGateway::RestApi").values()
    predict = api["Body"]["paths"]["/predict"]["post"]["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
    assert "${ScoringFunctionAliaslive}" in predict


@pytest.mark.parametrize(
    ("overrides", "reserved", "provisioned"),
    [((), None, None), ((("ScoringReservedConcurrency", "50"), ("ScoringProvisionedConcurrency", "5")), "50", "5")],
)
def test_reserved_and_provisioned_concurrency_are_parameters(
    overrides: tuple[tuple[str, str], ...], reserved: str | None, provisioned: str | None
) -> None:
    # Given the template expanded with the concurrency parameters (0: none)
    template = _expanded(overrides)
    parameters = dict(overrides)

    # When the conditions are evaluated as CloudFormation would
    def applied(value: Any) -> Any:
        condition, when_true, _ = value["Fn::If"]
        parameter = {"HasScoringReservedConcurrency": "ScoringReservedConcurrency"}.get(
            condition, "ScoringProvisionedConcurrency"
        )
        return when_true if parameters.get(parameter, "0") != "0" else None

    function = template["Resources"]["ScoringFunction"]["Properties"]
    alias = template["Resources"]["ScoringFunctionAliaslive"]["Properties"]

    # Then the function reserves and the alias provisions exactly what was asked
    reserved_value = applied(function["ReservedConcurrentExecutions"])
    provisioned_value = applied(alias["ProvisionedConcurrencyConfig"])
    assert (reserved_value and parameters[reserved_value["Ref"]]) == reserved
    assert (
        provisioned_value and parameters[provisioned_value["ProvisionedConcurrentExecutions"]["Ref"]]
    ) == provisioned


def test_no_secret_is_written_into_the_template() -> None:
    text = (PROJECT_ROOT / "template.yaml").read_text()
    for marker in ("AKIA", "aws_secret_access_key", "BEGIN PRIVATE KEY", "password:"):
        assert marker.lower() not in text.lower(), marker
    assert not any(p.get("NoEcho") for p in _expanded().get("Parameters", {}).values())
