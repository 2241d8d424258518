"""mlops.api.rest: every request body is read as JSON, and one that cannot be is refused in the error shape."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from helpers import FakeLambdaContext
from mlops.api.contracts import PredictRequest
from mlops.api.rest import create_rest_app, operator_identity, resolve_json_api

app = create_rest_app()


@app.post("/echo")
def echo(request: PredictRequest) -> PredictRequest:
    return request


def post(body: str, *, base64_encoded: bool = False) -> tuple[int, dict[str, Any]]:
    event = {
        "resource": "/echo",
        "path": "/echo",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/octet-stream"},
        "multiValueHeaders": {"Content-Type": ["application/octet-stream"]},
        "requestContext": {"resourcePath": "/echo", "httpMethod": "POST", "stage": "v1", "identity": {}},
        "body": body,
        "isBase64Encoded": base64_encoded,
    }
    response = resolve_json_api(app, event, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00\x01", b'{"customer_id": "C\xe9"}', b"\x80"])
def test_a_body_that_is_not_utf8_is_invalid_json_not_a_server_error(raw: bytes) -> None:
    # Given a body API Gateway base64-encoded because it is not UTF-8 text (fuzzing found a 500 here)
    # When it is resolved
    status, body = post(base64.b64encode(raw).decode(), base64_encoded=True)

    # Then it is refused as invalid JSON, naming the body
    assert status == 400
    assert body["error"]["code"] == "invalid_json"
    assert body["error"]["fields"] == [{"field": "body", "message": "JSON decode error"}]


def test_a_base64_encoded_utf8_json_body_is_read() -> None:
    # Given a JSON body that the client sent base64-encoded (binary media type) but is UTF-8
    payload = json.dumps({"customer_id": "C00011", "features": {"state": "KS"}}).encode()

    # When it is resolved
    status, body = post(base64.b64encode(payload).decode(), base64_encoded=True)

    # Then it is read as JSON
    assert status == 200, body
    assert body["customer_id"] == "C00011"


@app.post("/operator-action")
def operator_action() -> dict[str, str]:
    return {"actor": operator_identity(app)}


def post_operator_action(identity: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    event = {
        "resource": "/operator-action",
        "path": "/operator-action",
        "httpMethod": "POST",
        "headers": {},
        "multiValueHeaders": {},
        "requestContext": {
            "resourcePath": "/operator-action",
            "httpMethod": "POST",
            "stage": "v1",
            "identity": identity,
        },
        "body": None,
        "isBase64Encoded": False,
    }
    response = resolve_json_api(app, event, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


def test_an_operator_action_is_done_in_the_name_of_the_iam_principal_that_signed_it() -> None:
    # Given a request API Gateway authorised with AWS_IAM: the identity names the signing principal
    arn = "arn:aws:iam::123456789012:user/local-operator"
    identity = {"userArn": arn, "user": "AIDAEXAMPLE", "caller": "AIDAEXAMPLE", "accessKey": "AKIAEXAMPLE"}

    # When the operator action runs
    status, body = post_operator_action(identity)

    # Then its actor is the principal's ARN
    assert status == 200, body
    assert body == {"actor": arn}


@pytest.mark.parametrize(
    "identity",
    [{}, {"sourceIp": "203.0.113.10"}, {"apiKeyId": "abc123defg", "apiKey": "a-key"}, {"userArn": "", "caller": "x"}],
    ids=["empty", "no-principal", "api-key-only", "empty-arn"],
)
def test_an_operator_action_without_an_iam_principal_is_forbidden(identity: dict[str, Any]) -> None:
    # Given a request with no IAM principal (a route left without AWS_IAM, called with or without an API key)
    # When the operator action is asked for
    status, body = post_operator_action(identity)

    # Then it is refused with 403 in the error shape, naming the Authorization the request lacks
    assert status == 403
    assert body["error"]["code"] == "forbidden"
    assert body["error"]["fields"][0]["field"] == "Authorization"
    assert body["error"]["retryable"] is False
