"""API Gateway (REST, v1 Lambda proxy integration) in front of the in-process Lambda runtime.

Routes are the `Type: Api` events of the template's functions. Paths are served without the stage prefix
(like `sam local start-api`); a request that starts with a stage name is accepted too.

API keys: `sam local start-api` never enforces them. Here a key is enforced only when one is given
(`make serve` passes the environment variable LOCAL_API_KEY): then every route whose template Auth requires a key
(the API's `Auth.ApiKeyRequired`, overridden per event) answers 403 INVALID_API_KEY unless the request's
`x-api-key` header equals it, as API Gateway does with a usage plan's key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from local_cloud.lambda_runtime import InProcessLambdaRuntime
from local_cloud.stack import DeployedStack

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
API_KEY_ENV = "LOCAL_API_KEY"
API_KEY_HEADER = "x-api-key"
_PROXY_RESPONSE_KEYS = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}
_ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Route:
    function: str  # logical id
    resource: str  # the template path, e.g. /items/{item_id}
    methods: tuple[str, ...]
    stage: str
    api_id: str
    pattern: re.Pattern[str]
    literal_segments: int
    greedy: bool
    api_key_required: bool = False

    @classmethod
    def build(
        cls, function: str, path: str, method: str, stage: str, api_id: str, api_key_required: bool = False
    ) -> Route:
        regex, literals = "", 0
        for segment in path.strip("/").split("/") if path.strip("/") else []:
            if m := re.fullmatch(r"\{(\w+)\+\}", segment):
                regex += rf"/(?P<{m.group(1)}>.+)"
            elif m := re.fullmatch(r"\{(\w+)\}", segment):
                regex += rf"/(?P<{m.group(1)}>[^/]+)"
            else:
                regex += "/" + re.escape(segment)
                literals += 1
        methods = _ALL_METHODS if method.lower() == "any" else (method.upper(),)
        pattern = re.compile(f"{regex or '/'}/?")
        return cls(function, path, methods, stage, api_id, pattern, literals, "+}" in path, api_key_required)

    def specificity(self) -> tuple[int, int]:
        # API Gateway prefers literal segments over {param}, and {param} over {proxy+}.
        return (self.literal_segments, 0 if self.greedy else 1)


class ApiGatewayApp:
    """A WSGI application serving every `Type: Api` event of the stack's functions."""

    def __init__(self, stack: DeployedStack, runtime: InProcessLambdaRuntime, api_key: str | None = None) -> None:
        """`api_key`: enforce this key on the routes that require one (None: enforce none, like sam local)."""
        self.stack = stack
        self.runtime = runtime
        self.routes = _routes(stack)
        self.api_key = api_key or None
        self._stages = {route.stage for route in self.routes}

    @classmethod
    def from_environment(cls, stack: DeployedStack, runtime: InProcessLambdaRuntime) -> ApiGatewayApp:
        """The app `make serve` runs: keys enforced only when LOCAL_API_KEY is set (and not empty)."""
        return cls(stack, runtime, api_key=os.environ.get(API_KEY_ENV) or None)

    @property
    def keyed_routes(self) -> list[Route]:
        """The routes that answer 403 without the key (none when no key is enforced)."""
        return [route for route in self.routes if route.api_key_required] if self.api_key else []

    def api_key_summary(self) -> str:
        """What `make serve` says at startup about API keys."""
        if not self.api_key:
            return f"API keys: not enforced (set {API_KEY_ENV} to enforce; sam local start-api never does)"
        open_routes = ", ".join(_route_name(r) for r in self.routes if not r.api_key_required) or "none"
        return (
            f"API keys: enforced on {len(self.keyed_routes)} routes ({API_KEY_ENV}; send it as {API_KEY_HEADER}), "
            f"open: {open_routes}"
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        return self._respond(request)(environ, start_response)

    def _respond(self, request: Request) -> Response:
        path = request.path
        match = self._match(path)
        if match is None:
            first, _, rest = path.lstrip("/").partition("/")
            if first in self._stages:
                path = "/" + rest
                match = self._match(path)
        if match is None:
            return _error(404, "not_found", f"No route for {request.method} {request.path}")
        # Like API Gateway: the most specific resource is chosen first, then its method (/features/batch is
        # never served by /features/{customer_id}).
        match = [(r, m) for r, m in match if r.resource == match[0][0].resource]
        route_match = next(((r, m) for r, m in match if request.method in r.methods), None)
        if route_match is None:
            response = _error(405, "method_not_allowed", f"{request.method} is not allowed on {request.path}")
            response.headers["Allow"] = ", ".join(dict.fromkeys(m for r, _ in match for m in r.methods))  # RFC 9110
            return response
        route, path_match = route_match

        api_key_id = None
        if self.api_key and route.api_key_required:
            if not _same_secret(request.headers.get(API_KEY_HEADER, ""), self.api_key):
                # API Gateway's INVALID_API_KEY gateway response, in the API's error shape (template GatewayResponses).
                return _error(403, "INVALID_API_KEY", "Forbidden")
            api_key_id = _api_key_id(self.api_key)

        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _error(413, "payload_too_large", f"Request bodies are limited to {MAX_BODY_BYTES} bytes")
        body = request.stream.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "payload_too_large", f"Request bodies are limited to {MAX_BODY_BYTES} bytes")

        event = _proxy_event(request, path, route, path_match.groupdict(), body, self.stack, api_key_id)
        try:
            result = self.runtime.invoke(route.function, event)
            return _proxy_response(result)
        except Exception:
            # Like API Gateway: the client learns nothing; the details go to the server log.
            logger.exception("%s %s: %s failed or returned a malformed response", request.method, path, route.function)
            return _error(502, "bad_gateway", "Internal server error")

    def _match(self, path: str) -> list[tuple[Route, re.Match[str]]] | None:
        """The routes whose path matches, most specific first (None if there are none)."""
        found = [(route, m) for route in self.routes if (m := route.pattern.fullmatch(path))]
        return sorted(found, key=lambda rm: rm[0].specificity(), reverse=True) or None


@dataclass(frozen=True)
class ApiEvent:
    """A `Type: Api` event of a function in the SAM template."""

    function: str  # logical id
    path: str
    method: str  # lower case, or "any"
    api_logical_id: str | None  # None: SAM's implicit API
    stage: str
    api_key_required: bool


def api_events(template: dict[str, Any]) -> list[ApiEvent]:
    """Every `Type: Api` event of the template's functions, with the API key requirement SAM gives it: the
    event's `Auth.ApiKeyRequired`, else its API's `Auth.ApiKeyRequired` (Globals.Api for the implicit API)."""
    resources = template["Resources"]
    global_auth = (template.get("Globals", {}).get("Api") or {}).get("Auth") or {}
    events = []
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") != "Api":
                continue
            props = event["Properties"]
            api = props.get("RestApiId")
            api_logical_id = api.get("Ref") if isinstance(api, dict) else None
            api_props = resources.get(api_logical_id, {}).get("Properties", {}) if api_logical_id else {}
            stage = api_props.get("StageName")
            api_auth = api_props.get("Auth") if api_logical_id else global_auth
            required = (props.get("Auth") or {}).get("ApiKeyRequired", (api_auth or {}).get("ApiKeyRequired", False))
            events.append(
                ApiEvent(
                    function=logical_id,
                    path=props["Path"],
                    method=str(props["Method"]).lower(),
                    api_logical_id=api_logical_id,
                    stage=stage if isinstance(stage, str) else "Prod",  # Prod: the stage of SAM's implicit API
                    api_key_required=required is True or str(required).lower() == "true",
                )
            )
    return events


def _routes(stack: DeployedStack) -> list[Route]:
    return [
        Route.build(
            event.function,
            event.path,
            event.method,
            event.stage,
            stack.physical_ids.get(event.api_logical_id or "ServerlessRestApi", "local"),
            event.api_key_required,
        )
        for event in api_events(stack.template)
    ]


def _route_name(route: Route) -> str:
    return f"{route.methods[0] if len(route.methods) == 1 else 'ANY'} {route.resource}"


def _same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _api_key_id(api_key: str) -> str:
    """A stable id for the key, shaped like API Gateway's (10 lower-case alphanumerics), never the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:10]


def _proxy_event(
    request: Request,
    path: str,
    route: Route,
    path_parameters: dict[str, str],
    body: bytes,
    stack: DeployedStack,
    api_key_id: str | None = None,
) -> dict[str, Any]:
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        multi_headers.setdefault(name, []).append(value)
    multi_query = {key: request.args.getlist(key) for key in request.args}
    if not body:
        text_body, is_base64 = None, False
    else:
        try:
            text_body, is_base64 = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text_body, is_base64 = base64.b64encode(body).decode("ascii"), True
    now = datetime.now(UTC)
    source_ip = request.remote_addr or "127.0.0.1"
    return {
        "resource": route.resource,
        "path": path,
        "httpMethod": request.method,
        "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {key: values[-1] for key, values in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": route.resource,
            "resourcePath": route.resource,
            "httpMethod": request.method,
            "path": f"/{route.stage}{path}",
            "stage": route.stage,
            "requestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(time.time() * 1000),
            "accountId": stack.function(route.function).function_arn.split(":")[4],
            "apiId": route.api_id,
            "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "domainName": request.host,
            # With a key enforced, API Gateway names the caller's key: its value and its id (what audit records use).
            "identity": {
                "sourceIp": source_ip,
                "userAgent": request.user_agent.string or None,
                "apiKey": request.headers.get(API_KEY_HEADER) if api_key_id else None,
                "apiKeyId": api_key_id,
            },
        },
        "body": text_body,
        "isBase64Encoded": is_base64,
    }


def _proxy_response(result: Any) -> Response:
    """Map a Lambda proxy response to HTTP; anything malformed raises (and becomes a 502)."""
    if not isinstance(result, dict) or set(result) - _PROXY_RESPONSE_KEYS:
        raise ValueError(f"malformed Lambda proxy response: {result!r:.200}")
    status = result.get("statusCode")
    if isinstance(status, bool) or not isinstance(status, int | str) or not str(status).isdigit():
        raise ValueError(f"malformed statusCode {status!r}")
    body = result.get("body")
    if body is not None and not isinstance(body, str):
        raise ValueError("the body of a Lambda proxy response must be a string")
    payload = base64.b64decode(body) if body and result.get("isBase64Encoded") else (body or "").encode()

    headers = Headers()
    multi = result.get("multiValueHeaders") or {}
    single = result.get("headers") or {}
    if not isinstance(multi, dict) or not isinstance(single, dict):
        raise ValueError("headers and multiValueHeaders must be objects")
    # API Gateway merges both; for a name in multiValueHeaders only its values are kept.
    for name, values in multi.items():
        for value in values if isinstance(values, list) else [values]:
            headers.add(name, _header_value(value))
    multi_names = {name.lower() for name in multi}
    for name, value in single.items():
        if name.lower() not in multi_names:
            headers.add(name, _header_value(value))
    if "Content-Type" not in headers:
        headers["Content-Type"] = "application/json"
    return Response(payload, status=int(status), headers=headers)


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str | int | float):
        raise ValueError(f"malformed header value {value!r}")
    return str(value)


def _error(status: int, code: str, message: str) -> Response:
    # The API's error shape (mlops.api.contracts.ErrorResponse), so the OpenAPI document holds for these too.
    body = json.dumps({"error": {"code": code, "message": message, "fields": [], "retryable": False}})
    return Response(body, status=status, content_type="application/json")


def serve(app: ApiGatewayApp, host: str = "127.0.0.1", port: int = 3000) -> None:
    """Serve the app with werkzeug's threaded server until interrupted."""
    server = make_server(host, port, app, threaded=True)
    routes = ", ".join(_route_name(r) for r in app.routes)
    print(f"Local API on http://{host}:{server.port} (routes: {routes})", flush=True)
    print(app.api_key_summary(), flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
