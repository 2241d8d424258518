"""`make serve`'s API authentication, as the template declares it and API Gateway enforces it:

- API keys: enforced only when LOCAL_API_KEY is set (like `sam local start-api`, which never enforces them), on the
  routes whose template Auth requires one;
- the operator routes (`Auth.Authorizer: AWS_IAM`): ALWAYS need a SigV4 signature by one of the local stack's
  principals, and the handler acts in the name of the principal's ARN.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from werkzeug.test import Client, TestResponse

from api_clients import client, operator_client, signed_client
from helpers import TEMPLATE_PATH, load_event, load_template
from local_cloud.api_server import API_KEY_ENV, ApiGatewayApp, api_events
from local_cloud.platform import LocalPlatform
from local_cloud.principals import (
    OPERATOR_USER,
    LocalPrincipals,
    Principal,
    read_credentials_file,
    write_credentials_file,
)
from local_cloud.stack import cloudformation_template
from mlops.core.artifacts import ArtifactRef
from mlops.core.clock import utc_now
from mlops.registry.store import ModelRegistry, ModelStatus, ModelVersion

KEY = "local-test-key-0123456789"
# The operator actions: who may delete a customer's data, decide on or roll back a model, start or stop an
# experiment, and read or verify the audit trail.
OPERATOR_ROUTES = {
    ("delete", "/features/{customer_id}"),
    ("post", "/models/{version}/approve"),
    ("post", "/models/{version}/reject"),
    ("post", "/models/{version}/rollback"),
    ("get", "/audit"),
    ("get", "/audit/verify"),
    ("post", "/experiments"),
    ("post", "/experiments/{experiment_id}/stop"),
}
HOST_URL = "http://localhost"  # where werkzeug's test client sends requests (Host: localhost)


def keyed_app(platform: LocalPlatform, key: str | None = KEY, **options: Any) -> ApiGatewayApp:
    return ApiGatewayApp(platform.stack, platform.runtime, api_key=key, principals=platform.principals, **options)


def experiment_body() -> dict[str, Any]:
    body = json.loads(load_event("experiment_create_valid")["body"])
    return {**body, "experiment_id": f"auth-{uuid.uuid4().hex[:12]}"}


def concrete(resource: str) -> str:
    return resource.replace("{", "").replace("}", "")


@pytest.fixture
def events_seen(platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The proxy events the API gateway hands to the functions (the handler runs only if one is here)."""
    seen: list[dict[str, Any]] = []
    invoke = platform.runtime.invoke

    def spy(function: str, event: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(event, dict) and "httpMethod" in event:
            seen.append(event)
        return invoke(function, event, *args, **kwargs)

    monkeypatch.setattr(platform.runtime, "invoke", spy)
    return seen


def pending_version(platform: LocalPlatform) -> str:
    """A version registered for approval in the stack's registry (no pilot: only the decision is under test)."""
    version = f"v-auth-{uuid.uuid4().hex[:8]}"
    ref = ArtifactRef(key=f"models/churn/{version}/model.onnx", sha256="0" * 64, size_bytes=1)
    registry = ModelRegistry(platform.stack.physical_id("ModelRegistryTable"), platform.client("dynamodb"))
    registry.register(
        ModelVersion(
            model_name="churn",
            version=version,
            status=ModelStatus.PENDING_APPROVAL,
            created_at=utc_now(),
            algorithm="gradient_boosting",
            threshold=0.5,
            metrics={"roc_auc": 0.9},
            artifacts={"onnx": ref},
            dataset_sha256="1" * 64,
        )
    )
    return version


def audit_actors(operator: Client, entity: str) -> list[tuple[str, str]]:
    page = operator.get("/audit", query_string={"entity": entity}).get_json()
    return [(r["event"]["event_type"], r["event"]["actor"]) for r in page["records"]]


def assert_refused(response: TestResponse, code: str) -> dict[str, Any]:
    """API Gateway's 403 gateway response, in the API's error shape (template GatewayResponses)."""
    assert response.status_code == 403, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error == {"code": code, "message": error["message"], "fields": [], "retryable": False}
    return error


# ------------------------------------------------------------------------------------------- the template
def test_template_requires_a_signature_on_the_operator_routes_and_a_key_on_all_others_but_health() -> None:
    # Given the template's API events / When their authorizer and key requirement are read (API Auth, overridden
    # by the event)
    events = api_events(load_template())
    signed = {(e.method, e.path) for e in events if e.authorizer == "AWS_IAM"}
    keyed = {(e.method, e.path) for e in events if e.api_key_required}

    # Then exactly the operator routes are AWS_IAM (and need no key), and every other route but GET /health a key
    assert signed == OPERATOR_ROUTES
    assert {(e.method, e.path) for e in events} - signed - keyed == {("get", "/health")}
    assert not signed & keyed
    assert {e.authorizer for e in events} == {"AWS_IAM", None}


def test_the_expanded_cloudformation_secures_the_operator_routes_with_sigv4_and_the_others_with_the_key() -> None:
    # Given the CloudFormation `sam deploy` creates from the template (the API's OpenAPI body)
    body = cloudformation_template(TEMPLATE_PATH)["Resources"]["PlatformApi"]["Properties"]["Body"]

    # When each operation's security is read
    security = {
        (method, path): [name for requirement in operation.get("security", []) for name in requirement]
        for path, item in body["paths"].items()
        for method, operation in item.items()
    }

    # Then AWS_IAM (API Gateway's awsSigv4) secures exactly the operator routes, api_key all others but /health
    assert body["securityDefinitions"]["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert {route for route, names in security.items() if names == ["AWS_IAM"]} == OPERATOR_ROUTES
    assert {route for route, names in security.items() if names == ["api_key"]} == set(security) - OPERATOR_ROUTES - {
        ("get", "/health")
    }
    assert security[("get", "/health")] == []
    # And API Gateway invokes the operator routes' functions with its own permission (InvokeRole NONE), never
    # with the caller's credentials
    for method, path in OPERATOR_ROUTES:
        assert "credentials" not in body["paths"][path][method]["x-amazon-apigateway-integration"]


def test_the_local_operator_is_an_iam_user_of_the_stack(platform: LocalPlatform) -> None:
    # Given the platform started / When its IAM is read (moto)
    iam = platform.client("iam")
    user = iam.get_user(UserName=OPERATOR_USER)["User"]
    keys = iam.list_access_keys(UserName=OPERATOR_USER)["AccessKeyMetadata"]
    policy = iam.get_user_policy(UserName=OPERATOR_USER, PolicyName="invoke-operator-routes")["PolicyDocument"]

    # Then the operator is that user, its access key that user's, allowed to invoke the stack's API
    operator = platform.operator
    assert (operator.arn, operator.user_id) == (user["Arn"], user["UserId"])
    assert [k["AccessKeyId"] for k in keys] == [operator.access_key_id]
    api_id = platform.stack.physical_id("PlatformApi")
    assert policy["Statement"][0]["Action"] == "execute-api:Invoke"
    assert policy["Statement"][0]["Resource"] == [f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/*"]
    # And the secret is never in its repr (nor so in logs)
    assert operator.secret_access_key not in repr(operator)


# ------------------------------------------------------------------------------------------- API keys
def test_without_local_api_key_no_key_is_enforced_but_signatures_are(
    platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given make serve's app with LOCAL_API_KEY unset (like sam local start-api)
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    app = ApiGatewayApp.from_environment(platform.stack, platform.runtime, platform.principals)

    # When a keyed route, then an operator route, is called without a key nor a signature
    keyed = Client(app).get("/models")
    operator_route = Client(app).get("/audit/verify")

    # Then the keyed route answers, the operator route is refused; startup says both
    assert keyed.status_code == 200, keyed.get_data(as_text=True)
    assert_refused(operator_route, "MISSING_AUTHENTICATION_TOKEN")
    assert app.keyed_routes == []
    assert {(r.methods[0].lower(), r.resource) for r in app.iam_routes} == OPERATOR_ROUTES
    summary = app.api_key_summary()
    assert summary.startswith("API keys: not enforced (set LOCAL_API_KEY")
    assert "Operator routes need a SigV4 signature (AWS_IAM, always enforced; service execute-api" in summary
    assert 'curl --aws-sigv4 "aws:amz:us-east-1:execute-api" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"' in (
        summary
    )


def test_local_api_key_is_read_from_the_environment(platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given LOCAL_API_KEY set
    monkeypatch.setenv(API_KEY_ENV, KEY)

    # When make serve's app is made
    app = ApiGatewayApp.from_environment(platform.stack, platform.runtime, platform.principals)

    # Then it enforces that key on every route but /health and the operator routes, and says so at startup
    keyed = len(app.routes) - 1 - len(OPERATOR_ROUTES)
    assert app.api_key == KEY
    assert len(app.keyed_routes) == keyed
    assert app.api_key_summary().startswith(f"API keys: enforced on {keyed} routes (LOCAL_API_KEY")
    assert "open: GET /health\n" in app.api_key_summary()


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"x-api-key": KEY[:-1]}, {"x-api-key": ""}])
def test_every_keyed_route_refuses_a_missing_or_wrong_key(platform: LocalPlatform, headers: dict[str, str]) -> None:
    # Given a key enforced
    app = keyed_app(platform)
    api = Client(app)
    invocations = len(platform.runtime.invocations)

    for route in app.keyed_routes:
        # When the route is called without the right key
        response = api.open(concrete(route.resource), method=route.methods[0], headers=headers)

        # Then API Gateway's 403 answers, in the API's error shape, and no function ran
        assert response.status_code == 403, route.resource
        assert response.get_json() == {
            "error": {"code": "INVALID_API_KEY", "message": "Forbidden", "fields": [], "retryable": False}
        }
    assert len(platform.runtime.invocations) == invocations


def test_health_stays_open_with_a_key_enforced(platform: LocalPlatform) -> None:
    # Given a key enforced / When GET /health is called without one
    response = Client(keyed_app(platform)).get("/health")

    # Then it answers (load balancers and uptime checks have no key)
    assert response.status_code == 200, response.get_data(as_text=True)


def test_the_accepted_key_is_the_callers_identity(platform: LocalPlatform, events_seen: list[dict[str, Any]]) -> None:
    # Given a key enforced / When a keyed route is called with the right key
    response = Client(keyed_app(platform)).get("/models", headers={"x-api-key": KEY})

    # Then the function is told the key's id (as API Gateway's identity.apiKeyId, what audit records use), and no
    # IAM principal
    assert response.status_code == 200, response.get_data(as_text=True)
    identity = events_seen[-1]["requestContext"]["identity"]
    assert identity["apiKey"] == KEY
    assert len(identity["apiKeyId"]) == 10
    assert identity["apiKeyId"].isalnum()
    assert identity["apiKeyId"] not in KEY
    assert identity["userArn"] is identity["accessKey"] is identity["caller"] is None


def test_without_a_key_enforced_no_key_identity_is_invented(
    platform: LocalPlatform, events_seen: list[dict[str, Any]]
) -> None:
    # Given no key enforced (sam local start-api's behaviour) / When a keyed route is sent some x-api-key header
    response = Client(keyed_app(platform, key=None)).get("/models", headers={"x-api-key": "anything"})

    # Then the function sees no key identity (the caller is anonymous to the audit trail)
    assert response.status_code == 200
    identity = events_seen[-1]["requestContext"]["identity"]
    assert (identity["apiKey"], identity["apiKeyId"], identity["userArn"]) == (None, None, None)


# ------------------------------------------------------------------------------------------- SigV4
@pytest.mark.parametrize("key", [None, KEY], ids=["no-key-enforced", "key-enforced"])
def test_every_operator_route_refuses_an_unsigned_request_and_runs_no_handler(
    platform: LocalPlatform, events_seen: list[dict[str, Any]], key: str | None
) -> None:
    # Given the local API, with or without LOCAL_API_KEY (signatures are enforced either way)
    app = keyed_app(platform, key=key)

    for route in app.iam_routes:
        # When an operator route is called unsigned, even with the API key
        response = Client(app).open(concrete(route.resource), method=route.methods[0], headers={"x-api-key": KEY})

        # Then API Gateway's MISSING_AUTHENTICATION_TOKEN answers, in the API's error shape
        assert_refused(response, "MISSING_AUTHENTICATION_TOKEN")
    # And no handler ran
    assert events_seen == []


def sign(
    principal: Principal,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    region: str = "us-east-1",
    service: str = "execute-api",
    signed: dict[str, str] | None = None,
) -> dict[str, str]:
    """The headers of this request signed by botocore's signer (any service or region, other headers signed too),
    for the refusals; the tests' clients sign with `Principal.sign` instead."""
    headers = {"Content-Type": "application/json", **(signed or {})}
    request = AWSRequest(method=method, url=HOST_URL + path, data=body, headers=headers)
    credentials = Credentials(principal.access_key_id, principal.secret_access_key, principal.session_token)
    SigV4Auth(credentials, service, region).add_auth(request)
    return dict(request.headers.items())


BODY = b'{"reason": "reviewed"}'
APPROVE = "/models/v-none/approve"


def bad_signatures(operator: Principal) -> dict[str, tuple[dict[str, Any], str]]:
    """(request, expected code) per way of getting a signature wrong: each request is sent to POST APPROVE."""
    good = sign(operator, "POST", APPROVE, BODY)
    a_minute_earlier = datetime.strptime(good["X-Amz-Date"], "%Y%m%dT%H%M%SZ") - timedelta(minutes=1)
    body_hash = {"X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()}
    stranger = Principal("stranger", "arn:aws:iam::123456789012:user/x", "AIDAX", "123456789012", "AKIASTRANGER", "s")
    auth = good["Authorization"]
    return {
        "wrong_secret": (
            {"headers": sign(dataclasses.replace(operator, secret_access_key="wrong"), "POST", APPROVE, BODY)},
            "INVALID_SIGNATURE",
        ),
        "tampered_body": ({"headers": good, "data": b'{"reason": "forged"}'}, "INVALID_SIGNATURE"),
        "other_path": (
            {"headers": sign(operator, "POST", "/models/v-none/reject", BODY)},
            "INVALID_SIGNATURE",
        ),
        "other_method": ({"headers": sign(operator, "PUT", APPROVE, BODY)}, "INVALID_SIGNATURE"),
        "added_query": ({"headers": good, "query_string": "reason=forged"}, "INVALID_SIGNATURE"),
        "date_changed_after_signing": (
            {"headers": good | {"X-Amz-Date": a_minute_earlier.strftime("%Y%m%dT%H%M%SZ")}},
            "INVALID_SIGNATURE",
        ),
        # botocore hashes the payload as a signed X-Amz-Content-SHA256 says: the body must be the one it hashes
        "tampered_body_under_a_signed_payload_hash": (
            {"headers": sign(operator, "POST", APPROVE, BODY, signed=body_hash), "data": b'{"reason": "forged"}'},
            "INVALID_SIGNATURE",
        ),
        "other_region": ({"headers": sign(operator, "POST", APPROVE, BODY, region="eu-west-1")}, "INVALID_SIGNATURE"),
        "other_service": ({"headers": sign(operator, "POST", APPROVE, BODY, service="s3")}, "INVALID_SIGNATURE"),
        "not_sigv4": (
            {"headers": good | {"Authorization": "Bearer " + operator.secret_access_key}},
            "INVALID_SIGNATURE",
        ),
        "signature_truncated": ({"headers": good | {"Authorization": auth[:-1]}}, "INVALID_SIGNATURE"),
        "no_date": ({"headers": {k: v for k, v in good.items() if k != "X-Amz-Date"}}, "INVALID_SIGNATURE"),
        "unknown_access_key": ({"headers": sign(stranger, "POST", APPROVE, BODY)}, "ACCESS_DENIED"),
        "the_hosts_credentials": (
            {
                "headers": sign(
                    dataclasses.replace(stranger, access_key_id="testing", secret_access_key="testing"),
                    "POST",
                    APPROVE,
                    BODY,
                )
            },
            "ACCESS_DENIED",
        ),
        "a_session_token_the_key_has_not": ({"headers": good | {"X-Amz-Security-Token": "forged"}}, "ACCESS_DENIED"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong_secret",
        "tampered_body",
        "other_path",
        "other_method",
        "added_query",
        "date_changed_after_signing",
        "tampered_body_under_a_signed_payload_hash",
        "other_region",
        "other_service",
        "not_sigv4",
        "signature_truncated",
        "no_date",
        "unknown_access_key",
        "the_hosts_credentials",
        "a_session_token_the_key_has_not",
    ],
)
def test_a_bad_signature_is_refused_and_runs_no_handler(
    platform: LocalPlatform, events_seen: list[dict[str, Any]], case: str
) -> None:
    # Given a request to an operator route whose signature is wrong in one way
    request, code = bad_signatures(platform.operator)[case]
    request = {"data": BODY, **request}

    # When it is sent
    response = Client(platform.api_app()).post(APPROVE, **request)

    # Then API Gateway's refusal answers with the gateway response type of that failure, and no handler ran
    assert_refused(response, code)
    assert events_seen == []


@pytest.mark.parametrize(
    ("clock_offset", "message"),
    [(timedelta(minutes=6), "Signature expired"), (-timedelta(minutes=6), "Signature not yet current")],
    ids=["stale", "from-the-future"],
)
def test_a_signature_dated_more_than_5_minutes_from_the_gateways_clock_is_refused(
    platform: LocalPlatform, events_seen: list[dict[str, Any]], clock_offset: timedelta, message: str
) -> None:
    # Given a gateway whose clock is 6 minutes after (or before) the signer's
    app = keyed_app(platform, key=None, clock=lambda: datetime.now(UTC) + clock_offset)

    # When a request signed now is sent
    response = operator_client(platform, app).get("/audit/verify")

    # Then it is refused as an expired (or not yet valid) signature, and no handler ran
    assert assert_refused(response, "INVALID_SIGNATURE")["message"].startswith(message)
    assert events_seen == []
    # And within the 5 minutes it is accepted
    app.clock = lambda: datetime.now(UTC) + clock_offset / 2
    assert operator_client(platform, app).get("/audit/verify").status_code == 200


def test_a_valid_signature_runs_the_handler_with_the_principal_in_the_identity(
    platform: LocalPlatform, events_seen: list[dict[str, Any]]
) -> None:
    # Given the local operator's signing client
    operator = platform.operator

    # When it calls an operator route
    response = operator_client(platform).get("/audit/verify")

    # Then the handler ran, and was given the principal as API Gateway gives it for AWS_IAM
    assert response.status_code == 200, response.get_data(as_text=True)
    identity = events_seen[-1]["requestContext"]["identity"]
    assert identity["userArn"] == operator.arn == f"arn:aws:iam::123456789012:user/{OPERATOR_USER}"
    assert identity["user"] == identity["caller"] == operator.user_id
    assert identity["accessKey"] == operator.access_key_id
    assert identity["accountId"] == "123456789012"
    assert identity["apiKey"] is identity["apiKeyId"] is None
    assert operator.secret_access_key not in json.dumps(events_seen[-1])


def test_the_operators_approval_is_recorded_in_its_name(platform: LocalPlatform) -> None:
    # Given a model version waiting for approval
    version = pending_version(platform)
    operator = operator_client(platform)

    # When the operator approves it, signed
    approved = operator.post(f"/models/{version}/approve", json={"reason": "reviewed the model card"})

    # Then the status history and the audit trail name the operator's ARN as who approved it
    assert approved.status_code == 200, approved.get_data(as_text=True)
    change = approved.get_json()["status_history"][-1]
    assert (change["status"], change["by"]) == ("Approved", platform.operator.arn)
    assert audit_actors(operator, f"model:churn/{version}") == [("model_approved", platform.operator.arn)]


def test_the_operators_experiment_is_recorded_in_its_name(platform: LocalPlatform) -> None:
    # Given an experiment to run
    body = experiment_body()
    operator = operator_client(platform)

    # When the operator creates then stops it, signed
    created = operator.post("/experiments", json=body)
    stopped = operator.post(f"/experiments/{body['experiment_id']}/stop", json={"reason": "enough data"})

    # Then both are audited with the operator's ARN as the actor
    assert created.status_code == 201, created.get_data(as_text=True)
    assert stopped.status_code == 200, stopped.get_data(as_text=True)
    assert audit_actors(operator, f"experiment:{body['experiment_id']}") == [
        ("experiment_created", platform.operator.arn),
        ("experiment_stopped", platform.operator.arn),
    ]


def test_attack_scoring_client_cannot_approve_a_model(
    platform: LocalPlatform, events_seen: list[dict[str, Any]]
) -> None:
    # Given a model version waiting for approval, and a scoring client that holds the valid API key (and perhaps
    # AWS credentials of its own, not the stack's)
    version = pending_version(platform)
    app = keyed_app(platform)
    scoring = client(platform, app)
    assert scoring.get("/models", headers={"x-api-key": KEY}).status_code == 200
    outsider = Principal("scoring", "arn:aws:iam::123456789012:user/scoring", "AIDAS", "123456789012", "AKIAS", "s")

    # When it tries to approve the version: with its key, with the key as the Authorization, and signed with
    # credentials the stack does not know
    attempts = {
        "key": scoring.post(f"/models/{version}/approve", headers={"x-api-key": KEY}),
        "key_as_authorization": scoring.post(
            f"/models/{version}/approve", headers={"x-api-key": KEY, "Authorization": KEY}
        ),
        "own_credentials": signed_client(app, outsider, "us-east-1").post(
            f"/models/{version}/approve", headers={"x-api-key": KEY}
        ),
    }

    # Then each is refused before any handler runs, and the version still waits for an operator
    assert_refused(attempts["key"], "MISSING_AUTHENTICATION_TOKEN")
    assert_refused(attempts["key_as_authorization"], "INVALID_SIGNATURE")
    assert_refused(attempts["own_credentials"], "ACCESS_DENIED")
    assert [e["path"] for e in events_seen] == ["/models"]
    registry = ModelRegistry(platform.stack.physical_id("ModelRegistryTable"), platform.client("dynamodb"))
    assert registry.get("churn", version).status is ModelStatus.PENDING_APPROVAL


# ------------------------------------------------------------------------------------------- session tokens
@pytest.fixture
def session(platform: LocalPlatform) -> Principal:
    """Temporary credentials of the operator (STS GetSessionToken): an access key with a session token."""
    return platform.principals.session(platform.operator)


def test_temporary_credentials_sign_with_their_session_token(
    platform: LocalPlatform, session: Principal, events_seen: list[dict[str, Any]]
) -> None:
    # Given the operator's temporary credentials / When a request is signed with them (and their token)
    response = signed_client(platform.api_app(), session, "us-east-1").get("/audit/verify")

    # Then it is accepted as the operator, under the temporary access key
    assert response.status_code == 200, response.get_data(as_text=True)
    identity = events_seen[-1]["requestContext"]["identity"]
    assert (identity["userArn"], identity["accessKey"]) == (platform.operator.arn, session.access_key_id)


@pytest.mark.parametrize("token", [None, "forged"], ids=["without-token", "wrong-token"])
def test_temporary_credentials_without_their_session_token_are_refused(
    platform: LocalPlatform, session: Principal, token: str | None
) -> None:
    # Given a request signed with temporary credentials, then sent without their token or with another one
    headers = sign(dataclasses.replace(session, session_token=token), "GET", "/audit/verify")
    if token is None:
        headers.pop("X-Amz-Security-Token", None)

    # When it is sent / Then the token is refused as invalid
    assert_refused(Client(platform.api_app()).get("/audit/verify", headers=headers), "ACCESS_DENIED")


def test_expired_temporary_credentials_are_refused(platform: LocalPlatform, session: Principal) -> None:
    # Given temporary credentials that expired a second ago (the gateway knowing them)
    expired = dataclasses.replace(session, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    app = ApiGatewayApp(
        platform.stack, platform.runtime, principals=LocalPrincipals(platform.operator, "us-east-1", [expired])
    )

    # When a request freshly signed with them is sent / Then it is refused as an expired token
    response = signed_client(app, expired, "us-east-1").get("/audit/verify")
    assert_refused(response, "EXPIRED_TOKEN")


# ------------------------------------------------------------------------------------------- make serve
def test_the_operator_credentials_file_is_private_and_signs_requests(platform: LocalPlatform, tmp_path: Path) -> None:
    # Given a credentials file left readable by a previous run
    path = tmp_path / "serve" / "operator-credentials.env"
    path.parent.mkdir()
    path.write_text("old")
    path.chmod(0o644)

    # When make serve writes the operator's credentials there
    write_credentials_file(platform.operator, path, "us-east-1")

    # Then only its owner may read it, and its credentials sign operator requests
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    principal, region = read_credentials_file(path)
    assert (principal.access_key_id, principal.arn, region) == (
        platform.operator.access_key_id,
        platform.operator.arn,
        "us-east-1",
    )
    assert signed_client(platform.api_app(), principal, region).get("/audit/verify").status_code == 200
    # And startup names the file, never its secret
    summary = platform.api_app().api_key_summary(credentials_file=path)
    assert f"the local operator's credentials ({platform.operator.arn}): {path}" in summary
    assert platform.operator.secret_access_key not in summary


# ------------------------------------------------------------------------------------------- routing
def test_a_method_a_route_does_not_have_is_405_with_allow(platform: LocalPlatform) -> None:
    # Given the local API (fuzzing found its 405 without the Allow header RFC 9110 requires)
    # When a route is called with a method it does not have
    response = Client(keyed_app(platform, key=None)).open("/features/C00011", method="TRACE")

    # Then 405 lists the route's methods, in the error shape
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "DELETE"}
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_a_literal_resource_is_not_served_by_a_parameter_route(platform: LocalPlatform) -> None:
    # Given /features/batch (POST) beside /features/{customer_id} (GET, DELETE)
    api = Client(keyed_app(platform, key=None))

    # When /features/batch is called with a method only the parameter route has
    response = api.get("/features/batch")

    # Then API Gateway's choice holds: the literal resource, which has no GET (fuzzing found Allow listing all three)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
