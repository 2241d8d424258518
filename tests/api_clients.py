"""HTTP clients of the local API for the tests: unsigned (a scoring client: API key routes), or signed with SigV4 by
one of the local stack's principals (an operator: the template's AWS_IAM routes), as API Gateway expects.

- `client(platform)`: a werkzeug test client, no signature.
- `operator_client(platform)`: a werkzeug test client that signs every request as `platform.operator`.
- `signed_client(app, principal, region)`: the same with any app (e.g. one with an API key enforced) or principal.
- `SigV4RequestsAuth(principal, region)`: `requests` auth that signs a request as sent over a socket (fuzzing).

Every signature is botocore's (`Principal.sign`: SigV4Auth, service execute-api).
"""

from __future__ import annotations

from typing import Any

from requests import PreparedRequest
from requests.auth import AuthBase
from werkzeug.test import Client

from local_cloud.api_server import ApiGatewayApp
from local_cloud.platform import LocalPlatform
from local_cloud.principals import Principal, SigningClient


def client(platform: LocalPlatform, app: ApiGatewayApp | None = None) -> Client:
    """An unsigned client: what a scoring client (API key, no AWS credentials) can do."""
    return Client(app or platform.api_app())


def operator_client(platform: LocalPlatform, app: ApiGatewayApp | None = None) -> SigningClient:
    """A client whose every request is signed by the local stack's operator (IAM user local-operator)."""
    return signed_client(app or platform.api_app(), platform.operator, platform.stack.region)


def signed_client(app: Any, principal: Principal, region: str) -> SigningClient:
    return SigningClient(app, principal, region)


class SigV4RequestsAuth(AuthBase):
    """Signs a `requests` request as it will be sent (its final URL, body and Content-Type), like an SDK."""

    def __init__(self, principal: Principal, region: str) -> None:
        self.principal = principal
        self.region = region

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        if not isinstance(body, bytes):
            raise TypeError("only bodies given as bytes or text can be signed")
        content_type = request.headers.get("Content-Type")
        signed = {"Content-Type": content_type} if content_type else {}
        request.headers.update(
            self.principal.sign(request.method or "GET", request.url or "", body, signed, region=self.region)
        )
        return request
