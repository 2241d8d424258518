"""The one place that creates the Powertools logger, tracer and metrics every handler uses.

Handlers decorate themselves with `instrumented_handler`, so each gets the same stack: Lambda context and
correlation id in every log line (never the event itself), and cold-start and custom metrics flushed as EMF.
X-Ray tracing comes from the functions' `Tracing: Active` (the Powertools Tracer would add the X-Ray SDK and
its own botocore, about 31 MB, to the scoring layer).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics()
# A warm invocation of a step that emits no custom metric is normal, not worth a warning per call.
warnings.filterwarnings("ignore", message="No application metrics to publish")

__all__ = ["MetricUnit", "instrumented_handler", "logger", "metrics"]


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
    wrapped = logger.inject_lambda_context(correlation_id_path=correlation, log_event=False, clear_state=True)(handler)
    return metrics.log_metrics(capture_cold_start_metric=True)(wrapped)
