"""How the pilot calls the platform's functions: directly (Lambda Invoke), an API function with the API Gateway
event it would receive, the model monitor with its scheduled payload."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from botocore.config import Config

from mlops.core.errors import MonitoringError

MONITOR_CALLS = Config(read_timeout=310, retries={"max_attempts": 1})
"""Lambda client configuration for calls to the model monitor: it may run for minutes, so wait for it (its
300 s timeout) instead of resending it after botocore's 60 s."""


def api_gateway_event(
    method: str, path: str, body: dict[str, Any] | None, request_id: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A REST API (v1) proxy event, as API Gateway sends it to the scoring function."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/v1{path}",
            "stage": "v1",
            "requestId": request_id,
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def lambda_api_invoker(lambda_client: Any, function_name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Call an API function directly with an API Gateway event (Lambda Invoke), returning its proxy response."""

    def invoke(api_event: dict[str, Any]) -> dict[str, Any]:
        response = lambda_client.invoke(FunctionName=function_name, Payload=json.dumps(api_event))
        return json.loads(response["Payload"].read())

    return invoke


def lambda_monitor_invoker(lambda_client: Any, function_name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Run the model monitor (Lambda Invoke) and return its report; its failure is a MonitoringError."""

    def invoke(payload: dict[str, Any]) -> dict[str, Any]:
        response = lambda_client.invoke(FunctionName=function_name, Payload=json.dumps(payload))
        body = json.loads(response["Payload"].read())
        if "FunctionError" in response:
            raise MonitoringError(field="monitor", message=f"the model monitor failed: {body.get('errorMessage')}")
        return body

    return invoke
