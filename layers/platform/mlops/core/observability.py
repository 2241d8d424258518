"""The one place that creates the Powertools logger, tracer and metrics every handler uses.

Handlers decorate themselves with `instrumented_handler`, so each gets the same stack: Lambda context and
correlation id in every log line (never the event itself), and cold-start and custom metrics flushed as EMF.
X-Ray tracing comes from the functions' `Tracing: Active` (the Powertools Tracer would add the X-Ray SDK and
its own botocore, about 31 MB, to the scoring layer).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics()

__all__ = ["MetricUnit", "instrumented_handler", "logger", "metrics", "record_dimensioned"]


def record_dimensioned(name: str, unit: MetricUnit, counts: dict[str, float], dimension: str) -> None:
    """One metric per value of `dimension` (e.g. predictions per variant), each with the function's default
    dimensions too. Powertools keeps one dimension set per flush, so these go out as their own EMF blobs."""
    for value, count in counts.items():
        with single_metric(
            name=name,
            unit=unit,
            value=count,
            namespace=metrics.namespace,
            default_dimensions={"service": metrics.service},
        ) as metric:
            metric.add_dimension(name=dimension, value=value)


def instrumented_handler(
    handler: Callable[[dict[str, Any], Any], Any], *, api: bool = False
) -> Callable[[dict[str, Any], Any], Any]:
    """Wrap a Lambda handler with the shared observability stack (API handlers take the API request id)."""
    # Powertools reads the namespace from the environment when `metrics` is created. A process that imported
    # this module before any function's environment was set (a test session, the local cloud) would flush
    # metrics without one, which Powertools refuses: take it from the environment the handler is set up in.
    if metrics.namespace is None:
        metrics.namespace = os.getenv("POWERTOOLS_METRICS_NAMESPACE")
    correlation = correlation_paths.API_GATEWAY_REST if api else None
    measured = _measured(handler, api=api)
    wrapped = logger.inject_lambda_context(correlation_id_path=correlation, log_event=False, clear_state=True)(measured)
    return metrics.log_metrics(capture_cold_start_metric=True)(wrapped)


def _measured(handler: Callable[[dict[str, Any], Any], Any], *, api: bool) -> Callable[[dict[str, Any], Any], Any]:
    """Every invocation counts as a request with its latency; an exception or a 5xx answer is an error, a 4xx
    answer a client error (the alarms in template.yaml read these)."""

    def measured(event: dict[str, Any], context: Any) -> Any:
        # The service dimension comes from the function's own environment at each call, as for the namespace.
        metrics.service = os.getenv("POWERTOOLS_SERVICE_NAME", metrics.service)
        started = time.perf_counter()
        status = 500
        try:
            response = handler(event, context)
            status = int(response.get("statusCode", 200)) if api and isinstance(response, dict) else 200
            return response
        finally:
            metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
            metrics.add_metric(
                name="Latency", unit=MetricUnit.Milliseconds, value=round((time.perf_counter() - started) * 1000, 3)
            )
            metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=int(status >= 500))
            if api:
                metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=int(400 <= status < 500))

    return measured
