"""API Gateway (REST, v1 Lambda proxy integration) in front of the in-process Lambda runtime.

Routes are the `Type: Api` events of the template's functions. Paths are served without the stage prefix
(like `sam local start-api`); a request that starts with a stage name is accepted too.

API keys: `sam local start-api` never enforces them. Here a key is enforced only when one is given
(`make serve` passes the environment variable LOCAL_API_KEY): then every route whose template Auth requires a key
(the API's `Auth.ApiKeyRequired`, overridden per event) answers 403 INVALID_API_KEY unless the request's
`x-api-key` header equals it, as API Gateway does with a usage plan's key.

IAM authorization: a route whose authorizer is `AWS_IAM` (the event's `Auth.Authorizer`, else the API's
`Auth.DefaultAuthorizer`) is ALWAYS enforced, as on AWS: the request must be signed with Signature Version 4
(service `execute-api`, the stack's region) by one of the local stack's principals (`local_cloud.principals`), or
it is refused with 403 and API Gateway's gateway response type as the error code: MISSING_AUTHENTICATION_TOKEN (no
Authorization header), INVALID_SIGNATURE (malformed, wrongly scoped, not matching, or dated more than 5 minutes
from now: "Signature expired"), ACCESS_DENIED (an access key or session token the stack does not know),
EXPIRED_TOKEN (expired temporary credentials). The signature is recomputed by botocore's own SigV4 signer over the
request as received (method, path as sent, query, the headers named in SignedHeaders, the body) and compared in
constant time. The handler then gets the principal in `requestContext.identity` (`userArn`, `user`, `caller`,
`accessKey`, `accountId`), as API Gateway gives it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from werkzeug.datastructures import Headers
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from local_cloud.lambda_runtime import InProcessLambdaRuntime
from local_cloud.principals import SIGV4_SERVICE, LocalPrincipals, Principal
from local_cloud.stack import DeployedStack

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
API_KEY_ENV = "LOCAL_API_KEY"
API_KEY_HEADER = "x-api-key"
_PROXY_RESPONSE_KEYS = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}
_ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
IAM_AUTHORIZER = "AWS_IAM"
SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"
MAX_CLOCK_SKEW = timedelta(minutes=5)  # API Gateway refuses a signature dated further from its clock


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
    authorizer: str | None = None  # AWS_IAM, or None for no authorizer

    @classmethod
    def build(
        cls,
        function: str,
        path: str,
        method: str,
        stage: str,
        api_id: str,
        api_key_required: bool = False,
        authorizer: str | None = None,
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
        return cls(
            function, path, methods, stage, api_id, pattern, literals, "+}" in path, api_key_required, authorizer
        )

    def specificity(self) -> tuple[int, int]:
        # API Gateway prefers literal segments over {param}, and {param} over {proxy+}.
        return (self.literal_segments, 0 if self.greedy else 1)


class ApiGatewayApp:
    """A WSGI application serving every `Type: Api` event of the stack's functions."""

    def __init__(
        self,
        stack: DeployedStack,
        runtime: InProcessLambdaRuntime,
        api_key: str | None = None,
        principals: LocalPrincipals | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`api_key`: enforce this key on the routes that require one (None: enforce none, like sam local).
        `principals`: who may sign requests to the AWS_IAM routes (None: no one, every such request is refused).
        `clock`: the gateway's clock, which a signature's date must be within 5 minutes of."""
        self.stack = stack
        self.runtime = runtime
        self.routes = _routes(stack)
        self.api_key = api_key or None
        self.principals = principals
        self.clock = clock
        self._stages = {route.stage for route in self.routes}

    @classmethod
    def from_environment(
        cls, stack: DeployedStack, runtime: InProcessLambdaRuntime, principals: LocalPrincipals | None = None
    ) -> ApiGatewayApp:
        """The app `make serve` runs: keys enforced only when LOCAL_API_KEY is set (and not empty); signatures
        on the AWS_IAM routes always."""
        return cls(stack, runtime, api_key=os.environ.get(API_KEY_ENV) or None, principals=principals)

    @property
    def keyed_routes(self) -> list[Route]:
        """The routes that answer 403 without the key (none when no key is enforced)."""
        return [route for route in self.routes if route.api_key_required] if self.api_key else []

    @property
    def iam_routes(self) -> list[Route]:
        """The routes that answer 403 without a valid SigV4 signature (always enforced)."""
        return [route for route in self.routes if route.authorizer == IAM_AUTHORIZER]

    def api_key_summary(self, base_url: str = "http://127.0.0.1:3000", credentials_file: Path | None = None) -> str:
        """What `make serve` says at startup about API keys and the operator routes' SigV4 signatures."""
        if not self.api_key:
            lines = [f"API keys: not enforced (set {API_KEY_ENV} to enforce; sam local start-api never does)"]
        else:
            open_routes = [r for r in self.routes if not r.api_key_required and r.authorizer is None]
            lines = [
                f"API keys: enforced on {len(self.keyed_routes)} routes ({API_KEY_ENV}; send it as {API_KEY_HEADER}), "
                f"open: {', '.join(_route_name(r) for r in open_routes) or 'none'}"
            ]
        if self.iam_routes:
            region = self.stack.region
            lines.append(
                f"Operator routes need a SigV4 signature (AWS_IAM, always enforced; service {SIGV4_SERVICE}, region "
                f"{region}): {', '.join(_route_name(r) for r in self.iam_routes)}"
            )
            operator = self.principals.operator if self.principals else None
            if credentials_file is not None and operator is not None:
                lines.append(f"  the local operator's credentials ({operator.arn}): {credentials_file}")
            source = f"set -a; . {credentials_file}; set +a; " if credentials_file is not None else ""
            lines.append(
                f'  {source}curl --aws-sigv4 "aws:amz:{region}:{SIGV4_SERVICE}" '
                f'--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -X POST {base_url}/models/<version>/approve'
            )
        return "\n".join(lines)

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
        if route.authorizer not in {None, IAM_AUTHORIZER}:
            # Fail closed: a Cognito or Lambda authorizer is not emulated, so nothing passes it.
            logger.error("%s: authorizer %s is not emulated locally", _route_name(route), route.authorizer)
            return _error(500, "AUTHORIZER_CONFIGURATION_ERROR", "Internal server error")
        if route.authorizer == IAM_AUTHORIZER and not request.headers.get("Authorization"):
            return _error(403, "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")

        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _error(413, "payload_too_large", f"Request bodies are limited to {MAX_BODY_BYTES} bytes")
        body = request.stream.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "payload_too_large", f"Request bodies are limited to {MAX_BODY_BYTES} bytes")

        principal = None
        if route.authorizer == IAM_AUTHORIZER:
            verified = verify_signature(request, body, self.principals, self.stack.region, self.clock())
            if isinstance(verified, Refusal):
                return _error(403, verified.code, verified.message)
            principal = verified

        event = _proxy_event(request, path, route, path_match.groupdict(), body, self.stack, api_key_id, principal)
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
    authorizer: str | None = None  # e.g. AWS_IAM; None: no authorizer


def api_events(template: dict[str, Any]) -> list[ApiEvent]:
    """Every `Type: Api` event of the template's functions, with the API key requirement and the authorizer SAM
    gives it: the event's `Auth.ApiKeyRequired`, else its API's `Auth.ApiKeyRequired` (Globals.Api for the implicit
    API); the event's `Auth.Authorizer`, else its API's `Auth.DefaultAuthorizer` (`NONE`: none)."""
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
            authorizer = (props.get("Auth") or {}).get("Authorizer", (api_auth or {}).get("DefaultAuthorizer"))
            events.append(
                ApiEvent(
                    function=logical_id,
                    path=props["Path"],
                    method=str(props["Method"]).lower(),
                    api_logical_id=api_logical_id,
                    stage=stage if isinstance(stage, str) else "Prod",  # Prod: the stage of SAM's implicit API
                    api_key_required=required is True or str(required).lower() == "true",
                    authorizer=None if authorizer in {None, "NONE"} else str(authorizer),
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
            event.authorizer,
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


@dataclass(frozen=True)
class Refusal:
    """Why a signature was refused: API Gateway's gateway response type and message."""

    code: str
    message: str


_INVALID_TOKEN = Refusal("ACCESS_DENIED", "The security token included in the request is invalid.")
_NOT_MATCHING = Refusal(
    "INVALID_SIGNATURE",
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access "
    "Key and signing method. Consult the service documentation for details.",
)


class _SignedHeadersAuth(SigV4Auth):
    """botocore's SigV4 signer, canonicalising exactly the headers the request names in SignedHeaders, as AWS does
    (botocore's client side picks the headers itself: it leaves out e.g. User-Agent and adds Host)."""

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name, value in request.headers.items():
            headers[name.lower()] = value
        return headers


def verify_signature(
    request: Request, body: bytes, principals: LocalPrincipals | None, region: str, now: datetime
) -> Principal | Refusal:
    """The principal whose credentials signed `request` (SigV4, service execute-api, `region`), or why not."""
    fields = _authorization_fields(request.headers.get("Authorization", ""))
    if fields is None:
        return Refusal(
            "INVALID_SIGNATURE",
            f"Authorization header requires the {SIGV4_ALGORITHM} algorithm with 'Credential', 'SignedHeaders' and "
            "'Signature' parameters.",
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5:
        return Refusal("INVALID_SIGNATURE", "Credential should be <access key>/<date>/<region>/<service>/aws4_request.")
    access_key_id, scope_date, scope_region, service, terminator = scope
    if terminator != "aws4_request":
        return Refusal("INVALID_SIGNATURE", "Credential should be scoped with a valid terminator: 'aws4_request'.")
    if service != SIGV4_SERVICE:
        return Refusal("INVALID_SIGNATURE", f"Credential should be scoped to correct service: '{SIGV4_SERVICE}'.")
    if scope_region != region:
        return Refusal("INVALID_SIGNATURE", f"Credential should be scoped to a valid region: '{region}'.")
    stamp = request.headers.get("X-Amz-Date", "")
    try:
        signed_at = datetime.strptime(stamp, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        return Refusal("INVALID_SIGNATURE", "The request must have an X-Amz-Date header (ISO 8601 basic format).")
    if scope_date != stamp[:8]:
        return Refusal(
            "INVALID_SIGNATURE",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{scope_date}' != '{stamp[:8]}'.",
        )
    if signed_at < now - MAX_CLOCK_SKEW:
        earliest = (now - MAX_CLOCK_SKEW).strftime(SIGV4_TIMESTAMP)
        return Refusal(
            "INVALID_SIGNATURE",
            f"Signature expired: {stamp} is now earlier than {earliest} ({now.strftime(SIGV4_TIMESTAMP)} - 5 min.)",
        )
    if signed_at > now + MAX_CLOCK_SKEW:
        latest = (now + MAX_CLOCK_SKEW).strftime(SIGV4_TIMESTAMP)
        return Refusal(
            "INVALID_SIGNATURE",
            f"Signature not yet current: {stamp} is still later than {latest} ({now.strftime(SIGV4_TIMESTAMP)} "
            "+ 5 min.)",
        )
    signed_names = [name.strip().lower() for name in fields["SignedHeaders"].split(";") if name.strip()]
    if "host" not in signed_names:
        return Refusal("INVALID_SIGNATURE", "'Host' must be a 'SignedHeader' in the AWS Authorization.")

    principal = principals.by_access_key(access_key_id) if principals is not None else None
    if principal is None:
        return _INVALID_TOKEN
    token = request.headers.get("X-Amz-Security-Token")
    if (token is None) != (principal.session_token is None) or (
        token is not None and not _same_secret(token, principal.session_token or "")
    ):
        return _INVALID_TOKEN
    if principal.expired(now):
        return Refusal("EXPIRED_TOKEN", "The security token included in the request is expired")
    # botocore takes a signed X-Amz-Content-SHA256 as the payload's hash: it must be the hash of this body.
    content_sha256 = request.headers.get("X-Amz-Content-SHA256")
    if content_sha256 is not None and not _same_secret(content_sha256, hashlib.sha256(body).hexdigest()):
        return Refusal("INVALID_SIGNATURE", "The provided 'x-amz-content-sha256' header does not match the body.")
    if any(name not in request.headers for name in signed_names):
        return _NOT_MATCHING

    headers = HTTPHeaders()
    for name in signed_names:
        for value in request.headers.getlist(name):
            headers[name] = value
    raw_path, raw_query = _request_target(request)
    received = AWSRequest(
        method=request.method,
        url=f"{request.scheme}://{request.host}{raw_path}",
        headers=headers,
        data=body,
        params=parse_qsl(raw_query, keep_blank_values=True),  # canonicalised by botocore, as the client's SDK does
    )
    received.context["timestamp"] = stamp
    signer = _SignedHeadersAuth(principal.credentials, SIGV4_SERVICE, region)
    string_to_sign = signer.string_to_sign(received, signer.canonical_request(received))
    expected = signer.signature(string_to_sign, received)
    if not hmac.compare_digest(expected.encode(), fields["Signature"].encode()):
        return _NOT_MATCHING
    return principal


def _authorization_fields(header: str) -> dict[str, str] | None:
    """Credential, SignedHeaders and Signature of a SigV4 Authorization header (None if it is not one)."""
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != SIGV4_ALGORITHM:
        return None
    fields = {}
    for part in rest.split(","):
        name, separator, value = part.strip().partition("=")
        if separator:
            fields[name] = value
    return fields if {"Credential", "SignedHeaders", "Signature"} <= set(fields) else None


def _request_target(request: Request) -> tuple[str, str]:
    """The path and query string as the client sent them (percent-encoded), which is what it signed."""
    query = request.environ.get("QUERY_STRING", "")  # WSGI gives the query as sent (not decoded)
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if not raw:
        return quote(request.root_path + request.path, safe="/!$&'()*+,;=:@~"), query
    with contextlib.suppress(UnicodeError):
        raw = raw.encode("latin-1").decode("utf-8")  # undo WSGI's latin-1 transport of the bytes
    path = raw.partition("?")[0]
    if "://" in path:  # an absolute-form request target (a proxy's)
        path = urlsplit(path).path
    return path or "/", query


def _proxy_event(
    request: Request,
    path: str,
    route: Route,
    path_parameters: dict[str, str],
    body: bytes,
    stack: DeployedStack,
    api_key_id: str | None = None,
    principal: Principal | None = None,
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
            # With a key enforced, API Gateway names the caller's key: its value and its id. With AWS_IAM, the
            # principal that signed: its ARN, unique id, access key and account (what audit records use).
            "identity": {
                "sourceIp": source_ip,
                "userAgent": request.user_agent.string or None,
                "apiKey": request.headers.get(API_KEY_HEADER) if api_key_id else None,
                "apiKeyId": api_key_id,
                "accountId": principal.account_id if principal else None,
                "caller": principal.user_id if principal else None,
                "user": principal.user_id if principal else None,
                "userArn": principal.arn if principal else None,
                "accessKey": principal.access_key_id if principal else None,
                "principalOrgId": None,
                "cognitoIdentityPoolId": None,
                "cognitoIdentityId": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
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
