"""The local stack's IAM principals: who may call the operator routes (the template's `AWS_IAM` routes).

On AWS an operator signs requests to those routes with AWS credentials (Signature Version 4, service
`execute-api`) and API Gateway checks the signature against IAM. Locally, the platform creates an IAM user in moto's
IAM when it starts (`local-operator`, with an access key and a policy allowing `execute-api:Invoke` on the stack's
APIs), and the local API server verifies signatures against these principals only: no other credentials, the
host's included, are accepted.

`Principal.sign` signs a request with botocore's own SigV4 signer (what the SDKs and `aws` use), and
`SigningClient` is a werkzeug test client that signs every request with it (the CLI's and the tests' operator);
`write_credentials_file` gives `make serve`'s operator credentials to a shell (curl --aws-sigv4).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from werkzeug.test import Client, EnvironBuilder, TestResponse
from werkzeug.wrappers import Request

from local_cloud.stack import DeployedStack

SIGV4_SERVICE = "execute-api"
OPERATOR_USER = "local-operator"
# The headers a signature adds to a request (the SigV4 date, the signature itself, a session's token).
SIGNATURE_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")


@dataclass(frozen=True)
class Principal:
    """An IAM identity of the local stack and one set of its credentials (an access key, or a session's)."""

    name: str
    arn: str
    user_id: str  # IAM's unique id of the user: API Gateway's identity `user` and `caller`
    account_id: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None  # temporary credentials only

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.access_key_id, self.secret_access_key, self.session_token)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def sign(
        self, method: str, url: str, body: bytes = b"", headers: Mapping[str, str] | None = None, *, region: str
    ) -> dict[str, str]:
        """The headers that sign this request for API Gateway (`SIGNATURE_HEADERS`), now.

        `url` is the URL as it will be sent (its path percent-encoded as on the wire); `headers` are the other
        headers to sign (e.g. Content-Type); Host is signed from the URL. botocore's signer does the work, as an
        SDK's client would: the query string is given as parameters, so it is canonicalised (sorted, encoded as
        SigV4 specifies) whatever encoding the URL uses, as API Gateway canonicalises what it receives.
        """
        parts = urlsplit(url)
        request = AWSRequest(
            method=method.upper(),
            url=urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", "")),
            headers=dict(headers or {}),
            data=body,
            params=parse_qsl(parts.query, keep_blank_values=True),
        )
        SigV4Auth(self.credentials, SIGV4_SERVICE, region).add_auth(request)
        return {name: request.headers[name] for name in SIGNATURE_HEADERS if name in request.headers}


class LocalPrincipals:
    """The principals the local API server accepts, by access key id; `operator` is the stack's operator."""

    def __init__(self, operator: Principal, region: str, others: Iterable[Principal] = ()) -> None:
        self.operator = operator
        self.region = region
        self._by_access_key = {p.access_key_id: p for p in (operator, *others)}

    @classmethod
    def create(cls, stack: DeployedStack) -> LocalPrincipals:
        """Create the operator in moto's IAM (inside the platform's `mock_aws`), with an access key and a policy
        allowing it to invoke the stack's APIs, as an operator's IAM user or role would on AWS."""
        iam = boto3.client("iam", region_name=stack.region)
        user = iam.create_user(UserName=OPERATOR_USER, Tags=[{"Key": "stack", "Value": stack.stack_name}])["User"]
        account_id = user["Arn"].split(":")[4]
        api_arns = [f"arn:aws:execute-api:{stack.region}:{account_id}:{api_id}/*" for api_id in _rest_api_ids(stack)]
        if api_arns:
            policy = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": api_arns}],
            }
            iam.put_user_policy(
                UserName=OPERATOR_USER, PolicyName="invoke-operator-routes", PolicyDocument=json.dumps(policy)
            )
        key = iam.create_access_key(UserName=OPERATOR_USER)["AccessKey"]
        return cls(
            Principal(
                name=OPERATOR_USER,
                arn=user["Arn"],
                user_id=user["UserId"],
                account_id=account_id,
                access_key_id=key["AccessKeyId"],
                secret_access_key=key["SecretAccessKey"],
            ),
            stack.region,
        )

    def by_access_key(self, access_key_id: str) -> Principal | None:
        return self._by_access_key.get(access_key_id)

    def session(self, principal: Principal, duration_s: int = 900) -> Principal:
        """Temporary credentials of `principal` (STS GetSessionToken, with a session token), accepted from now on."""
        sts = boto3.client(
            "sts",
            region_name=self.region,
            aws_access_key_id=principal.access_key_id,
            aws_secret_access_key=principal.secret_access_key,
        )
        issued = sts.get_session_token(DurationSeconds=duration_s)["Credentials"]
        temporary = Principal(
            name=principal.name,
            arn=principal.arn,
            user_id=principal.user_id,
            account_id=principal.account_id,
            access_key_id=issued["AccessKeyId"],
            secret_access_key=issued["SecretAccessKey"],
            session_token=issued["SessionToken"],
            expires_at=issued["Expiration"],
        )
        self._by_access_key[temporary.access_key_id] = temporary
        return temporary


class SigningClient(Client):
    """A werkzeug test client that signs every request with `principal`'s credentials (SigV4, execute-api), as an
    SDK would: the request is built first (body, query string, Content-Type), then signed as it will be sent."""

    def __init__(self, application: Any, principal: Principal, region: str, **kwargs: Any) -> None:
        super().__init__(application, **kwargs)
        self.principal = principal
        self.region = region

    def open(self, *args: Any, buffered: bool = False, follow_redirects: bool = False, **kwargs: Any) -> TestResponse:
        if args and not isinstance(args[0], str):
            raise TypeError("SigningClient signs requests given as a path and keyword arguments")
        builder = EnvironBuilder(*args, **kwargs)
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        body = environ["wsgi.input"].read()
        environ["wsgi.input"] = io.BytesIO(body)
        path = environ["REQUEST_URI"].encode("latin-1").decode("utf-8").partition("?")[0]  # WSGI carries latin-1
        query = environ.get("QUERY_STRING", "")
        url = f"{environ['wsgi.url_scheme']}://{environ['HTTP_HOST']}{path}" + (f"?{query}" if query else "")
        content_type = {"Content-Type": environ["CONTENT_TYPE"]} if environ.get("CONTENT_TYPE") else {}
        for name, value in self.principal.sign(
            environ["REQUEST_METHOD"], url, body, content_type, region=self.region
        ).items():
            environ[f"HTTP_{name.upper().replace('-', '_')}"] = value
        return super().open(Request(environ), buffered=buffered, follow_redirects=follow_redirects)


def write_credentials_file(principal: Principal, path: Path, region: str) -> Path:
    """The principal's credentials as shell variables, readable by the owner only (0600, even if it existed)."""
    lines = [
        f"# The local stack's {principal.name} ({principal.arn}): the credentials that sign its operator routes.",
        f'# set -a; . {path}; set +a; curl --aws-sigv4 "aws:amz:{region}:{SIGV4_SERVICE}" '
        '--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" ...',
        f"AWS_ACCESS_KEY_ID={principal.access_key_id}",
        f"AWS_SECRET_ACCESS_KEY={principal.secret_access_key}",
        *([f"AWS_SESSION_TOKEN={principal.session_token}"] if principal.session_token else []),
        f"AWS_DEFAULT_REGION={region}",
        f"OPERATOR_ARN={principal.arn}",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through os.open
    with os.fdopen(descriptor, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def read_credentials_file(path: Path) -> tuple[Principal, str]:
    """The principal and region of a file `write_credentials_file` wrote (to sign requests to a running
    `make serve` from another process)."""
    values = {}
    for line in Path(path).read_text().splitlines():
        name, separator, value = line.partition("=")
        if separator and not line.startswith("#"):
            values[name.strip()] = value.strip()
    arn = values["OPERATOR_ARN"]
    principal = Principal(
        name=arn.rsplit("/", 1)[-1],
        arn=arn,
        user_id="",
        account_id=arn.split(":")[4],
        access_key_id=values["AWS_ACCESS_KEY_ID"],
        secret_access_key=values["AWS_SECRET_ACCESS_KEY"],
        session_token=values.get("AWS_SESSION_TOKEN"),
    )
    return principal, values["AWS_DEFAULT_REGION"]


def _rest_api_ids(stack: DeployedStack) -> list[str]:
    apis = [
        logical_id
        for logical_id, resource in stack.template["Resources"].items()
        if resource.get("Type") == "AWS::Serverless::Api"
    ]
    return [
        stack.physical_ids[logical_id]
        for logical_id in [*apis, "ServerlessRestApi"]
        if logical_id in stack.physical_ids
    ]
