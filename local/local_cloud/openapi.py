"""The OpenAPI document of the whole API, `docs/openapi.json`: `python -m local_cloud.openapi` (make openapi).

Generated, never written by hand: each function of template.yaml with `Type: Api` events has a Powertools resolver
(`app`) in its handler module, whose `get_openapi_schema()` describes its routes from their pydantic models. The
documents are merged into one (one `paths` map, shared `components.schemas`; a schema name defined two ways is an
error), and the generator adds what the handlers cannot know:

- the security of each operation, as the template declares it: an `AWS_IAM` authorizer (the event's `Auth.Authorizer`,
  else the API's `Auth.DefaultAuthorizer`) becomes the `SigV4` scheme (an AWS Signature Version 4 `Authorization`
  header, as API Gateway's own export names it: `x-amazon-apigateway-authtype: awsSigv4`), `Auth.ApiKeyRequired`
  (API level, overridden per event) the `ApiKey` scheme (`x-api-key`); `GET /health` is open;
- the error responses: `mlops.api.rest` maps every refusal to `ErrorResponse`, and API Gateway's own refusals (key,
  throttling, size) use that shape too (the template's GatewayResponses), so each operation declares the 4xx/503
  statuses it can give with that schema, and Powertools' default 422 schema (`HTTPValidationError`, which the API
  never sends) is replaced;
- the servers: `make serve` and the deployed stage.

tests/unit/test_openapi.py regenerates the document and fails when the committed one differs.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from samtranslator.yaml_helper import yaml_parse

from local_cloud.api_server import API_KEY_HEADER, IAM_AUTHORIZER, MAX_BODY_BYTES, api_events
from local_cloud.lambda_runtime import load_module
from local_cloud.principals import SIGV4_SERVICE
from local_cloud.stack import handler_location

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
DOCUMENT_PATH = PROJECT_ROOT / "docs" / "openapi.json"
LOCAL_SERVER = "http://127.0.0.1:3000"

SECURITY_SCHEME = "ApiKey"
SIGV4_SECURITY_SCHEME = "SigV4"
SECURITY_SCHEMES = {
    SECURITY_SCHEME: {
        "type": "apiKey",
        "in": "header",
        "name": API_KEY_HEADER,
        "description": "The usage plan's API key (template output ApiKeyId).",
    },
    SIGV4_SECURITY_SCHEME: {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "x-amazon-apigateway-authtype": "awsSigv4",
        "description": f"An AWS Signature Version 4 (service `{SIGV4_SERVICE}`, the stack's region) by an IAM "
        "principal allowed `execute-api:Invoke` on the operation: the operator operations. The handler records the "
        "principal's ARN. Locally (`make serve`), the local operator's credentials are in "
        "OUTPUT_DIR/operator-credentials.env.",
    },
}
ERROR_SCHEMA_REF = "#/components/schemas/ErrorResponse"
_POWERTOOLS_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# Operations that can conflict with the state of what they change (409): decisions on a model version, experiment
# lifecycle, and an explanation of a version that is not the one served.
CONFLICTING_OPERATIONS = frozenset(
    {
        ("post", "/models/{version}/approve"),
        ("post", "/models/{version}/reject"),
        ("post", "/models/{version}/rollback"),
        ("post", "/experiments"),
        ("post", "/experiments/{experiment_id}/assign"),
        ("post", "/experiments/{experiment_id}/outcomes"),
        ("post", "/experiments/{experiment_id}/stop"),
        ("post", "/explain"),
        ("post", "/explain/batch"),
    }
)

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": False,
        "schema": {"type": "string"},
    }
}
ERROR_RESPONSES: dict[str, dict[str, Any]] = {
    "400": {
        "description": "Malformed request: the body is not JSON (`invalid_json`) or an id is malformed "
        "(`invalid_request`); `fields` names the offending field."
    },
    "403": {"description": "Missing or invalid API key (`INVALID_API_KEY`): send the usage plan's key as x-api-key."},
    "404": {"description": "No such resource (`*_not_found`, naming the field) or route (`not_found`)."},
    "409": {
        "description": "The request conflicts with the current state (`invalid_transition`, `deployment_conflict`, "
        "`version_not_deployed`, `experiment_conflict`)."
    },
    "413": {"description": f"The request body is over API Gateway's limit ({MAX_BODY_BYTES // (1024 * 1024)} MB)."},
    "422": {
        "description": "The request failed validation (`validation_error`); `fields` names each offending field "
        "(`records[3].customer_id`)."
    },
    "429": {
        "description": "Throttled by the usage plan (`THROTTLED`) or over its daily quota: retry later.",
        "headers": _RETRY_AFTER,
    },
    "503": {
        "description": "A dependency is unavailable (no model deployed, the artifact store, the feature store, the "
        "audit trail); `retryable` is true.",
        "headers": _RETRY_AFTER,
    },
    "4XX": {"description": "Any other refusal (e.g. 405 for a method the route does not have), in the same shape."},
}

# The 403 of an operation signed with SigV4: API Gateway's refusals of the signature, and the handler's own.
SIGNATURE_REFUSAL = {
    "description": "Missing, invalid or expired signature (`MISSING_AUTHENTICATION_TOKEN`, `INVALID_SIGNATURE`, "
    "`ACCESS_DENIED`, `EXPIRED_TOKEN`), or no IAM principal (`forbidden`): sign the request with SigV4."
}


def project_info() -> dict[str, str]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    return {"version": project["version"], "description": project["description"]}


def import_environment(template: dict[str, Any], logical_id: str) -> dict[str, str]:
    """The function's template environment (Globals, then its own), with `!Ref`s replaced by the parameters'
    defaults and other intrinsics by placeholders: enough for an import, which reads no resource (settings are read
    on the first request)."""
    variables = {
        **((template.get("Globals", {}).get("Function", {}).get("Environment") or {}).get("Variables") or {}),
        **((template["Resources"][logical_id].get("Properties", {}).get("Environment") or {}).get("Variables") or {}),
    }
    parameters = template.get("Parameters", {})

    def value_of(name: str, value: Any) -> str:
        if isinstance(value, dict) and set(value) == {"Ref"} and "Default" in parameters.get(value["Ref"], {}):
            return str(parameters[value["Ref"]]["Default"])
        return str(value) if isinstance(value, str | int | float) else f"openapi-{name.lower()}"

    environment = {name: value_of(name, value) for name, value in variables.items()}
    return {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        **environment,
    }


@contextlib.contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(variables)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def import_handler(logical_id: str, module_file: Path, environment: dict[str, str]) -> ModuleType:
    """The handler module, imported once per process with its import environment."""
    name = f"_openapi_{logical_id}"
    if name in sys.modules:
        return sys.modules[name]
    with _environment(environment):
        return load_module(name, module_file)


def build_document(template_path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The merged OpenAPI document of every API function of the template."""
    template = yaml_parse(template_path.read_text())
    events = api_events(template)
    info = project_info()
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    schema_owner: dict[str, str] = {}
    for logical_id in dict.fromkeys(event.function for event in events):
        module_file = handler_location(template, logical_id, template_path.parent).module_file
        module = import_handler(logical_id, module_file, import_environment(template, logical_id))
        partial = json.loads(module.app.get_openapi_json_schema(title=logical_id, version=info["version"]))
        tag = logical_id.removesuffix("Function")
        for path, item in partial.get("paths", {}).items():
            for method, operation in item.items():
                if method in paths.get(path, {}):
                    raise ValueError(f"{method.upper()} {path} is declared by two handlers")
                paths.setdefault(path, {})[method] = {"tags": [tag], **operation}
        for name, schema in partial.get("components", {}).get("schemas", {}).items():
            if name in schemas and schemas[name] != schema:
                raise ValueError(f"schema {name!r} differs between {schema_owner[name]} and {logical_id}")
            schemas[name], schema_owner[name] = schema, logical_id

    schemas.update(_error_schemas())
    required = {(event.method, event.path): event.api_key_required for event in events}
    signed = {(event.method, event.path): event.authorizer == IAM_AUTHORIZER for event in events}
    for path, item in paths.items():
        for method, operation in item.items():
            _complete_operation(
                operation,
                method,
                path,
                key_required=required.get((method, path), True),
                signature_required=signed.get((method, path), False),
            )
    for name in _POWERTOOLS_VALIDATION_SCHEMAS:
        if name in schemas and f'"#/components/schemas/{name}"' not in json.dumps(paths):
            del schemas[name]

    stage = _stage(template)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Serverless MLOps platform API",
            "version": info["version"],
            "description": f"{info['description']}\n\nThe operator operations (security `{SIGV4_SECURITY_SCHEME}`: "
            "deleting a customer's features, deciding on and rolling back model versions, creating and stopping "
            "experiments, reading and verifying the audit trail) need an AWS Signature Version 4 by an IAM principal; "
            f"every other operation except `GET /health` needs the usage plan's API key in the `{API_KEY_HEADER}` "
            "header. Every error has one JSON shape, `ErrorResponse`. Generated from the handlers' pydantic models "
            "by `make openapi`; do not edit.",
        },
        "servers": [
            {
                "url": LOCAL_SERVER,
                "description": "make serve (the local platform; keys enforced with LOCAL_API_KEY, signatures always)",
            },
            {
                "url": f"https://{{restApiId}}.execute-api.{{region}}.amazonaws.com/{stage}",
                "description": f"The deployed stack (API Gateway stage {stage})",
                "variables": {
                    "restApiId": {"default": "restApiId", "description": "The PlatformApi's id."},
                    "region": {"default": "us-east-1"},
                },
            },
        ],
        "paths": {path: dict(sorted(paths[path].items())) for path in sorted(paths)},
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": SECURITY_SCHEMES,
        },
        "security": [{SECURITY_SCHEME: []}],
        "tags": [{"name": tag} for tag in sorted({op["tags"][0] for item in paths.values() for op in item.values()})],
    }


def _complete_operation(
    operation: dict[str, Any], method: str, path: str, *, key_required: bool, signature_required: bool
) -> None:
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    has_path_ids = any(p.get("in") == "path" for p in parameters)
    has_query = any(p.get("in") == "query" for p in parameters)
    statuses = ["404", "503", "4XX"]
    if has_body or has_path_ids:
        statuses.append("400")
    if has_body:
        statuses.append("413")
    if has_body or has_query:
        statuses.append("422")
    if key_required or signature_required:
        statuses += ["403", "429"]
    if (method, path) in CONFLICTING_OPERATIONS:
        statuses.append("409")
    responses = {code: r for code, r in operation.get("responses", {}).items() if not code.startswith(("4", "5"))}
    for status in statuses:
        described = SIGNATURE_REFUSAL if signature_required and status == "403" else ERROR_RESPONSES[status]
        responses[status] = {
            **described,
            "content": {"application/json": {"schema": {"$ref": ERROR_SCHEMA_REF}}},
        }
    operation["responses"] = dict(sorted(responses.items()))
    # One requirement naming every scheme the operation needs (all of them: AND), none for an open operation.
    requirement = {SIGV4_SECURITY_SCHEME: []} if signature_required else {}
    requirement |= {SECURITY_SCHEME: []} if key_required else {}
    operation["security"] = [requirement] if requirement else []


def _error_schemas() -> dict[str, Any]:
    from mlops.api.contracts import ErrorResponse

    schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
    definitions = schema.pop("$defs", {})
    return {**definitions, "ErrorResponse": schema}


def _stage(template: dict[str, Any]) -> str:
    stages = {event.stage for event in api_events(template)}
    return stages.pop() if len(stages) == 1 else "v1"


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="local_cloud.openapi", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DOCUMENT_PATH)
    args = parser.parse_args(argv)
    document = build_document()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(document))
    operations = sum(len(item) for item in document["paths"].values())
    print(f"OpenAPI {document['openapi']}: {operations} operations on {len(document['paths'])} paths -> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
