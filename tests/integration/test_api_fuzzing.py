"""Fuzzing the API that `make serve` serves, from docs/openapi.json, with schemathesis.

The server is the real one (`ApiGatewayApp` served by werkzeug on 127.0.0.1, an ephemeral port) on the platform of
one pilot run, so a real model answers; API keys are enforced (as `LOCAL_API_KEY` does) and the key is sent; the
operator operations (security `SigV4`: the template's AWS_IAM routes) are signed by the local operator, as the SDKs
sign (SigV4, service execute-api), so their handlers are fuzzed too, and schemathesis' auth check confirms each
refuses the same request unsigned or with a forged Authorization.

- Generated requests (schemathesis, positive and negative data, FUZZ_MAX_EXAMPLES per operation): no 5xx, every 4xx
  in the JSON error shape, and schemathesis' checks (status codes, content types, response schemas, auth) pass.
- Targeted cases: bodies that are not JSON or 1 MB large, NaN/Infinity/-0 and huge numbers, unicode and injection
  strings in every id (path and body), batches one record over their limit: each is refused with a 4xx in the error
  shape naming the field (or is a legitimate 404/200), never a 5xx. Every operator operation is also sent unsigned,
  signed with a wrong secret and signed for another body: each is refused with API Gateway's 403.

The module writes out/fuzz/summary.json (requests per operation and per status class, targeted cases) and prints a
one-line total. `make fuzz` runs it with a larger budget.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from werkzeug.serving import make_server

from api_clients import SigV4RequestsAuth
from helpers import PROJECT_ROOT, load_template
from local_cloud.api_server import API_KEY_HEADER, IAM_AUTHORIZER, ApiGatewayApp, api_events
from local_cloud.openapi import DOCUMENT_PATH
from local_cloud.platform import LocalPlatform
from local_cloud.principals import read_credentials_file
from mlops.api.contracts import MAX_BATCH_RECORDS, MAX_EXPLAIN_BATCH_RECORDS, MAX_FEATURE_BATCH_IDS
from mlops.monitoring.outcomes import MAX_OUTCOMES

pytestmark = pytest.mark.slow

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "20"))
SUMMARY_PATH = PROJECT_ROOT / "out" / "fuzz" / "summary.json"
API_KEY = os.environ.get("FUZZ_API_KEY") or f"fuzz-{secrets.token_hex(12)}"
TIMEOUT_S = 30
# The operator operations (AWS_IAM in the template): signed with SigV4, never with the key alone.
SIGNED_OPERATIONS = frozenset(
    (event.method.upper(), event.path) for event in api_events(load_template()) if event.authorizer == IAM_AUTHORIZER
)


# ------------------------------------------------------------------------------------------- bookkeeping
@dataclass
class FuzzLog:
    """What was sent: requests per operation and status class, and the targeted cases."""

    started: float = field(default_factory=time.perf_counter)
    operations: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    targeted: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, operation: str, status: int, targeted_case: str | None = None) -> None:
        status_class = f"{status // 100}xx"
        with self.lock:
            self.operations[operation][status_class] += 1
            if targeted_case is not None:
                self.targeted[targeted_case][status_class] += 1

    def summary(self) -> dict[str, Any]:
        by_class: Counter[str] = Counter()
        for counts in self.operations.values():
            by_class.update(counts)
        return {
            "max_examples": MAX_EXAMPLES,
            "elapsed_s": round(time.perf_counter() - self.started, 1),
            "requests": sum(by_class.values()),
            "operations": len(self.operations),
            "by_status_class": dict(sorted(by_class.items())),
            "targeted_requests": sum(sum(c.values()) for c in self.targeted.values()),
            "targeted_cases": len(self.targeted),
            "per_operation": {op: dict(sorted(c.items())) for op, c in sorted(self.operations.items())},
            "per_targeted_case": {case: dict(sorted(c.items())) for case, c in sorted(self.targeted.items())},
        }


@pytest.fixture(scope="module")
def fuzz_log(request: pytest.FixtureRequest) -> Iterator[FuzzLog]:
    log = FuzzLog()
    yield log
    summary = log.summary()
    SUMMARY_PATH.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY_PATH.write_text(json.dumps(summary, indent=2) + "\n")
    line = (
        f"Fuzzing: {summary['requests']} requests to {summary['operations']} operations "
        f"({', '.join(f'{k} {v}' for k, v in summary['by_status_class'].items())}), of which "
        f"{summary['targeted_requests']} targeted in {summary['targeted_cases']} kinds of case, "
        f"in {summary['elapsed_s']} s (FUZZ_MAX_EXAMPLES={MAX_EXAMPLES}) -> {SUMMARY_PATH.relative_to(PROJECT_ROOT)}"
    )
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\n" + line, flush=True)


@pytest.fixture(scope="module")
def api_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """`make serve`'s server, with LOCAL_API_KEY's enforcement, on the platform where the pilot deployed a model.

    FUZZ_BASE_URL (with FUZZ_API_KEY, and FUZZ_OPERATOR_CREDENTIALS: the operator-credentials.env it wrote) fuzzes
    an already running `make serve` instead."""
    if base_url := os.environ.get("FUZZ_BASE_URL"):
        yield base_url.rstrip("/")
        return
    platform: LocalPlatform = request.getfixturevalue("platform")
    request.getfixturevalue("pilot")
    app = ApiGatewayApp(platform.stack, platform.runtime, api_key=API_KEY, principals=platform.principals)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="fuzz-api", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="module")
def operator_auth(request: pytest.FixtureRequest, api_url: str) -> SigV4RequestsAuth:
    """Signs as the local operator: the platform's, or the one whose credentials `make serve` wrote."""
    if os.environ.get("FUZZ_BASE_URL"):
        default = PROJECT_ROOT / "out" / "pilot" / "operator-credentials.env"
        principal, region = read_credentials_file(os.environ.get("FUZZ_OPERATOR_CREDENTIALS") or default)
        return SigV4RequestsAuth(principal, region)
    platform: LocalPlatform = request.getfixturevalue("platform")
    return SigV4RequestsAuth(platform.operator, platform.stack.region)


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers[API_KEY_HEADER] = API_KEY
        yield session


def assert_error_shape(response: requests.Response | Any, where: str) -> dict[str, Any]:
    """A 4xx body is `{"error": {"code", "message", "fields": [{"field", "message"}], "retryable"}}`."""
    try:
        body = response.json()
    except ValueError:
        pytest.fail(f"{where}: {response.status_code} is not JSON: {response.text[:300]!r}")
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), f"{where}: {response.status_code} without an error object: {body!r:.300}"
    assert isinstance(error.get("code"), str), f"{where}: no error code: {body!r:.300}"
    assert error["code"], f"{where}: an empty error code: {body!r:.300}"
    assert isinstance(error.get("message"), str), f"{where}: no error message: {body!r:.300}"
    assert "Traceback" not in response.text, f"{where}: a stack trace leaked: {response.text[:300]!r}"
    for problem in error.get("fields", []):
        assert isinstance(problem.get("field"), str), where
        assert isinstance(problem.get("message"), str), where
    return error


# ------------------------------------------------------------------------------------------- generated
# Schema-valid requests may still be refused by rules JSON Schema cannot state (an opaque page token, since <= until,
# variant weights summing to 1, ids that must exist): a 400/404/409/422 there is right, not a finding.
EXCLUDED_CHECKS = [positive_data_acceptance]
SCHEMA = schemathesis.openapi.from_dict(json.loads(DOCUMENT_PATH.read_text()))
SCHEMA.config.update(request_timeout=TIMEOUT_S)
SCHEMA.config.generation.update(max_examples=MAX_EXAMPLES, with_security_parameters=False)


@SCHEMA.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
def test_generated_requests(
    case: schemathesis.Case, api_url: str, operator_auth: SigV4RequestsAuth, fuzz_log: FuzzLog
) -> None:
    # Given a request schemathesis generated from the document (valid or not), with the API key, signed by the
    # operator if it is an operator operation
    signed = (case.method.upper(), case.operation.path) in SIGNED_OPERATIONS
    headers = {API_KEY_HEADER: API_KEY}

    # When it is sent to the server
    response = case.call(base_url=api_url, headers=headers, timeout=TIMEOUT_S, auth=operator_auth if signed else None)
    fuzz_log.record(case.operation.label, response.status_code)

    # Then it is no 5xx, a 4xx is in the error shape, and the response conforms to the document
    assert response.status_code < 500, f"{case.operation.label}: {response.status_code} {response.text[:500]!r}"
    if 400 <= response.status_code < 500:
        assert_error_shape(response, case.operation.label)
    if signed:
        # The signature is the request's explicit credentials: schemathesis' auth check then also sends the request
        # without it, and with a forged Authorization, and requires a 401/403 for each
        assert response.status_code != 403, f"{case.operation.label}: a signed request refused: {response.text!r}"
        sent = response.request.headers
        headers |= {name: sent[name] for name in ("Authorization", "X-Amz-Date") if name in sent}
    case.validate_response(response, headers=headers, excluded_checks=EXCLUDED_CHECKS)


# ------------------------------------------------------------------------------------------- targeted
@dataclass(frozen=True)
class Target:
    """One handcrafted request and what it must give."""

    kind: str  # e.g. non_json_text, batch_1001, id_sql
    method: str
    route: str  # the documented path
    body: bytes | None = None
    statuses: frozenset[int] = frozenset({400, 422})
    field: str | None = None  # the field a 400/422 must name
    path_ids: tuple[tuple[str, str], ...] = ()  # path parameters other than the defaults

    @property
    def operation(self) -> str:
        return f"{self.method} {self.route}"

    @property
    def path(self) -> str:
        values = {"customer_id": "C00001", "version": "no-such-version", "experiment_id": UNKNOWN_EXPERIMENT}
        path = self.route
        for name, value in (values | dict(self.path_ids)).items():
            path = path.replace("{" + name + "}", quote(value, safe=""))
        return path

    def __str__(self) -> str:
        return f"{self.kind} {self.operation}" + (f" {self.field}" if self.field else "")


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


UNKNOWN_EXPERIMENT = "fuzz-no-such-experiment"
SAMPLE_FEATURES = {"total_day_minutes": 180.0, "number_customer_service_calls": 2, "state": "KS"}
BODY_ROUTES = [
    ("POST", "/predict"),
    ("POST", "/predict/batch"),
    ("POST", "/explain"),
    ("POST", "/explain/batch"),
    ("POST", "/features/batch"),
    ("POST", "/outcomes"),
    ("POST", "/experiments"),
    ("POST", "/experiments/{experiment_id}/assign"),
    ("POST", "/experiments/{experiment_id}/outcomes"),
    ("POST", "/experiments/{experiment_id}/stop"),
    ("POST", "/models/{version}/approve"),
    ("POST", "/models/{version}/reject"),
    ("POST", "/models/{version}/rollback"),
]
PATH_ID_ROUTES = [
    ("GET", "/features/{customer_id}", "customer_id"),
    ("DELETE", "/features/{customer_id}", "customer_id"),
    ("GET", "/models/{version}", "version"),
    ("POST", "/models/{version}/approve", "version"),
    ("POST", "/models/{version}/reject", "version"),
    ("POST", "/models/{version}/rollback", "version"),
    ("GET", "/experiments/{experiment_id}", "experiment_id"),
    ("POST", "/experiments/{experiment_id}/assign", "experiment_id"),
    ("POST", "/experiments/{experiment_id}/outcomes", "experiment_id"),
    ("GET", "/experiments/{experiment_id}/results", "experiment_id"),
    ("POST", "/experiments/{experiment_id}/stop", "experiment_id"),
]
VALID_BODIES: dict[str, dict[str, Any]] = {
    "/experiments/{experiment_id}/assign": {"unit_id": "C00001"},
    "/experiments/{experiment_id}/outcomes": {"unit_id": "C00001", "metric": "retained", "value": 1.0},
}
NASTY_IDS = {
    "sql": "' OR 1=1 --",
    "jsonpath": "$..*",
    "traversal": "../../etc/passwd",
    "nul_escaped": "%00",
    "nul": "\x00",
    "unicode": "Ç😀\u202e",
    "too_long": "C" * 129,
}
NUMBERS = {
    "nan": "NaN",
    "infinity": "Infinity",
    "neg_infinity": "-Infinity",
    "1e309": "1e309",
    "10**400": "1" + "0" * 400,
    "-10**400": "-1" + "0" * 400,
}
# (route, body template with %s for the number, the field it is in)
NUMERIC_FIELDS = [
    ("/predict", '{"customer_id": "C00001", "features": {"total_day_minutes": %s}}', "features.total_day_minutes"),
    (
        "/predict/batch",
        '{"records": [{"customer_id": "C00001", "features": {"total_day_minutes": %s}}]}',
        "records[0].features.total_day_minutes",
    ),
    ("/explain", '{"customer_id": "C00001", "features": {"total_day_minutes": %s}}', "features.total_day_minutes"),
    (
        "/explain/batch",
        '{"records": [{"customer_id": "C00001", "features": {"number_vmail_messages": %s}}]}',
        "records[0].features.number_vmail_messages",
    ),
    ("/experiments/{experiment_id}/outcomes", '{"unit_id": "C00001", "metric": "m", "value": %s}', "value"),
    (
        "/outcomes",
        '{"outcomes": [{"customer_id": "C00001", "churned": %s, "observed_at": "2026-01-01T00:00:00Z"}]}',
        "outcomes[0].churned",
    ),
]


def _outcome(customer_id: str) -> dict[str, Any]:
    return {"customer_id": customer_id, "churned": False, "observed_at": "2026-01-01T00:00:00Z"}


# route -> (list field, documented limit, a body of n records)
BATCH_LIMITS = {
    "/predict/batch": (
        "records",
        MAX_BATCH_RECORDS,
        lambda n: {"records": [{"customer_id": f"C{i}"} for i in range(n)]},
    ),
    "/explain/batch": (
        "records",
        MAX_EXPLAIN_BATCH_RECORDS,
        lambda n: {"records": [{"customer_id": f"C{i}"} for i in range(n)]},
    ),
    "/features/batch": ("customer_ids", MAX_FEATURE_BATCH_IDS, lambda n: {"customer_ids": [f"C{i}" for i in range(n)]}),
    "/outcomes": ("outcomes", MAX_OUTCOMES, lambda n: {"outcomes": [_outcome(f"C{i}") for i in range(n)]}),
}


def _body_id_fields(value: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(route, field, body) with `value` in each id field of a request body."""
    return [
        ("/predict", "customer_id", {"customer_id": value}),
        ("/predict/batch", "records[0].customer_id", {"records": [{"customer_id": value}]}),
        ("/explain", "customer_id", {"customer_id": value}),
        ("/explain", "model_version", {"customer_id": "C00001", "model_version": value}),
        ("/explain/batch", "records[0].customer_id", {"records": [{"customer_id": value}]}),
        ("/explain/batch", "model_version", {"records": [{"customer_id": "C00001"}], "model_version": value}),
        ("/features/batch", "customer_ids[0]", {"customer_ids": [value]}),
        ("/outcomes", "outcomes[0].customer_id", {"outcomes": [_outcome(value)]}),
        ("/experiments", "experiment_id", {"experiment_id": value}),
        ("/experiments/{experiment_id}/assign", "unit_id", {"unit_id": value}),
        ("/experiments/{experiment_id}/outcomes", "unit_id", {"unit_id": value, "metric": "m", "value": 1}),
    ]


def _refusals(route: str, *statuses: int) -> frozenset[int]:
    """A route under an unknown experiment may answer 404 before it looks at the body."""
    return frozenset(statuses) | ({404} if "{experiment_id}" in route else set())


def _targets() -> list[Target]:
    targets: list[Target] = []
    # Bodies that are not JSON, and 1 MB bodies, on every route that takes a body.
    not_json = {"text": b"not json", "truncated": b'{"customer_id": "C0', "binary": b"\xff\xfe\x00\x01"}
    not_json |= {"form": b"customer_id=C00001", "1mb_garbage": b"x" * 1_000_000}
    for method, route in BODY_ROUTES:
        for label, body in not_json.items():
            targets.append(Target(f"non_json_{label}", method, route, body, _refusals(route, 400), "body"))
        targets.append(Target("1mb_array", method, route, _json([0] * 333_333), _refusals(route, 422), "body"))
    # 1 MB in an id field: refused by the id's length limit.
    for route, field_name, body in _body_id_fields("C" * 1_000_000):
        targets.append(Target("1mb_id", "POST", route, _json(body), _refusals(route, 422), field_name))
    # A valid 1 MB body (one long text feature): scored, or refused naming the feature, never a 5xx.
    big = _json({"customer_id": "C00001", "features": {"state": "K" * 1_000_000}})
    targets.append(Target("1mb_valid", "POST", "/predict", big, frozenset({200, 422}), "features.state"))
    # NaN, Infinity and huge numbers (JSON literals Python's parser accepts) in numeric inputs: refused.
    for label, literal in NUMBERS.items():
        for route, template, field_name in NUMERIC_FIELDS:
            body = (template % literal).encode()
            targets.append(Target(f"number_{label}", "POST", route, body, _refusals(route, 422), field_name))
    # -0 is a number like any other: scored.
    minus_zero = b'{"customer_id": "C00001", "features": {"total_day_minutes": -0, "total_eve_minutes": -0.0}}'
    targets += [Target("number_minus_zero", "POST", r, minus_zero, frozenset({200})) for r in ("/predict", "/explain")]
    # Batches one record over their documented limit, and 1,001 records.
    for route, (field_name, limit, make) in BATCH_LIMITS.items():
        for size in sorted({limit + 1, 1001}):
            targets.append(Target(f"batch_{size}", "POST", route, _json(make(size)), frozenset({422}), field_name))
    # Injection, traversal, NUL, unicode and over-long strings in every id: in the path...
    for label, value in NASTY_IDS.items():
        for method, route, parameter in PATH_ID_ROUTES:
            body = _json(VALID_BODIES[route]) if route in VALID_BODIES else None
            statuses = frozenset({400, 404, 422})
            targets.append(Target(f"id_{label}", method, route, body, statuses, parameter, ((parameter, value),)))
        # ...and in the body.
        for route, field_name, body in _body_id_fields(value):
            targets.append(Target(f"body_id_{label}", "POST", route, _json(body), _refusals(route, 422), field_name))
    return targets


@pytest.mark.parametrize("target", _targets(), ids=str)
def test_targeted_request_is_refused_cleanly(
    target: Target, api_url: str, http: requests.Session, operator_auth: SigV4RequestsAuth, fuzz_log: FuzzLog
) -> None:
    # Given a handcrafted hostile or malformed request
    # When it is sent with the API key (signed by the operator, to an operator operation)
    response = http.request(
        target.method,
        api_url + target.path,
        data=target.body,
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT_S,
        auth=operator_auth if (target.method, target.route) in SIGNED_OPERATIONS else None,
    )
    fuzz_log.record(target.operation, response.status_code, target.kind)

    # Then it gets one of the expected answers, never a 5xx; a refusal is the error shape naming the field
    assert response.status_code < 500, f"{target}: {response.status_code} {response.text[:500]!r}"
    assert response.status_code in target.statuses, f"{target}: {response.status_code} {response.text[:500]!r}"
    if response.status_code >= 400:
        error = assert_error_shape(response, str(target))
        if target.field is not None and response.status_code in {400, 422}:
            named = [problem["field"] for problem in error.get("fields", [])]
            assert any(name == target.field or name.startswith(target.field) for name in named), (
                f"{target}: the error names {named}, not {target.field}: {error}"
            )


# ------------------------------------------------------------------------------------------- signatures
@pytest.mark.parametrize(("method", "route"), sorted(SIGNED_OPERATIONS), ids=" ".join)
def test_an_operator_operation_refuses_an_unsigned_or_forged_request(
    method: str, route: str, api_url: str, http: requests.Session, operator_auth: SigV4RequestsAuth, fuzz_log: FuzzLog
) -> None:
    # Given an operator operation, a valid body for it, and the API key (which a scoring client has)
    target = Target("signature", method, route, _json(VALID_BODIES.get(route, {"reason": "fuzz"})))
    url = api_url + target.path
    impostor = SigV4RequestsAuth(
        dataclasses.replace(operator_auth.principal, secret_access_key="forged"), operator_auth.region
    )

    def forged_body(prepared: requests.PreparedRequest) -> requests.PreparedRequest:
        operator_auth(prepared)
        prepared.body = b'{"reason": "forged"}'
        prepared.headers["Content-Length"] = str(len(prepared.body))
        return prepared

    # When it is sent unsigned, signed with a wrong secret, and signed for another body
    refusals = {
        "unsigned": ("MISSING_AUTHENTICATION_TOKEN", None),
        "wrong_secret": ("INVALID_SIGNATURE", impostor),
        "other_body": ("INVALID_SIGNATURE", forged_body),
    }
    for kind, (code, auth) in refusals.items():
        response = http.request(
            method, url, data=target.body, headers={"Content-Type": "application/json"}, timeout=TIMEOUT_S, auth=auth
        )
        fuzz_log.record(target.operation, response.status_code, f"signature_{kind}")

        # Then API Gateway's 403 answers, in the error shape, with the gateway response type of the refusal
        assert response.status_code == 403, f"{kind} {target.operation}: {response.status_code} {response.text!r}"
        assert assert_error_shape(response, f"{kind} {target.operation}")["code"] == code
