"""The platform's clock: the current time in UTC, and the one text form in which timestamps are stored.

Stored timestamps are ISO-8601 in UTC with milliseconds and a `Z` (`2026-11-01T12:00:00.000Z`): fixed width, so
the strings sort in time order. Code whose time a test must control takes a `clock` argument (epoch seconds,
`time.time` by default) and writes its readings with `timestamp_at`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def utc(moment: dt.datetime | None = None) -> dt.datetime:
    """`moment` (default: now) in UTC; a naive `moment` is taken as local time, as `astimezone` does."""
    return (moment or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)


def format_timestamp(moment: dt.datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a `Z`: fixed width, so strings sort in time order."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must carry a time zone")
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def normalize_timestamp(value: Any) -> str:
    """An ISO-8601 string or an aware datetime, as `format_timestamp` writes it (ValueError for anything else)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise ValueError("must be an ISO-8601 timestamp")
    return format_timestamp(value)


def timestamp_at(epoch_seconds: float) -> str:
    """A clock reading (seconds since the epoch) as a stored timestamp."""
    return format_timestamp(dt.datetime.fromtimestamp(epoch_seconds, tz=dt.UTC))


def utc_now() -> str:
    """Now, as a stored timestamp."""
    return format_timestamp(utc())
