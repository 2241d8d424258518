"""Retrying an AWS call that failed transiently (throttled, a 5xx, the connection lost), with jittered backoff.

botocore retries too; these retries are the platform's, on top of it, for the calls a request cannot do without
(a feature read, an exposure write). `mlops.audit.trail` has its own, which also tells rejected from ambiguous writes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "SlowDown",
    }
)
DEFAULT_ATTEMPTS = 5


def is_transient(error: BaseException) -> bool:
    """Whether the same call may succeed if made again shortly."""
    if isinstance(error, ConnectionError | HTTPClientError):
        return True
    if not isinstance(error, ClientError):
        return False
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return code in THROTTLING_CODES or code in {"InternalServerError", "ServiceUnavailable"} or status >= 500


def backoff_delay(attempt: int) -> float:
    """Full-jitter exponential backoff after the `attempt`-th failure (1-based): at most 0.04, 0.08, ... 1 s."""
    return random.uniform(0, min(1.0, 0.02 * 2**attempt))


def with_retries[T](call: Callable[[], T], *, max_attempts: int = DEFAULT_ATTEMPTS) -> T:
    """`call()`, repeated after transient failures (at most `max_attempts` calls); the last error is raised."""
    for attempt in range(1, max_attempts + 1):
        try:
            return call()
        except (ClientError, BotoCoreError) as error:
            if attempt == max_attempts or not is_transient(error):
                raise
            time.sleep(backoff_delay(attempt))  # looked up at call time, so tests can record the delays
    raise AssertionError("unreachable")  # the loop returns or raises
