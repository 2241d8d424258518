"""Audit events and records: what an event may hold, and the pinned hash of a record's canonical JSON."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from pydantic import ValidationError

from audit_helpers import T0, TABLE, stored_document
from mlops.audit.records import AuditEvent, canonical_json, compute_hash
from mlops.audit.trail import AuditTrail

# The hash of the reference event below. It must never change: chains already written would stop verifying.
PINNED_HASH = "86c5507e0a9e86d51b5a9f6df5cfb2bb714d8bb26052eea523f7005634df1760"


def test_the_record_hash_is_the_sha256_of_the_canonical_json(aws: dict[str, Any]) -> None:
    # Given a known event with a non-ASCII detail, appended first at a known time
    known = AuditEvent(
        event_type="prediction",
        entity="customer:C00011",
        actor="function:score",
        details={"features_sha256": "ab" * 32, "probability": 0.25, "région": "Île-de-France", "flags": [1, True]},
        occurred_at="2026-11-01T13:00:00+01:00",
        event_id="e-1",
    )
    trail = AuditTrail(TABLE, aws["dynamodb"], clock=lambda: T0.timestamp())
    record = trail.append(known)
    # When the hash is computed independently from the documented format
    payload = {
        "chain": "main",
        "sequence": 1,
        "event": {
            "event_type": "prediction",
            "entity": "customer:C00011",
            "actor": "function:score",
            "details": {
                "features_sha256": "ab" * 32,
                "probability": 0.25,
                "région": "Île-de-France",
                "flags": [1, True],
            },
            "occurred_at": "2026-11-01T12:00:00.000Z",  # normalized to UTC, milliseconds, Z
            "event_id": "e-1",
        },
        "recorded_at": "2026-11-01T12:00:00.000Z",
        "previous_hash": "0" * 64,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Then it is the record's hash, and it is pinned so the format cannot drift unnoticed
    assert canonical_json(record) == text
    assert "région" in text  # UTF-8 as is, not \u escapes
    assert record.record_hash == hashlib.sha256(text.encode("utf-8")).hexdigest() == PINNED_HASH
    # And the stored document hashes the same whatever the key order it is read with
    document = stored_document(aws["dynamodb"], 1)
    assert compute_hash(dict(reversed(list(document.items())))) == record.record_hash


@pytest.mark.parametrize(
    "changes",
    [
        {"details": {"score": float("nan")}},
        {"details": {"blob": "x" * 70_000}},
        {"occurred_at": "2026-11-01T12:00:00"},  # no time zone
        {"entity": "Jane Doe, 12 Main Street"},  # an id, not personal data
        {"actor": ""},
        {"ip_address": "10.0.0.1"},  # unknown field
    ],
)
def test_events_that_cannot_be_hashed_reproducibly_are_refused(changes: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"event_type": "prediction", "entity": "customer:C1", "actor": "function:score"}
    with pytest.raises(ValidationError):
        AuditEvent(**{**fields, **changes})
