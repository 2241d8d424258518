"""Deterministic assignment of units to variants by salted hashing (no numpy, no scipy: the scoring path).

bucket = first 8 bytes of SHA-256("<salt>:<unit id>") modulo 10,000. Each variant owns a contiguous range
of buckets proportional to its weight, so:
- a unit always gets the same variant of an experiment (no state to store or look up);
- each experiment has its own salt, so a unit's variants in two experiments are independent;
- over many units, each variant's share approaches its weight (to 1/10,000).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence

BUCKETS = 10_000


def bucket_of(salt: str, unit_id: str) -> int:
    digest = hashlib.sha256(f"{salt}:{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def bucket_boundaries(weights: Sequence[float]) -> list[int]:
    """Exclusive upper bucket of each variant: cumulative weights x 10,000, rounded, the last one exactly 10,000."""
    boundaries, cumulative = [], 0.0
    for weight in weights:
        cumulative += weight
        boundaries.append(min(BUCKETS, round(cumulative * BUCKETS)))
    boundaries[-1] = BUCKETS
    return boundaries


class Assigner:
    """Assigns unit ids to the variants of one experiment."""

    def __init__(self, salt: str, variant_names: Sequence[str], weights: Sequence[float]) -> None:
        if len(variant_names) != len(weights) or not variant_names:
            raise ValueError("one weight per variant, at least one variant")
        self.salt = salt
        self.variant_names = list(variant_names)
        self._boundaries = bucket_boundaries(weights)

    def bucket(self, unit_id: str) -> int:
        return bucket_of(self.salt, unit_id)

    def variant_of_bucket(self, bucket: int) -> str:
        return self.variant_names[bisect.bisect_right(self._boundaries, bucket)]

    def assign(self, unit_id: str) -> str:
        return self.variant_of_bucket(self.bucket(unit_id))
