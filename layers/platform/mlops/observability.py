"""The one place that creates the Powertools logger, tracer and metrics every handler uses.

Handlers decorate themselves with `instrumented_handler`, so each gets the same stack: Lambda context and
correlation id in every log line (never the event itself), and cold-start and custom metrics flushed as EMF.
X-Ray tracing comes from the functions' `Tracing: Active` (the Powertools Tracer would add the X-Ray SDK and
its own botocore, about 31 MB, to the scoring layer).
"""

from __future__ import annotations

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
    correlation = correlation_paths.API_GATEWAY_REST if api else None
    wrapped = logger.inject_lambda_context(correlation_id_path=correlation, log_event=False, clear_state=True)(handler)
    return metrics.log_metrics(capture_cold_start_metric=True)(wrapped)
