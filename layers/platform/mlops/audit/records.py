"""What the audit trail holds: events as callers report them, sealed into hash-chained records.

Every record carries the SHA-256 of the record before it in its chain, so changing, removing or moving any record
breaks the chain from that point on (`mlops.audit.verification`); a periodic digest in S3 pins a chain's newest
hash (`mlops.audit.digests`), so even a consistent rewrite of a whole tail (hashes recomputed) is caught.

A record's hash is the SHA-256 of its canonical JSON (`mlops.core.canonical_json`: keys sorted, no whitespace,
UTF-8 as is) without `record_hash` itself; the first record of a chain links to `GENESIS_HASH`.

Entities are ids (`model:churn/v3`, `customer:C00011`), never personal data, and `details` should hold hashes of
inputs rather than raw features: the trail is append-only, so nothing written to it can be erased later.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from mlops.core.canonical_json import canonical_dumps
from mlops.core.clock import normalize_timestamp, utc_now

GENESIS_HASH = "0" * 64  # previous_hash of a chain's first record
MAX_EVENT_BYTES = 64 * 1024  # keeps a record far below DynamoDB's 400 KB item limit
HEX64 = r"^[0-9a-f]{64}$"
ENTITY_PATTERN = r"^[a-z][a-z0-9_]*:[!-~]+$"  # printable ASCII: fits a GSI key (2 KB) and resists look-alikes


class AuditEventType(StrEnum):
    PREDICTION = "prediction"
    EXPLANATION = "explanation"
    BATCH_SCORING = "batch_scoring"
    MODEL_REGISTERED = "model_registered"
    MODEL_APPROVED = "model_approved"
    MODEL_REJECTED = "model_rejected"
    MODEL_DEPLOYED = "model_deployed"
    MODEL_ROLLED_BACK = "model_rolled_back"
    EXPERIMENT_CREATED = "experiment_created"
    EXPERIMENT_STOPPED = "experiment_stopped"
    EXPERIMENT_CHANGED = "experiment_changed"
    FEATURE_DELETION = "feature_deletion"
    PILOT_RUN = "pilot_run"
    AUDIT_DIGEST = "audit_digest"


class AuditEvent(BaseModel):
    """Something that happened, as the caller reports it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: AuditEventType
    entity: str = Field(max_length=1024, pattern=ENTITY_PATTERN, description="`<kind>:<id>`, never personal data")
    actor: str = Field(min_length=1, max_length=256, description="who or what did it (user, function, pipeline)")
    details: dict[str, JsonValue] = Field(default_factory=dict, description="hashes and ids, not raw features")
    occurred_at: str = Field(default_factory=utc_now, description="ISO-8601, stored in UTC with milliseconds")
    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=64)

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _utc_timestamp(cls, value: Any) -> str:
        return normalize_timestamp(value)

    @model_validator(mode="after")
    def _json_safe_and_small(self) -> AuditEvent:
        # NaN/Infinity are not JSON and lone surrogates are not UTF-8: either would make the hash unreproducible.
        size = len(canonical_dumps(self.model_dump(mode="json")).encode("utf-8"))
        if size > MAX_EVENT_BYTES:
            raise ValueError(f"an audit event may hold at most {MAX_EVENT_BYTES} bytes of JSON, not {size}")
        return self


class AuditRecord(BaseModel):
    """An event sealed into a chain: its position, the hash of the record before it, and its own hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain: str
    sequence: int = Field(ge=1)
    event: AuditEvent
    recorded_at: str = Field(description="when the trail appended it (the trail's clock), ISO-8601 UTC")
    previous_hash: str = Field(pattern=HEX64)
    record_hash: str = Field(pattern=HEX64, description="SHA-256 of canonical_json(record)")


def canonical_json(record: AuditRecord | Mapping[str, Any]) -> str:
    """The text that is hashed: every field except `record_hash`, keys sorted, no whitespace, UTF-8 as is."""
    payload = record.model_dump(mode="json") if isinstance(record, BaseModel) else dict(record)
    payload.pop("record_hash", None)
    return canonical_dumps(payload)


def compute_hash(record: AuditRecord | Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the record's canonical JSON encoded as UTF-8."""
    return hashlib.sha256(canonical_json(record).encode("utf-8")).hexdigest()


def seal(chain: str, sequence: int, event: AuditEvent, recorded_at: str, previous_hash: str) -> AuditRecord:
    """The record of `event` at `sequence` of `chain`, linked to `previous_hash`, with its own hash."""
    fields: dict[str, Any] = {
        "chain": chain,
        "sequence": sequence,
        "event": event.model_dump(mode="json"),
        "recorded_at": recorded_at,
        "previous_hash": previous_hash,
    }
    return AuditRecord.model_validate({**fields, "record_hash": compute_hash(fields)})
