"""The pilot's SmokeTest step: score held-out rows through the deployed scoring function, check what it
served, and measure its latency."""

from __future__ import annotations

import json
import math
import statistics
import time
from typing import Any

from mlops.api.contracts import SYNTHETIC_TRAFFIC_HEADER
from mlops.core.artifacts import ArtifactStore
from mlops.core.errors import SmokeTestError
from mlops.pilot.lambda_api import api_gateway_event
from mlops.pilot.payloads import LatencySummary, SmokeTestReport, StepRequest


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarise_latency(latencies_ms: list[float]) -> LatencySummary:
    ordered = sorted(latencies_ms)
    return LatencySummary(
        p50=round(percentile(ordered, 50), 3),
        p95=round(percentile(ordered, 95), 3),
        p99=round(percentile(ordered, 99), 3),
        mean=round(statistics.fmean(ordered), 3),
        max=round(ordered[-1], 3),
    )


def run_smoke_test(
    request: StepRequest, store: ArtifactStore, invoke_scoring: Any, clock: Any = time.perf_counter
) -> SmokeTestReport:
    """Score reference rows through the deployed scoring function; check version, values and latency.

    `invoke_scoring(event) -> response dict` calls the scoring function (Lambda Invoke on AWS).
    """
    registration = request.require(request.pilot.registration, "registration")
    rows = json.loads(store.get_verified(registration.smoke_test_rows))
    latencies: list[float] = []
    errors = 0
    max_difference = 0.0
    served = set()
    for call in range(request.pilot.smoke_test_calls):
        row = rows[call % len(rows)]
        event = api_gateway_event(
            "POST",
            "/predict",
            {"customer_id": row["customer_id"], "features": row["features"]},
            request_id=f"{request.execution_name}-smoke-{call}",
            headers={SYNTHETIC_TRAFFIC_HEADER: "smoke-test"},
        )
        started = clock()
        response = invoke_scoring(event)
        latencies.append((clock() - started) * 1000)
        if response.get("statusCode") != 200:
            errors += 1
            continue
        body = json.loads(response["body"])
        served.add(body["model_version"])
        max_difference = max(max_difference, abs(body["churn_probability"] - row["churn_probability"]))
    if served != {registration.model_version}:
        raise SmokeTestError(
            field="model_version",
            message=f"endpoint served {sorted(served)}, expected {registration.model_version}",
        )
    return SmokeTestReport(
        calls=len(latencies),
        errors=errors,
        served_version=registration.model_version,
        max_reference_difference=max_difference,
        latency_ms=summarise_latency(latencies),
        latencies_ms=[round(value, 3) for value in latencies],
    )
