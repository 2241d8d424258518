"""Canonical JSON: the one text form of a value that is hashed (audit records, digests, a prediction's inputs).

Keys sorted, no whitespace, non-ASCII characters as they are (hashed as UTF-8), so that the same value always
gives the same bytes and anyone can recompute a hash from the documented format.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def canonical_dumps(value: Any, *, allow_nan: bool = False, default: Callable[[Any], Any] | None = None) -> str:
    """`value` as canonical JSON. NaN and infinities are refused unless `allow_nan` (they are not JSON); `default`
    turns values JSON does not know into ones it does (as `json.dumps`'s `default`)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan, default=default
    )
