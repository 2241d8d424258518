"""Retrying an AWS call that failed transiently (throttled, a 5xx, the connection lost), with jittered backoff.

botocore retries too; these retries are the platform's, on top of it, for the calls a request cannot do without
(a feature read, an exposure write, an audit append). A transient failure is of one of two kinds: `rejected`
(throttled: the service did nothing) or `ambiguous` (a 5xx or a lost connection: the request may have been
applied). A conditional write may be repeated either way; the audit trail also tells the caller which it was.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Literal

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestThrottled",  # SQS
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "SlowDown",
    }
)
"""Codes of ClientErrors that mean the service rejected the request without doing anything."""
SERVER_ERROR_CODES = frozenset({"InternalServerError", "ServiceUnavailable"})
"""Codes after which the request may or may not have been applied (as after any 5xx)."""
DEFAULT_ATTEMPTS = 5

type TransientKind = Literal["rejected", "ambiguous"]


def error_code(error: BaseException) -> str:
    """The AWS error code of a ClientError, else the exception's class name (for messages and logs)."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "ClientError"))
    return type(error).__name__


def transient_kind(error: BaseException) -> TransientKind | None:
    """`rejected` (nothing happened), `ambiguous` (it may have happened) or None (not worth repeating)."""
    if isinstance(error, ConnectionError | HTTPClientError):
        return "ambiguous"
    if not isinstance(error, ClientError):
        return None
    code = error_code(error)
    if code in THROTTLING_CODES:
        return "rejected"
    if code in SERVER_ERROR_CODES or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
        return "ambiguous"
    return None


def is_transient(error: BaseException) -> bool:
    """Whether the same call may succeed if made again shortly."""
    return transient_kind(error) is not None


def backoff_delay(attempt: int) -> float:
    """Full-jitter exponential backoff after the `attempt`-th failure (1-based): at most 0.04, 0.08, ... 1 s, so
    that competing callers spread out."""
    return random.uniform(0, min(1.0, 0.02 * 2**attempt))


def sleep(seconds: float) -> None:
    """The backoff pause: `time.sleep`, looked up at each call so that a test can record the delays."""
    time.sleep(seconds)


def with_retries[T](
    call: Callable[[], T], *, max_attempts: int = DEFAULT_ATTEMPTS, sleep: Callable[[float], None] = sleep
) -> T:
    """`call()`, repeated after transient failures (at most `max_attempts` calls); the last error is raised."""
    for attempt in range(1, max_attempts + 1):
        try:
            return call()
        except (ClientError, BotoCoreError) as error:
            if attempt == max_attempts or not is_transient(error):
                raise
            sleep(backoff_delay(attempt))
    raise AssertionError("unreachable")  # the loop returns or raises
