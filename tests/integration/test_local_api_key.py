"""`make serve`'s API keys: enforced only when LOCAL_API_KEY is set, on the routes whose template Auth requires one."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from werkzeug.test import Client

from helpers import load_event, load_template
from local_cloud.api_server import API_KEY_ENV, ApiGatewayApp, api_events
from local_cloud.platform import LocalPlatform

KEY = "local-test-key-0123456789"


def keyed_app(platform: LocalPlatform, key: str | None = KEY) -> ApiGatewayApp:
    return ApiGatewayApp(platform.stack, platform.runtime, api_key=key)


def experiment_body() -> dict[str, Any]:
    body = json.loads(load_event("experiment_create_valid")["body"])
    return {**body, "experiment_id": f"key-{uuid.uuid4().hex[:12]}"}


def test_template_requires_a_key_on_every_route_but_health() -> None:
    # Given the template's API events / When their key requirement is read (API Auth, overridden by the event)
    required = {(e.method, e.path): e.api_key_required for e in api_events(load_template())}

    # Then every route needs one except GET /health
    assert [route for route, needs_key in required.items() if not needs_key] == [("get", "/health")]


def test_without_local_api_key_no_key_is_enforced(platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given make serve's app with LOCAL_API_KEY unset (like sam local start-api)
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    app = ApiGatewayApp.from_environment(platform.stack, platform.runtime)

    # When a keyed route is called without a key
    response = Client(app).get("/models")

    # Then it answers, and startup says keys are not enforced
    assert response.status_code == 200, response.get_data(as_text=True)
    assert app.keyed_routes == []
    assert app.api_key_summary().startswith("API keys: not enforced (set LOCAL_API_KEY")


def test_local_api_key_is_read_from_the_environment(platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given LOCAL_API_KEY set
    monkeypatch.setenv(API_KEY_ENV, KEY)

    # When make serve's app is made
    app = ApiGatewayApp.from_environment(platform.stack, platform.runtime)

    # Then it enforces that key on every route but /health, and says so at startup
    assert app.api_key == KEY
    assert len(app.keyed_routes) == len(app.routes) - 1
    assert app.api_key_summary().startswith(f"API keys: enforced on {len(app.routes) - 1} routes (LOCAL_API_KEY")
    assert "open: GET /health" in app.api_key_summary()


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"x-api-key": KEY[:-1]}, {"x-api-key": ""}])
def test_every_keyed_route_refuses_a_missing_or_wrong_key(platform: LocalPlatform, headers: dict[str, str]) -> None:
    # Given a key enforced
    app = keyed_app(platform)
    client = Client(app)
    invocations = len(platform.runtime.invocations)

    for route in app.keyed_routes:
        # When the route is called without the right key
        path = route.resource.replace("{", "").replace("}", "")
        response = client.open(path, method=route.methods[0], headers=headers)

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


def test_the_accepted_key_is_the_caller_in_the_audit_trail(platform: LocalPlatform) -> None:
    # Given a key enforced and a request that is audited (creating an experiment)
    client = Client(keyed_app(platform))
    body = experiment_body()

    # When it is sent with the right key
    created = client.post("/experiments", json=body, headers={"x-api-key": KEY})
    records = client.get(
        "/audit",
        query_string={"entity": f"experiment:{body['experiment_id']}"},
        headers={"x-api-key": KEY},
    )

    # Then the audit record names the key's id as the actor (as API Gateway's identity.apiKeyId), never the key
    assert created.status_code == 201, created.get_data(as_text=True)
    (record,) = records.get_json()["records"]
    actor = record["event"]["actor"]
    assert actor not in {"anonymous", KEY}
    assert len(actor) == 10
    assert actor.isalnum()


def test_without_a_key_enforced_the_caller_is_anonymous(platform: LocalPlatform) -> None:
    # Given no key enforced (sam local start-api's behaviour)
    client = Client(keyed_app(platform, key=None))
    body = experiment_body()

    # When an audited request is sent, even with some x-api-key header
    assert client.post("/experiments", json=body, headers={"x-api-key": "anything"}).status_code == 201
    records = client.get("/audit", query_string={"entity": f"experiment:{body['experiment_id']}"}).get_json()

    # Then no key identity is invented: the caller is anonymous
    assert records["records"][0]["event"]["actor"] == "anonymous"


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
    client = Client(keyed_app(platform, key=None))

    # When /features/batch is called with a method only the parameter route has
    response = client.get("/features/batch")

    # Then API Gateway's choice holds: the literal resource, which has no GET (fuzzing found Allow listing all three)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
