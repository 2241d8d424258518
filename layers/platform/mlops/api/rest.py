"""The REST resolver every API handler uses, with every error mapped to one JSON shape in one place.

Error body: `{"error": {"code", "message", "fields": [{"field", "message"}], "retryable"}}`. Validation
errors name the offending field (`features.total_day_minutes`, `records[3].customer_id`); unexpected
errors are logged with their trace and answered with a plain 500, never the trace itself.
"""

from __future__ import annotations

import base64
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from mlops.api.contracts import EntityId, ErrorBody, ErrorField, ErrorResponse
from mlops.core.errors import (
    ArtifactIntegrityError,
    AuditUnavailableError,
    DeploymentConflictError,
    DomainError,
    EntityNotFoundError,
    ExperimentConflictError,
    ExperimentNotFoundError,
    ExperimentUnavailableError,
    FeatureGroupConflictError,
    FeatureStoreUnavailableError,
    FeatureValidationError,
    ForbiddenError,
    InvalidRequestError,
    InvalidTransitionError,
    ModelNotFoundError,
    ModelUnavailableError,
    VersionNotDeployedError,
)
from mlops.core.observability import logger

_DOMAIN_ERRORS: dict[type[DomainError], tuple[HTTPStatus, str]] = {
    FeatureValidationError: (HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error"),
    InvalidRequestError: (HTTPStatus.BAD_REQUEST, "invalid_request"),
    ForbiddenError: (HTTPStatus.FORBIDDEN, "forbidden"),
    ModelNotFoundError: (HTTPStatus.NOT_FOUND, "model_not_found"),
    InvalidTransitionError: (HTTPStatus.CONFLICT, "invalid_transition"),
    DeploymentConflictError: (HTTPStatus.CONFLICT, "deployment_conflict"),
    VersionNotDeployedError: (HTTPStatus.CONFLICT, "version_not_deployed"),
    ExperimentNotFoundError: (HTTPStatus.NOT_FOUND, "experiment_not_found"),
    ExperimentConflictError: (HTTPStatus.CONFLICT, "experiment_conflict"),
    ModelUnavailableError: (HTTPStatus.SERVICE_UNAVAILABLE, "model_unavailable"),
    ArtifactIntegrityError: (HTTPStatus.SERVICE_UNAVAILABLE, "artifact_integrity"),
    EntityNotFoundError: (HTTPStatus.NOT_FOUND, "entity_not_found"),
    FeatureGroupConflictError: (HTTPStatus.CONFLICT, "feature_group_conflict"),
    FeatureStoreUnavailableError: (HTTPStatus.SERVICE_UNAVAILABLE, "feature_store_unavailable"),
    ExperimentUnavailableError: (HTTPStatus.SERVICE_UNAVAILABLE, "experiment_unavailable"),
    AuditUnavailableError: (HTTPStatus.SERVICE_UNAVAILABLE, "audit_unavailable"),
}
_INVALID_JSON = ErrorBody(
    code="invalid_json",
    message="the request body is not valid JSON",
    fields=[ErrorField(field="body", message="JSON decode error")],
)
# pydantic names the branch of a union it tried (`features.x.float`); the caller only needs the field.
_UNION_BRANCHES = frozenset({"float", "int", "str", "bool", "none", "list", "dict"})


def error_response(status: HTTPStatus, body: ErrorBody) -> Response:
    return Response(
        status_code=status.value,
        content_type="application/json",
        body=ErrorResponse(error=body).model_dump_json(),
        headers={"Retry-After": "1"} if body.retryable else None,
    )


def create_rest_app() -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)

    @app.exception_handler(RequestValidationError)
    def _invalid_request(error: RequestValidationError) -> Response:
        problems = error.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error_response(HTTPStatus.BAD_REQUEST, _INVALID_JSON)
        fields = _fields_of(problems)
        message = "invalid request: " + ", ".join(f.field for f in fields)
        return error_response(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            ErrorBody(code="validation_error", message=message, fields=fields),
        )

    @app.exception_handler(DomainError)
    def _domain_error(error: DomainError) -> Response:
        status, code = _DOMAIN_ERRORS.get(type(error), (HTTPStatus.BAD_REQUEST, "invalid_request"))
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            logger.warning("Request refused", extra={"code": code, "reason": error.message})
        return error_response(
            status,
            ErrorBody(
                code=code,
                message=error.message,
                fields=[ErrorField(field=error.field, message=error.message)],
                retryable=getattr(error, "retryable", False),
            ),
        )

    @app.not_found
    def _no_route(_: NotFoundError) -> Response:
        return error_response(HTTPStatus.NOT_FOUND, ErrorBody(code="not_found", message="no such route"))

    @app.exception_handler(Exception)
    def _unexpected(_: Exception) -> Response:
        logger.exception("Unhandled error")
        return error_response(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            ErrorBody(code="internal_error", message="internal error", retryable=True),
        )

    return app


def resolve_json_api(app: APIGatewayRestResolver, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Resolve an API Gateway event, reading every request body as JSON.

    The API speaks only JSON, so the body is parsed as JSON whatever Content-Type the client sent
    (`curl -d` sends form encoding), instead of being refused or parsed as a form.
    """
    if not _is_utf8_body(event):
        # JSON is UTF-8 (RFC 8259); Powertools would fail decoding a binary body with a 500.
        return {
            "statusCode": HTTPStatus.BAD_REQUEST.value,
            "multiValueHeaders": {"Content-Type": ["application/json"]},
            "body": ErrorResponse(error=_INVALID_JSON).model_dump_json(),
            "isBase64Encoded": False,
        }
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"}
    multi = {k: v for k, v in (event.get("multiValueHeaders") or {}).items() if k.lower() != "content-type"}
    json_event = {
        **event,
        "headers": {**headers, "Content-Type": "application/json"},
        "multiValueHeaders": {**multi, "Content-Type": ["application/json"]},
    }
    return app.resolve(json_event, context)


def _is_utf8_body(event: dict[str, Any]) -> bool:
    """API Gateway base64-encodes a body that is not UTF-8 text; JSON must be UTF-8."""
    if not event.get("isBase64Encoded") or not event.get("body"):
        return True
    try:
        base64.b64decode(event["body"], validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return False
    return True


def _fields_of(problems: list[dict[str, Any]]) -> list[ErrorField]:
    fields: dict[str, ErrorField] = {}
    for problem in problems:
        parts: list[str] = []
        for part in problem.get("loc", ()):
            if part == "body" and not parts:
                continue
            if isinstance(part, int):
                parts[-1:] = [f"{parts[-1]}[{part}]"] if parts else [f"[{part}]"]
            elif str(part) in _UNION_BRANCHES and parts:
                break
            else:
                parts.append(str(part))
        name = ".".join(parts) or "body"
        fields.setdefault(name, ErrorField(field=name, message=str(problem.get("msg", "invalid value"))))
    return list(fields.values())


_ENTITY_ID = TypeAdapter(EntityId)


def checked_entity_id(value: str, field: str) -> str:
    """A path parameter that must be an entity id (API Gateway has already URL-decoded it)."""
    try:
        return _ENTITY_ID.validate_python(value)
    except ValidationError:
        raise InvalidRequestError(
            field=field, message="must be 1-128 characters of letters, digits and _ . : @ -"
        ) from None


def caller_identity(app: APIGatewayRestResolver) -> str:
    """Who made the request, as API Gateway authenticated it (IAM principal or API key id), for audit records."""
    identity = app.current_event.request_context.identity
    return identity.user_arn or identity.api_key_id or identity.caller or "anonymous"


def operator_identity(app: APIGatewayRestResolver) -> str:
    """The IAM principal (ARN) that signed an operator request, as API Gateway's AWS_IAM authorization verified it.

    Operator routes are AWS_IAM in the template, so API Gateway never invokes them unsigned; refusing a request
    without a principal anyway keeps a route that were ever misconfigured (no authorizer) from acting anonymously
    or in an API key's name.
    """
    user_arn = app.current_event.request_context.identity.user_arn
    if not user_arn:
        raise ForbiddenError(
            field="Authorization", message="this operation needs a request signed by an IAM principal (SigV4)"
        )
    return user_arn


def request_id(app: APIGatewayRestResolver) -> str:
    """API Gateway's id of the request (ties audit records to the API's access logs)."""
    return app.current_event.request_context.request_id or "unknown"
