"""Where a chain stops being intact: the kinds of break, and the walk over its records that finds the first one.

Used both to verify a chain (`mlops.audit.verification`) and to refuse a digest of a broken one
(`mlops.audit.digests`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from mlops.audit.records import GENESIS_HASH, AuditRecord, compute_hash
from mlops.audit.table import ChainTable, Head, Marker, index_attributes, item_sort_key, position, record_attributes


class BreakReason(StrEnum):
    MODIFIED = "modified"  # content no longer matches its hash, or no longer links to the record before it
    MISSING = "missing"  # a sequence the chain (or its head, or a digest) vouches for has no record
    REORDERED = "reordered"  # an intact record stored at another position (or chain) than its own
    HEAD_MISMATCH = "head_mismatch"  # the head item disagrees with the record at its sequence
    DIGEST_MISMATCH = "digest_mismatch"  # a digest in S3 was altered, removed from the middle, or is malformed
    DIGEST_MISSING = "digest_missing"  # a digest the trail recorded is no longer in S3 (the newest ones deleted)
    UNREGISTERED = "unregistered"  # a chain with records or digests is missing from the chain registry


class BrokenLink(BaseModel):
    sequence: int = Field(ge=0, description="position at which verification first failed")
    reason: BreakReason
    detail: str


class ChainWalker:
    """Checks records one by one in key order, remembering the last good sequence and hash."""

    def __init__(self, chain: str, last_sequence: int = 0, previous_hash: str = GENESIS_HASH) -> None:
        self.chain = chain
        self.last_sequence = last_sequence
        self.previous_hash = previous_hash
        self.checked = 0
        self.last_event_id: str | None = None  # the event of the last good record

    def sealed(self) -> tuple[str, Marker]:
        """The last good record's event, and where and how it sits in the chain (to compare with its marker)."""
        marker = Marker(chain=self.chain, sequence=self.last_sequence, record_hash=self.previous_hash)
        return str(self.last_event_id), marker

    def check(self, item: Mapping[str, Any]) -> BrokenLink | None:
        expected = self.last_sequence + 1
        at = position(item)
        if at is None:
            return BrokenLink(
                sequence=expected, reason=BreakReason.MODIFIED, detail=f"malformed key {item_sort_key(item)!r}"
            )
        if at > expected:
            return BrokenLink(
                sequence=expected,
                reason=BreakReason.MISSING,
                detail=f"no record at sequences {expected}..{at - 1}",
            )
        self.checked += 1
        try:
            document = json.loads(item["document"]["S"])
            record = AuditRecord.model_validate(document)
        except (KeyError, TypeError, ValueError) as error:  # pydantic's ValidationError is a ValueError
            return _broken(at, BreakReason.MODIFIED, f"document is not a valid record ({type(error).__name__})")
        if compute_hash(document) != record.record_hash:
            return _broken(at, BreakReason.MODIFIED, "content no longer matches its record_hash")
        if record.chain != self.chain or record.sequence != at:
            return _broken(
                at,
                BreakReason.REORDERED,
                f"holds the intact record {record.sequence} of chain {record.chain!r}",
            )
        if record.previous_hash != self.previous_hash:
            # Both records are self-consistent, so someone recomputed a hash: either record position-1 was
            # rewritten, or this one was, or records between them were removed and the rest renumbered.
            return _broken(
                at,
                BreakReason.MODIFIED,
                f"previous_hash does not match record {at - 1}; one of them was rewritten with a new hash",
            )
        if index_attributes(item) != index_attributes(record_attributes(record)):
            return _broken(at, BreakReason.MODIFIED, "top-level attributes disagree with the document")
        self.last_sequence = at
        self.previous_hash = record.record_hash
        self.last_event_id = record.event.event_id
        return None


def marker_break(chain: ChainTable, sealed: list[tuple[str, Marker]]) -> BrokenLink | None:
    """The first record that is not where, or not what, the writer recorded with its event when it appended it:
    a tail rewritten consistently after the last digest (hashes recomputed, head moved) is caught here."""
    markers = chain.event_markers([event_id for event_id, _ in sealed])
    for event_id, found in sealed:
        marker = markers.get(event_id)
        if marker is None:
            return BrokenLink(
                sequence=found.sequence,
                reason=BreakReason.MODIFIED,
                detail=f"record {found.sequence}: its event {event_id} was never recorded by the audit writer",
            )
        if marker != found:
            return BrokenLink(
                sequence=found.sequence,
                reason=BreakReason.MODIFIED,
                detail=f"record {found.sequence}: the writer sealed event {event_id} as record {marker.sequence} of "
                f"{marker.chain} with another hash; the record was rewritten",
            )
    return None


def _broken(sequence: int, reason: BreakReason, detail: str) -> BrokenLink:
    return BrokenLink(sequence=sequence, reason=reason, detail=f"record {sequence}: {detail}")


def head_break(head: Head | None, last_sequence: int, hashes_at: Mapping[int, str]) -> BrokenLink | None:
    """The head may lag behind the records (best-effort updates), but not run ahead or disagree with them."""
    if head is None:
        return None
    if head.sequence > last_sequence:
        missing = last_sequence + 1
        return BrokenLink(
            sequence=missing,
            reason=BreakReason.MISSING,
            detail=f"the head is at {head.sequence} but records {missing}..{head.sequence} are gone",
        )
    if hashes_at.get(head.sequence) != head.record_hash:
        return BrokenLink(
            sequence=head.sequence,
            reason=BreakReason.HEAD_MISMATCH,
            detail=f"the head's hash is not record {head.sequence}'s",
        )
    return None
