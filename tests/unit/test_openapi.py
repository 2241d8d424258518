"""docs/openapi.json: generated from the handlers (local_cloud.openapi), in step with template.yaml, and committed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openapi_spec_validator import validate

from helpers import load_template
from local_cloud.api_server import api_events
from local_cloud.openapi import (
    DOCUMENT_PATH,
    ERROR_SCHEMA_REF,
    SECURITY_SCHEME,
    SIGV4_SECURITY_SCHEME,
    build_document,
    render,
)

_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in _METHODS
    }


def test_committed_document_is_the_generated_one(document: dict[str, Any]) -> None:
    # Given the document the handlers generate now
    generated = render(document)

    # When it is compared with the committed docs/openapi.json
    committed = DOCUMENT_PATH.read_text() if DOCUMENT_PATH.exists() else ""

    # Then they are the same
    assert committed == generated, (
        "docs/openapi.json is out of date with the handlers or template.yaml: run `make openapi` and commit it"
    )


def test_document_is_valid_openapi(document: dict[str, Any]) -> None:
    # Given the generated document / When it is validated against the OpenAPI 3.1 specification
    # Then it is valid (an invalid one would fail here rather than in the fuzzing)
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"]
    assert document["info"]["version"]
    assert document["servers"][0]["url"] == "http://127.0.0.1:3000"


def test_every_template_route_is_documented_and_nothing_else(document: dict[str, Any]) -> None:
    # Given the `Type: Api` routes of template.yaml
    routes = {(event.method, event.path) for event in api_events(load_template())}

    # When they are compared with the document's operations
    documented = set(_operations(document))

    # Then each side has exactly the other's routes
    assert routes - documented == set(), "routes of template.yaml that no handler documents"
    assert documented - routes == set(), "documented operations that template.yaml does not route"


def test_each_operation_needs_the_api_key_or_a_sigv4_signature_as_the_template_says(document: dict[str, Any]) -> None:
    # Given the template's API key requirement and authorizer per route (PlatformApi Auth, events overriding it)
    events = api_events(load_template())
    required = {(event.method, event.path): event.api_key_required for event in events}
    signed = {(event.method, event.path): event.authorizer == "AWS_IAM" for event in events}
    assert required[("get", "/health")] is False
    assert signed[("get", "/health")] is False
    assert not any(required[route] and signed[route] for route in required)

    # When the document's security schemes and requirements are read
    schemes = document["components"]["securitySchemes"]

    # Then the schemes are the x-api-key header and SigV4 (API Gateway's awsSigv4 Authorization header)...
    key_scheme, signature_scheme = schemes[SECURITY_SCHEME], schemes[SIGV4_SECURITY_SCHEME]
    assert key_scheme == {**key_scheme, "type": "apiKey", "in": "header", "name": "x-api-key"}
    assert signature_scheme == {
        **signature_scheme,
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "x-amazon-apigateway-authtype": "awsSigv4",
    }
    # ...each required exactly where the template requires it, with a 403 where either is
    for key, operation in _operations(document).items():
        expected = [{SECURITY_SCHEME: []}] if required[key] else []
        if signed[key]:
            expected = [{SIGV4_SECURITY_SCHEME: []}]
        assert operation["security"] == expected, key
        assert ("403" in operation["responses"]) is (required[key] or signed[key]), key


def test_every_error_response_is_the_error_shape(document: dict[str, Any]) -> None:
    # Given every operation of the document
    for key, operation in _operations(document).items():
        responses = operation["responses"]
        errors = {code: r for code, r in responses.items() if code.startswith(("4", "5"))}

        # Then it declares a 4XX default and its validation, not-found and unavailable answers...
        assert {"4XX", "404", "503"} <= set(errors), key
        if "requestBody" in operation:
            assert {"400", "413", "422"} <= set(errors), key
        # ...each with the ErrorResponse schema (Powertools' HTTPValidationError is never sent)
        for code, response in errors.items():
            assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_SCHEMA_REF}, (key, code)
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert set(schemas["ErrorResponse"]["properties"]) == {"error"}
    assert set(schemas["ErrorBody"]["properties"]) == {"code", "message", "fields", "retryable"}


def test_created_experiment_is_documented_as_201(document: dict[str, Any]) -> None:
    # Given POST /experiments, which answers 201 Created
    responses = document["paths"]["/experiments"]["post"]["responses"]

    # Then the document says 201 (not Powertools' default 200), with the experiment
    assert "201" in responses
    assert "200" not in responses
    assert json.dumps(responses["201"]).count("#/components/schemas/Experiment") == 1
