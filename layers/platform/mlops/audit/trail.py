"""Tamper-evident audit trail: append-only, hash-chained logs on DynamoDB with periodic digests in S3.

Every record carries the SHA-256 of the record before it in its chain, so changing, removing or moving any record
breaks the chain from that point on; a periodic digest in S3 (like CloudTrail log-file integrity validation) pins
a chain's newest hash at that moment, so even a consistent rewrite of a whole tail (hashes recomputed) is caught.

Chains. A table holds any number of independent chains. Give every writer its own chain - `writer_chain("scoring")`
once per Lambda execution environment - so concurrent containers never contend for the same sequence numbers; a
chain may still have several writers (they then take turns, see "Appending"). Each chain registers itself once
(before its first record) in the chain registry, so `AuditTrail.chains` lists them with one Query and
`verify_chains` checks them all.

Item layout (one table, it may be shared; string keys `pk`, `sk`):
- record: `pk = AUDIT#<chain>`, `sk = SEQ#<sequence, 12 digits>`. Its whole content is the canonical JSON
  `document` (the only thing that is hashed and verified). Copies for filtering, checked against the document by
  verify: `event_type`, `entity`, `occurred_at`, `sequence`, and the GSI keys `type_pk = TYPE#<event_type>`,
  `entity_pk = ENTITY#<entity>` and `day_pk = DAY#<YYYY-MM-DD of occurred_at>`.
- head: `pk = AUDIT#<chain>`, `sk = HEAD`, with `sequence`, `record_hash` and `updated_at` of the newest record
  (as far as the writers got to tell it: a hint, see below).
- registry: `pk = AUDIT_CHAINS`, `sk = <chain>`, with `chain` and `registered_at`.

Indexes (`AUDIT_TABLE_INDEXES`; string keys, projection ALL - `document` is all the queries read):
`by_type` (HASH `type_pk`, RANGE `occurred_at`), `by_entity` (HASH `entity_pk`, RANGE `occurred_at`) and
`by_day` (HASH `day_pk`, RANGE `occurred_at`). Only records carry these attributes, so heads and registry items
stay out of the indexes. Each index key value (one event type, one entity, one day) takes every matching record
of every chain: a GSI partition sustains about 1,000 writes per second, far above the platform's audit volume;
beyond that, shard `day_pk`/`type_pk` and merge the shards when reading.

Appending: the sequence slot is the lock. A writer seals the next record from the newest record it knows
(sequence n+1, previous_hash = hash of n) and writes it with one PutItem conditioned on the slot being free. If
another writer took the slot, it reads the chain's newest record (a Query, newest first, Limit 1), re-seals
after it and tries again (bounded, jittered backoff). A slot is written once and slot n+1 only after slot n, so a
chain can neither fork nor get a gap, and no transaction is needed. After the records, the head item is moved
forward best-effort (an UpdateItem that never moves it back); a failed head update does not fail the append.
A trail object caches the newest record it knows: a fresh object learns it from the records, never from the head.

Verification (`AuditTrail.verify`, `verify_chains`): the records are the truth, the head is a hint that may lag
behind (a failed head update, or records appended while verifying), never run ahead. A head beyond the newest
record shows a truncated tail; a head disagreeing with the record at its sequence shows tampering. Because head
updates are best-effort, a truncation right after an append whose head update failed is only caught by the next
digest (and one whose head was rolled back consistently, only by a digest written before it).

Queries (`query_audit`) read the GSIs across all chains, oldest `occurred_at` first: by entity through
`by_entity` (with a filter on the event type if both are given), by event type through `by_type`, otherwise
day by day through `by_day`. GSIs are eventually consistent: a record shows up in queries shortly after its append.

Entities are ids (`model:churn/v3`, `customer:C00011`), never personal data, and `details` should hold hashes of
inputs rather than raw features: the trail is append-only, so nothing written to it can be erased later.

Only boto3 and pydantic: the module goes into a small layer used by the online handler.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from mlops.core.errors import AuditIntegrityError, AuditUnavailableError, InvalidRequestError

GENESIS_HASH = "0" * 64  # previous_hash of a chain's first record
DEFAULT_DIGEST_PREFIX = "audit-digests"
CHAIN_REGISTRY_PK = "AUDIT_CHAINS"
BY_TYPE_INDEX = "by_type"
BY_ENTITY_INDEX = "by_entity"
BY_DAY_INDEX = "by_day"
# The global secondary indexes a template must declare on the audit table: name -> (HASH, RANGE) attribute,
# both of type S, projection ALL.
AUDIT_TABLE_INDEXES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        BY_TYPE_INDEX: ("type_pk", "occurred_at"),
        BY_ENTITY_INDEX: ("entity_pk", "occurred_at"),
        BY_DAY_INDEX: ("day_pk", "occurred_at"),
    }
)
MAX_EVENT_BYTES = 64 * 1024  # keeps a record far below DynamoDB's 400 KB item limit
MAX_QUERY_LIMIT = 1000
DEFAULT_QUERY_DAYS = 7  # what query_audit reads without event_type, entity or since
MAX_QUERY_DAYS = 366  # the longest span query_audit reads day by day

_LOG = logging.getLogger(__name__)
_HEAD_SK = "HEAD"
_SEQ_PREFIX = "SEQ#"
_SEQ_DIGITS = 12
_HEX64 = r"^[0-9a-f]{64}$"
_ENTITY_PATTERN = r"^[a-z][a-z0-9_]*:[!-~]+$"  # printable ASCII: fits a GSI key (2 KB) and resists look-alikes
_CHAIN_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_WRITER_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,51}")  # leaves room for "-" and 12 hex digits
_MAX_REQUESTS_PER_PAGE = 50  # DynamoDB requests one query page may make (e.g. over many empty days)
_CONDITION_FAILED = "ConditionalCheckFailedException"

# Codes of ClientErrors that mean DynamoDB rejected the request without doing anything.
_REJECTED_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "LimitExceededException"}
)
# Codes after which the request may or may not have been applied.
_AMBIGUOUS_CODES = frozenset({"InternalServerError", "ServiceUnavailable"})


def _sleep(seconds: float) -> None:
    """The default backoff sleep; `time.sleep` is looked up at call time, so a test can record the delays."""
    time.sleep(seconds)


class AuditEventType(StrEnum):
    PREDICTION = "prediction"
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


def format_timestamp(moment: dt.datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a `Z`: fixed width, so strings sort in time order."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must carry a time zone")
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    return format_timestamp(dt.datetime.now(dt.UTC))


def _normalize_timestamp(value: Any) -> str:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise ValueError("must be an ISO-8601 timestamp")
    return format_timestamp(value)


def _dumps(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def writer_chain(prefix: str) -> str:
    """A new chain name, `<prefix>-<12 hex digits>`: one chain per execution environment, so concurrent Lambda
    containers never contend. Call it once per process (at module level of a handler), not once per request."""
    if not isinstance(prefix, str) or not _WRITER_PREFIX_PATTERN.fullmatch(prefix):
        raise InvalidRequestError(field="prefix", message="a chain prefix is 1-51 letters, digits, '_', '.' or '-'")
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class AuditEvent(BaseModel):
    """Something that happened, as the caller reports it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: AuditEventType
    entity: str = Field(max_length=1024, pattern=_ENTITY_PATTERN, description="`<kind>:<id>`, never personal data")
    actor: str = Field(min_length=1, max_length=256, description="who or what did it (user, function, pipeline)")
    details: dict[str, JsonValue] = Field(default_factory=dict, description="hashes and ids, not raw features")
    occurred_at: str = Field(default_factory=utc_now, description="ISO-8601, stored in UTC with milliseconds")
    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=64)

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _utc_timestamp(cls, value: Any) -> str:
        return _normalize_timestamp(value)

    @model_validator(mode="after")
    def _json_safe_and_small(self) -> AuditEvent:
        # NaN/Infinity are not JSON and lone surrogates are not UTF-8: either would make the hash unreproducible.
        size = len(_dumps(self.model_dump(mode="json")).encode("utf-8"))
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
    previous_hash: str = Field(pattern=_HEX64)
    record_hash: str = Field(pattern=_HEX64, description="SHA-256 of canonical_json(record)")


def canonical_json(record: AuditRecord | Mapping[str, Any]) -> str:
    """The text that is hashed: every field except `record_hash`, keys sorted, no whitespace, UTF-8 as is."""
    payload = record.model_dump(mode="json") if isinstance(record, BaseModel) else dict(record)
    payload.pop("record_hash", None)
    return _dumps(payload)


def compute_hash(record: AuditRecord | Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the record's canonical JSON encoded as UTF-8."""
    return hashlib.sha256(canonical_json(record).encode("utf-8")).hexdigest()


def _seal(chain: str, sequence: int, event: AuditEvent, recorded_at: str, previous_hash: str) -> AuditRecord:
    fields: dict[str, Any] = {
        "chain": chain,
        "sequence": sequence,
        "event": event.model_dump(mode="json"),
        "recorded_at": recorded_at,
        "previous_hash": previous_hash,
    }
    return AuditRecord.model_validate({**fields, "record_hash": compute_hash(fields)})


class AuditPage(BaseModel):
    records: list[AuditRecord]
    next_page_token: str | None = None


class BreakReason(StrEnum):
    MODIFIED = "modified"  # content no longer matches its hash, or no longer links to the record before it
    MISSING = "missing"  # a sequence the chain (or its head, or a digest) vouches for has no record
    REORDERED = "reordered"  # an intact record stored at another position (or chain) than its own
    HEAD_MISMATCH = "head_mismatch"  # the head item disagrees with the record at its sequence
    DIGEST_MISMATCH = "digest_mismatch"  # a digest in S3 was altered, removed from the middle, or is malformed
    UNREGISTERED = "unregistered"  # a chain with records or digests is missing from the chain registry


class BrokenLink(BaseModel):
    sequence: int = Field(ge=0, description="position at which verification first failed")
    reason: BreakReason
    detail: str


class ChainBreak(BrokenLink):
    chain: str


class ChainVerification(BaseModel):
    chain: str
    valid: bool
    records_checked: int
    last_sequence: int = Field(default=0, description="the newest record checked (0 for an empty chain)")
    head_sequence: int = Field(description="the head item's sequence; 0 when the chain has no head item")
    digests_checked: int = 0
    first_broken: BrokenLink | None = None


class AuditVerification(BaseModel):
    """Every chain of a table, verified; `first_broken` is the first break of the first broken chain."""

    valid: bool
    chains: list[ChainVerification]
    records_checked: int
    first_broken: ChainBreak | None = None


class AuditDigest(BaseModel):
    """What a digest file attests: a chain's newest record at one moment, chained to the digest before it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain: str
    first_sequence: int = Field(ge=1)
    last_sequence: int = Field(ge=1)
    head_hash: str = Field(pattern=_HEX64)
    created_at: str
    previous_digest_key: str | None
    previous_digest_sha256: str | None
    records_since_previous: int = Field(ge=1)


class DigestRef(BaseModel):
    bucket: str
    key: str
    sha256: str = Field(description="SHA-256 of the digest object's bytes")
    digest: AuditDigest


class _Head(BaseModel):
    model_config = ConfigDict(frozen=True)

    sequence: int
    record_hash: str


_EMPTY_HEAD = _Head(sequence=0, record_hash=GENESIS_HASH)


class _Dynamo:
    """A DynamoDB client whose calls are retried on transient failures (`max_attempts`, jittered backoff)."""

    def __init__(self, client: Any, max_attempts: int, sleep: Callable[[float], None]) -> None:
        self.client = client
        self.max_attempts = max(1, max_attempts)
        self.sleep = sleep

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """For reads and for writes that are safe to repeat (a conditional put whose repeat fails harmlessly)."""
        method = getattr(self.client, operation)
        for attempt in range(1, self.max_attempts + 1):
            try:
                return method(**kwargs)
            except (ClientError, BotoCoreError) as error:
                if _transient_kind(error) is None:
                    raise
                if attempt == self.max_attempts:
                    raise AuditUnavailableError(
                        field="audit_trail",
                        message=f"DynamoDB {operation} failed {attempt} times ({_error_code(error)})",
                    ) from error
                self.sleep(_backoff(attempt))
        raise AssertionError("unreachable")  # the loop returns or raises


class _ChainWalker:
    """Checks records one by one in key order, remembering the last good sequence and hash."""

    def __init__(self, chain: str, last_sequence: int = 0, previous_hash: str = GENESIS_HASH) -> None:
        self.chain = chain
        self.last_sequence = last_sequence
        self.previous_hash = previous_hash
        self.checked = 0

    def check(self, item: Mapping[str, Any]) -> BrokenLink | None:
        expected = self.last_sequence + 1
        position = _position(item)
        if position is None:
            return BrokenLink(sequence=expected, reason=BreakReason.MODIFIED, detail=f"malformed key {_sk(item)!r}")
        if position > expected:
            return BrokenLink(
                sequence=expected,
                reason=BreakReason.MISSING,
                detail=f"no record at sequences {expected}..{position - 1}",
            )
        self.checked += 1
        try:
            document = json.loads(item["document"]["S"])
            record = AuditRecord.model_validate(document)
        except (KeyError, TypeError, ValueError) as error:  # pydantic's ValidationError is a ValueError
            return _broken(position, BreakReason.MODIFIED, f"document is not a valid record ({type(error).__name__})")
        if compute_hash(document) != record.record_hash:
            return _broken(position, BreakReason.MODIFIED, "content no longer matches its record_hash")
        if record.chain != self.chain or record.sequence != position:
            return _broken(
                position,
                BreakReason.REORDERED,
                f"holds the intact record {record.sequence} of chain {record.chain!r}",
            )
        if record.previous_hash != self.previous_hash:
            # Both records are self-consistent, so someone recomputed a hash: either record position-1 was
            # rewritten, or this one was, or records between them were removed and the rest renumbered.
            return _broken(
                position,
                BreakReason.MODIFIED,
                f"previous_hash does not match record {position - 1}; one of them was rewritten with a new hash",
            )
        if _index_attributes(item) != _index_attributes(_record_item(record)):
            return _broken(position, BreakReason.MODIFIED, "top-level attributes disagree with the document")
        self.last_sequence = position
        self.previous_hash = record.record_hash
        return None


def _broken(sequence: int, reason: BreakReason, detail: str) -> BrokenLink:
    return BrokenLink(sequence=sequence, reason=reason, detail=f"record {sequence}: {detail}")


class AuditTrail:
    """One hash chain of audit records on DynamoDB.

    `dynamodb_client` is a low-level boto3 client; create it with botocore's standard retry mode so that
    throttling is first retried inside botocore. On top of that, transient failures are retried here
    (`max_attempts` times, jittered exponential backoff) before `AuditUnavailableError` is raised; so is a slot
    taken by another writer of the same chain (`max_attempts` times). Not thread-safe: one object per thread.
    """

    def __init__(
        self,
        table_name: str,
        dynamodb_client: Any,
        chain: str = "main",
        clock: Callable[[], float] = time.time,
        *,
        max_attempts: int = 5,
        sleep: Callable[[float], None] = _sleep,
    ) -> None:
        if not isinstance(chain, str) or not _CHAIN_PATTERN.fullmatch(chain):
            raise InvalidRequestError(field="chain", message="a chain name is 1-64 letters, digits, '_', '.' or '-'")
        self.table_name = table_name
        self.chain = chain
        self._ddb = dynamodb_client
        self._dynamo = _Dynamo(dynamodb_client, max_attempts, sleep)
        self._clock = clock
        self._max_attempts = max(1, max_attempts)
        self._sleep = sleep
        self._pk = f"AUDIT#{chain}"
        self._known_head: _Head | None = None  # the newest record this object knows: saves a read per append
        self._registered = False  # whether this object saw the chain in the registry

    @staticmethod
    def chains(
        table_name: str, dynamodb_client: Any, *, max_attempts: int = 5, sleep: Callable[[float], None] = _sleep
    ) -> list[str]:
        """Every chain registered in the table, sorted by name (one Query, paginated)."""
        dynamo = _Dynamo(dynamodb_client, max_attempts, sleep)
        request = {
            "TableName": table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": CHAIN_REGISTRY_PK}},
            "ProjectionExpression": "sk",
            "ConsistentRead": True,
        }
        chains: list[str] = []
        start_key: dict[str, Any] | None = None
        while True:
            response = dynamo.call("query", **request, **_start(start_key))
            chains.extend(_sk(item) for item in response.get("Items", []))
            start_key = response.get("LastEvaluatedKey")
            if start_key is None:
                return sorted(chain for chain in chains if _CHAIN_PATTERN.fullmatch(chain))

    # ------------------------------------------------------------------ appending
    def append(self, event: AuditEvent) -> AuditRecord:
        """Seal one event into the chain and store it (one conditional PutItem); returns the stored record."""
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Seal events into the chain in the given order, one conditional PutItem each, and return the records.

        Not atomic: each record links to the one before it and slot n+1 is only written once slot n is, so a
        failure midway leaves a valid prefix (no gap), and the error says how many events were appended. Other
        writers of the same chain may interleave their records with these. The head item is moved once, after
        the last record appended.
        """
        events = list(events)
        if not events:
            return []
        self._register()
        appended: list[AuditRecord] = []
        try:
            for event in events:
                appended.append(self._append_one(event))
        except AuditUnavailableError as error:
            if not appended:
                raise
            raise AuditUnavailableError(
                field=error.field,
                message=f"{error.message} ({len(appended)} of {len(events)} events were already appended)",
            ) from error
        finally:
            if appended:
                self._advance_head(appended[-1])
        return appended

    def _append_one(self, event: AuditEvent) -> AuditRecord:
        head = self._known_head or self._read_latest()
        record = _seal(self.chain, head.sequence + 1, event, self._now(), head.record_hash)
        failures = conflicts = 0
        ambiguous = False  # an attempt at this slot may have been applied although its response was lost
        while True:
            try:
                self._ddb.put_item(
                    TableName=self.table_name,
                    Item=self._item(record),
                    ConditionExpression="attribute_not_exists(pk)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                break
            except (ClientError, BotoCoreError) as error:
                if _error_code(error) == _CONDITION_FAILED:
                    if self._slot_holds(record, error):
                        break  # our own earlier attempt, whose response was lost: appending again would duplicate
                    conflicts += 1  # another writer took the slot (so no earlier attempt of ours landed)
                    if conflicts == self._max_attempts:
                        raise AuditUnavailableError(
                            field="audit_trail",
                            message=f"chain {self.chain} kept moving under {conflicts} attempts to append; "
                            "the event was not appended",
                        ) from None
                    self._sleep(_backoff(conflicts))
                    head = self._read_latest()
                    record = _seal(self.chain, head.sequence + 1, event, self._now(), head.record_hash)
                    failures, ambiguous = 0, False
                    continue
                kind = _transient_kind(error)
                if kind is None:
                    raise
                failures += 1
                ambiguous = ambiguous or kind == "ambiguous"
                if failures == self._max_attempts:
                    outcome = "may or may not have been appended" if ambiguous else "was not appended"
                    raise AuditUnavailableError(
                        field="audit_trail",
                        message=f"DynamoDB failed {failures} times ({_error_code(error)}); the event {outcome}",
                    ) from error
                self._sleep(_backoff(failures))
        self._known_head = _Head(sequence=record.sequence, record_hash=record.record_hash)
        return record

    def _slot_holds(self, record: AuditRecord, error: BaseException) -> bool:
        """Whether the slot the record was meant for already holds exactly this record."""
        item = error.response.get("Item") if isinstance(error, ClientError) else None
        if item is None:  # older endpoints do not return the item that failed the condition
            key = self._key(_sk_of(record.sequence))
            item = self._dynamo.call("get_item", TableName=self.table_name, Key=key, ConsistentRead=True).get("Item")
        try:
            return item is not None and AuditRecord.model_validate_json(item["document"]["S"]) == record
        except (KeyError, TypeError, ValueError):
            return False

    def _register(self) -> None:
        """Put the chain in the registry (once; before its first record, so no chain with records is unlisted)."""
        if self._registered:
            return
        try:
            self._dynamo.call(
                "put_item",
                TableName=self.table_name,
                Item={
                    "pk": {"S": CHAIN_REGISTRY_PK},
                    "sk": {"S": self.chain},
                    "chain": {"S": self.chain},
                    "registered_at": {"S": self._now()},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if _error_code(error) != _CONDITION_FAILED:
                raise
        self._registered = True

    def _advance_head(self, record: AuditRecord) -> None:
        """Move the head item to the record unless it is already there or beyond; best-effort."""
        try:
            self._ddb.update_item(
                TableName=self.table_name,
                Key=self._key(_HEAD_SK),
                UpdateExpression="SET #sequence = :n, record_hash = :h, updated_at = :at",
                ConditionExpression="attribute_not_exists(pk) OR #sequence < :n",
                ExpressionAttributeNames={"#sequence": "sequence"},
                ExpressionAttributeValues={
                    ":n": {"N": str(record.sequence)},
                    ":h": {"S": record.record_hash},
                    ":at": {"S": record.recorded_at},
                },
            )
        except (ClientError, BotoCoreError) as error:
            if _error_code(error) != _CONDITION_FAILED:  # else another writer already moved it further
                _LOG.warning(
                    "audit chain %s: the head was not moved to %d (%s); the record itself is stored",
                    self.chain,
                    record.sequence,
                    _error_code(error),
                )

    # ------------------------------------------------------------------ reading
    def head(self) -> tuple[int, str]:
        """The newest record's sequence and hash, read from the records ((0, GENESIS_HASH) for an empty chain)."""
        head = self._read_latest()
        return head.sequence, head.record_hash

    def _read_latest(self) -> _Head:
        """The chain's newest record (one consistent Query, newest first), remembered for the next append."""
        response = self._dynamo.call(
            "query",
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",  # the SEQ# keys verify walks
            ExpressionAttributeValues={
                ":pk": {"S": self._pk},
                ":first": {"S": _sk_of(1)},
                ":last": {"S": _sk_of(10**_SEQ_DIGITS - 1)},
            },
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = response.get("Items", [])
        if not items:
            head = _EMPTY_HEAD
        else:
            item = items[0]
            record = _readable_record(item)
            intact = compute_hash(record) == record.record_hash
            if not intact or _position(item) != record.sequence or record.chain != self.chain:
                raise AuditIntegrityError(
                    field="audit_trail",
                    message=f"the newest record {_sk(item)!r} of chain {self.chain} is not intact; run verify()",
                )
            head = _Head(sequence=record.sequence, record_hash=record.record_hash)
        self._known_head = head
        return head

    def _read_head_item(self) -> _Head | None:
        """The head item (a hint that may lag behind the records), None if there is none."""
        response = self._dynamo.call(
            "get_item", TableName=self.table_name, Key=self._key(_HEAD_SK), ConsistentRead=True
        )
        item = response.get("Item")
        if item is None:
            return None
        try:
            return _Head(sequence=int(item["sequence"]["N"]), record_hash=str(item["record_hash"]["S"]))
        except (KeyError, TypeError, ValueError) as error:
            raise AuditIntegrityError(
                field="audit_trail", message=f"the head of chain {self.chain} is malformed"
            ) from error

    def _is_registered(self) -> bool:
        key = {"pk": {"S": CHAIN_REGISTRY_PK}, "sk": {"S": self.chain}}
        response = self._dynamo.call("get_item", TableName=self.table_name, Key=key, ConsistentRead=True)
        return "Item" in response

    # ------------------------------------------------------------------ verification
    def verify(
        self,
        digest_s3_client: Any = None,
        bucket: str | None = None,
        prefix: str = DEFAULT_DIGEST_PREFIX,
    ) -> ChainVerification:
        """Walk the whole chain and report the first place where it is not intact.

        Checked for each record, in key order (the first failure wins):
        - its key is the next sequence, else `missing` at the first absent sequence;
        - its document is a valid record whose hash matches its content, else `modified`;
        - the document's own chain and sequence are this key's, else `reordered` (an intact record moved);
        - its previous_hash is the previous record's hash, else `modified` (a record was rewritten and rehashed);
        - its top-level attributes (copies used by queries and the GSIs) agree with the document, else `modified`.
        Then the head item, a hint that may lag behind the records but never runs ahead: if it is beyond the
        newest record, the records between are `missing` (a truncated tail); if the record at its sequence has
        another hash, `head_mismatch`. No head item at all is fine (head updates are best-effort).
        With `digest_s3_client` and `bucket`, the digests must be chained to each other (else `digest_mismatch`)
        and the chain must still hold, at each digest's last_sequence, the hash it recorded (else `modified`,
        or `missing` when the chain is now shorter): that catches a tail rewritten or truncated consistently.
        Last, a chain with records must be in the chain registry (else `unregistered`: verify_chains would
        skip it). The head is read first, so records appended during the walk are not mistaken for tampering.
        """
        digests: list[tuple[str, AuditDigest]] = []
        digest_break: BrokenLink | None = None
        if digest_s3_client is not None:
            if bucket is None:
                raise InvalidRequestError(field="bucket", message="needed to check the digests")
            digests, digest_break = self._load_digests(digest_s3_client, bucket, prefix)
        head: _Head | None = None
        head_break: BrokenLink | None = None
        try:
            head = self._read_head_item()
        except AuditIntegrityError as error:
            head_break = BrokenLink(sequence=0, reason=BreakReason.HEAD_MISMATCH, detail=error.message)
        walker = _ChainWalker(self.chain)
        wanted = {digest.last_sequence for _, digest in digests} | ({head.sequence} if head else set())
        hashes_at: dict[int, str] = {}

        def result(broken: BrokenLink | None) -> ChainVerification:
            return ChainVerification(
                chain=self.chain,
                valid=broken is None,
                records_checked=walker.checked,
                last_sequence=walker.last_sequence,
                head_sequence=head.sequence if head else 0,
                digests_checked=len(digests),
                first_broken=broken,
            )

        for item in self._record_items():
            broken = walker.check(item)
            if broken is not None:
                return result(broken)
            if walker.last_sequence in wanted:
                hashes_at[walker.last_sequence] = walker.previous_hash
        broken = (
            head_break
            or _head_break(head, walker.last_sequence, hashes_at)
            or digest_break
            or _digest_break(digests, hashes_at, walker.last_sequence)
        )
        if broken is None and (walker.checked or digests) and not self._is_registered():
            broken = BrokenLink(
                sequence=0,
                reason=BreakReason.UNREGISTERED,
                detail=f"chain {self.chain} holds records or digests but is not in the chain registry",
            )
        return result(broken)

    # ------------------------------------------------------------------ digests
    def write_digest(self, s3_client: Any, bucket: str, prefix: str = DEFAULT_DIGEST_PREFIX) -> DigestRef:
        """Write `<prefix>/<chain>/<last sequence>.json` attesting the newest record, chained to the last digest.

        The record the previous digest attested must still hold its hash, and the records since must be intact
        and link to it, so a digest never vouches for a chain already broken; the head item must not be ahead
        of the records or disagree with them. Nothing new since the last digest: it is returned as is. Digests
        must be written by one scheduled writer; keep the bucket versioned with Object Lock so that digests
        themselves cannot be removed.
        """
        head = self._read_head_item()
        previous = self._latest_digest(s3_client, bucket, prefix)
        items = self._record_items(previous.digest.last_sequence if previous else 1)
        walker = _ChainWalker(self.chain)
        if previous is not None:
            _check_attested(next(items, None), previous, self.chain)
            walker = _ChainWalker(self.chain, previous.digest.last_sequence, previous.digest.head_hash)
        start = walker.last_sequence
        hash_at_head: str | None = None
        for item in items:
            broken = walker.check(item)
            if broken is not None:
                raise AuditIntegrityError(field="chain", message=f"{broken.reason}: {broken.detail}; no digest written")
            if head is not None and walker.last_sequence == head.sequence:
                hash_at_head = walker.previous_hash
        if walker.last_sequence == 0:
            raise InvalidRequestError(field="chain", message=f"chain {self.chain} has no records to digest")
        if head is not None and head.sequence > walker.last_sequence:
            raise AuditIntegrityError(
                field="chain",
                message=f"the head is at {head.sequence} but the records end at {walker.last_sequence}; "
                "no digest written",
            )
        if head is not None and head.sequence > start and hash_at_head != head.record_hash:
            raise AuditIntegrityError(
                field="chain", message=f"the head disagrees with record {head.sequence}; no digest written"
            )
        if previous is not None and walker.last_sequence == previous.digest.last_sequence:
            return previous
        first = start + 1
        digest = AuditDigest(
            chain=self.chain,
            first_sequence=first,
            last_sequence=walker.last_sequence,
            head_hash=walker.previous_hash,
            created_at=self._now(),
            previous_digest_key=previous.key if previous else None,
            previous_digest_sha256=previous.sha256 if previous else None,
            records_since_previous=walker.last_sequence - start,
        )
        body = _dumps(digest.model_dump(mode="json")).encode("utf-8")
        key = _digest_key(prefix, self.chain, digest.last_sequence)
        try:
            s3_client.put_object(
                Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*"
            )  # write-once: a digest is never replaced
        except ClientError as error:
            if _error_code(error) not in {"PreconditionFailed", "ConditionalRequestConflict"}:
                raise
            existing = self._read_digest(s3_client, bucket, key)  # another writer attested the same record
            if existing.digest.head_hash != digest.head_hash:
                raise AuditIntegrityError(field="chain", message=f"digest {key} attests another hash") from error
            return existing
        return DigestRef(bucket=bucket, key=key, sha256=hashlib.sha256(body).hexdigest(), digest=digest)

    def _digest_keys(self, s3_client: Any, bucket: str, prefix: str) -> list[str]:
        folder = f"{prefix}/{self.chain}/"
        keys: list[str] = []
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
            keys.extend(obj["Key"] for obj in page.get("Contents", []) if _digest_sequence(obj["Key"], folder))
        return sorted(keys)  # zero-padded names: lexicographic order is sequence order

    def _latest_digest(self, s3_client: Any, bucket: str, prefix: str) -> DigestRef | None:
        keys = self._digest_keys(s3_client, bucket, prefix)
        return self._read_digest(s3_client, bucket, keys[-1]) if keys else None

    @staticmethod
    def _read_digest(s3_client: Any, bucket: str, key: str) -> DigestRef:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        try:
            digest = AuditDigest.model_validate_json(body)
        except ValueError as error:
            raise AuditIntegrityError(field="digest", message=f"digest {key} is not a valid digest") from error
        return DigestRef(bucket=bucket, key=key, sha256=hashlib.sha256(body).hexdigest(), digest=digest)

    def _load_digests(
        self, s3_client: Any, bucket: str, prefix: str
    ) -> tuple[list[tuple[str, AuditDigest]], BrokenLink | None]:
        """Every digest of the chain, oldest first, with the first break in the chain of digests (if any)."""
        loaded: list[tuple[str, AuditDigest]] = []
        previous: DigestRef | None = None
        for key in self._digest_keys(s3_client, bucket, prefix):
            try:
                ref = self._read_digest(s3_client, bucket, key)
            except AuditIntegrityError as error:
                return loaded, BrokenLink(sequence=0, reason=BreakReason.DIGEST_MISMATCH, detail=error.message)
            digest = ref.digest
            expected_first = previous.digest.last_sequence + 1 if previous else 1
            problem = None
            if key != _digest_key(prefix, self.chain, digest.last_sequence) or digest.chain != self.chain:
                problem = "is not the digest its name says"
            elif digest.previous_digest_key != (previous.key if previous else None):
                problem = f"names {digest.previous_digest_key} as previous digest"
            elif digest.previous_digest_sha256 != (previous.sha256 if previous else None):
                problem = "does not match the previous digest's SHA-256 (that digest was altered)"
            elif digest.first_sequence != expected_first or digest.records_since_previous != (
                digest.last_sequence - digest.first_sequence + 1
            ):
                problem = "does not continue the previous digest's sequences"
            if problem is not None:
                detail = f"digest {key} {problem}"
                return loaded, BrokenLink(
                    sequence=digest.last_sequence, reason=BreakReason.DIGEST_MISMATCH, detail=detail
                )
            loaded.append((key, digest))
            previous = ref
        return loaded, None

    # ------------------------------------------------------------------ DynamoDB helpers
    def _record_items(self, first: int = 1, last: int = 10**_SEQ_DIGITS - 1) -> Iterator[dict[str, Any]]:
        """Raw record items in key order, one consistent DynamoDB page at a time."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
            "ExpressionAttributeValues": {
                ":pk": {"S": self._pk},
                ":first": {"S": _sk_of(first)},
                ":last": {"S": _sk_of(last)},
            },
            "ConsistentRead": True,
        }
        start_key: dict[str, Any] | None = None
        while True:
            response = self._dynamo.call("query", **request, **_start(start_key))
            yield from response.get("Items", [])
            start_key = response.get("LastEvaluatedKey")
            if start_key is None:
                return

    def _item(self, record: AuditRecord) -> dict[str, Any]:
        return {**self._key(_sk_of(record.sequence)), **_record_item(record)}

    def _key(self, sort_key: str) -> dict[str, Any]:
        return {"pk": {"S": self._pk}, "sk": {"S": sort_key}}

    def _now(self) -> str:
        return format_timestamp(dt.datetime.fromtimestamp(self._clock(), tz=dt.UTC))


# ---------------------------------------------------------------------- every chain
def verify_chains(
    table_name: str,
    dynamodb_client: Any,
    digest_s3_client: Any = None,
    bucket: str | None = None,
    prefix: str = DEFAULT_DIGEST_PREFIX,
    *,
    max_attempts: int = 5,
    sleep: Callable[[float], None] = _sleep,
) -> AuditVerification:
    """`AuditTrail.verify` for every chain of the table, in name order.

    The chains are those of the registry and, with `digest_s3_client` and `bucket`, also those that have a
    digest folder: a chain removed from the registry is still verified (and reported `unregistered`).
    """
    if digest_s3_client is not None and bucket is None:
        raise InvalidRequestError(field="bucket", message="needed to check the digests")
    names = set(AuditTrail.chains(table_name, dynamodb_client, max_attempts=max_attempts, sleep=sleep))
    if digest_s3_client is not None:
        names |= _digest_chains(digest_s3_client, str(bucket), prefix)
    results = [
        AuditTrail(table_name, dynamodb_client, chain, max_attempts=max_attempts, sleep=sleep).verify(
            digest_s3_client, bucket, prefix
        )
        for chain in sorted(names)
    ]
    first = next((result for result in results if result.first_broken is not None), None)
    first_broken = (
        ChainBreak(chain=first.chain, **first.first_broken.model_dump())
        if first is not None and first.first_broken is not None
        else None
    )
    return AuditVerification(
        valid=first_broken is None,
        chains=results,
        records_checked=sum(result.records_checked for result in results),
        first_broken=first_broken,
    )


def _digest_chains(s3_client: Any, bucket: str, prefix: str) -> set[str]:
    folder = f"{prefix}/"
    chains: set[str] = set()
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            name = common["Prefix"].removeprefix(folder).removesuffix("/")
            if _CHAIN_PATTERN.fullmatch(name):
                chains.add(name)
    return chains


# ---------------------------------------------------------------------- queries across chains
@dataclass(frozen=True)
class _QueryPlan:
    """Which GSI partitions to read, in order, with the key condition's time range and an optional filter."""

    index: str
    partitions: tuple[str, ...]  # values of the index's HASH attribute, read one after the other
    since: str | None
    until: str | None
    event_type: AuditEventType | None  # filtered (not a key condition): only with the entity index

    @property
    def hash_attribute(self) -> str:
        return AUDIT_TABLE_INDEXES[self.index][0]

    @property
    def fingerprint(self) -> str:
        first, last = (self.partitions[0], self.partitions[-1]) if self.partitions else (None, None)
        text = _dumps([self.index, first, last, len(self.partitions), self.since, self.until, self.event_type])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def query_audit(
    table_name: str,
    dynamodb_client: Any,
    event_type: AuditEventType | str | None = None,
    entity: str | None = None,
    since: dt.datetime | str | None = None,
    until: dt.datetime | str | None = None,
    limit: int = 50,
    page_token: str | None = None,
    *,
    clock: Callable[[], float] = time.time,
    scan_budget: int = 2000,
    max_attempts: int = 5,
    sleep: Callable[[float], None] = _sleep,
) -> AuditPage:
    """Records of every chain matching every given filter, oldest `occurred_at` first, `limit` per page.

    `since` and `until` are inclusive and apply to `occurred_at`. With `entity`, the `by_entity` index is read
    (and the event type, if given, filtered); with only `event_type`, the `by_type` index; those two read all
    time unless bounded. With neither, `by_day` is read day by day (UTC) from the day of `since` to the day of
    `until`: `since` defaults to `DEFAULT_QUERY_DAYS` (7) days before `until`, or before now (the `clock`)
    when `until` is not given either, in which case reading stops at today; such a span may cover at most
    `MAX_QUERY_DAYS` days. Records with the same `occurred_at` come in an unspecified but stable order.
    Pages are full unless the records end or one page read `scan_budget` items or made 50 requests (a sparse
    filter, many empty days); a short page with a token just means "keep going", and the last page may be
    empty. The token is opaque and only valid for the same filters.
    """
    if not isinstance(limit, int) or not 1 <= limit <= MAX_QUERY_LIMIT:
        raise InvalidRequestError(field="limit", message=f"must be between 1 and {MAX_QUERY_LIMIT}")
    wanted_type = _checked_event_type(event_type)
    if entity is not None and (
        not isinstance(entity, str) or len(entity) > 1024 or not re.fullmatch(_ENTITY_PATTERN, entity)
    ):
        raise InvalidRequestError(field="entity", message="must be `<kind>:<id>` in printable ASCII")
    since_at = _checked_timestamp("since", since)
    until_at = _checked_timestamp("until", until)
    if since_at and until_at and since_at > until_at:
        raise InvalidRequestError(field="until", message="must not be before since")
    state = _decode_token(page_token)
    if entity is not None:
        plan = _QueryPlan(BY_ENTITY_INDEX, (f"ENTITY#{entity}",), since_at, until_at, wanted_type)
    elif wanted_type is not None:
        plan = _QueryPlan(BY_TYPE_INDEX, (f"TYPE#{wanted_type.value}",), since_at, until_at, None)
    else:
        plan = _day_plan(since_at, until_at, state, clock)
    start = _start_position(plan, state)
    dynamo = _Dynamo(dynamodb_client, max_attempts, sleep)
    return _collect_page(dynamo, table_name, plan, limit, start, max(1, scan_budget))


def _day_plan(
    since: str | None, until: str | None, state: Mapping[str, Any] | None, clock: Callable[[], float]
) -> _QueryPlan:
    """The days to read; a default `since` (and last day) is taken from the token, so pages agree on them."""
    now = dt.datetime.fromtimestamp(clock(), tz=dt.UTC)
    if since is None:
        if state is not None and isinstance(state.get("s"), str):
            since = _token_timestamp(state["s"])
        else:
            end = dt.datetime.fromisoformat(until) if until else now
            since = format_timestamp(end - dt.timedelta(days=DEFAULT_QUERY_DAYS))
    if until is not None:
        last_day = dt.date.fromisoformat(until[:10])
    elif state is not None and isinstance(state.get("e"), str):
        last_day = _token_day(state["e"])
    else:
        last_day = max(now.date(), dt.date.fromisoformat(since[:10]))
    first_day = dt.date.fromisoformat(since[:10])
    span = (last_day - first_day).days + 1
    if span > MAX_QUERY_DAYS:
        raise InvalidRequestError(
            field="since", message=f"without event_type or entity, a query spans at most {MAX_QUERY_DAYS} days"
        )
    days = tuple(f"DAY#{first_day + dt.timedelta(days=offset)}" for offset in range(max(0, span)))
    return _QueryPlan(BY_DAY_INDEX, days, since, until, None)


def _collect_page(
    dynamo: _Dynamo,
    table_name: str,
    plan: _QueryPlan,
    limit: int,
    start: tuple[int, dict[str, Any] | None],
    budget: int,
) -> AuditPage:
    # DynamoDB applies Limit before the filter, so read until the page is full and, when stopping inside a
    # DynamoDB page, continue from the last record returned rather than from LastEvaluatedKey.
    partition, start_key = start
    records: list[AuditRecord] = []
    requests = 0
    while partition < len(plan.partitions):
        names = {"#h": plan.hash_attribute}
        values: dict[str, Any] = {":h": {"S": plan.partitions[partition]}}
        request: dict[str, Any] = {
            "TableName": table_name,
            "IndexName": plan.index,
            "KeyConditionExpression": "#h = :h" + _time_condition(names, values, plan.since, plan.until),
        }
        if plan.event_type is not None:
            names["#type"] = "event_type"
            values[":type"] = {"S": plan.event_type.value}
            request["FilterExpression"] = "#type = :type"
        wanted = limit - len(records)
        page_limit = min(budget, max(wanted, 100) if plan.event_type is not None else wanted)
        response = dynamo.call(
            "query",
            **request,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            Limit=max(1, page_limit),
            **_start(start_key),
        )
        requests += 1
        items = response.get("Items", [])
        budget -= response.get("ScannedCount", len(items))
        for index, item in enumerate(items):
            records.append(_readable_record(item))
            if len(records) == limit:
                if index < len(items) - 1 or "LastEvaluatedKey" in response:
                    resume = (partition, {name: item[name] for name in _token_key_attributes(plan)})
                elif partition + 1 < len(plan.partitions):
                    resume = (partition + 1, None)
                else:
                    return AuditPage(records=records)
                return AuditPage(records=records, next_page_token=_encode_token(plan, *resume))
        start_key = response.get("LastEvaluatedKey")
        if start_key is None:
            partition, start_key = partition + 1, None
        if partition < len(plan.partitions) and (budget <= 0 or requests >= _MAX_REQUESTS_PER_PAGE):
            return AuditPage(records=records, next_page_token=_encode_token(plan, partition, start_key))
    return AuditPage(records=records)


def _token_key_attributes(plan: _QueryPlan) -> tuple[str, ...]:
    return ("pk", "sk", plan.hash_attribute, "occurred_at")


def _encode_token(plan: _QueryPlan, partition: int, key: Mapping[str, Any] | None) -> str:
    state: dict[str, Any] = {"q": plan.fingerprint, "p": plan.partitions[partition], "k": key}
    if plan.index == BY_DAY_INDEX:
        state |= {"s": plan.since, "e": plan.partitions[-1].removeprefix("DAY#")}
    return base64.urlsafe_b64encode(_dumps(state).encode("utf-8")).decode("ascii")


def _decode_token(token: str | None) -> dict[str, Any] | None:
    if token is None:
        return None
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (UnicodeError, binascii.Error, ValueError, AttributeError):
        state = None
    if not isinstance(state, dict) or not isinstance(state.get("q"), str) or not isinstance(state.get("p"), str):
        raise _bad_token()
    return state


def _start_position(plan: _QueryPlan, state: Mapping[str, Any] | None) -> tuple[int, dict[str, Any] | None]:
    if state is None:
        return 0, None
    if state["q"] != plan.fingerprint or state["p"] not in plan.partitions:
        raise _bad_token()
    key = state.get("k")
    if key is not None:
        valid = (
            isinstance(key, dict)
            and set(key) == set(_token_key_attributes(plan))
            and all(isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in key.values())
            and key[plan.hash_attribute]["S"] == state["p"]
            and key["pk"]["S"].startswith("AUDIT#")
            and _CHAIN_PATTERN.fullmatch(key["pk"]["S"].removeprefix("AUDIT#")) is not None
            and _position(key) is not None
        )
        if not valid:
            raise _bad_token()
    return plan.partitions.index(state["p"]), key


def _token_timestamp(value: str) -> str:
    try:
        return _normalize_timestamp(value)
    except ValueError:
        raise _bad_token() from None


def _token_day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _bad_token() from None


def _bad_token() -> InvalidRequestError:
    return InvalidRequestError(field="page_token", message="not a page token of this query")


# ---------------------------------------------------------------------- module helpers
def _record_item(record: AuditRecord) -> dict[str, Any]:
    """The non-key attributes of a record's item: the document and its copies used by queries and the GSIs."""
    event = record.event
    return {
        "document": {"S": _dumps(record.model_dump(mode="json"))},
        "event_type": {"S": event.event_type.value},
        "entity": {"S": event.entity},
        "occurred_at": {"S": event.occurred_at},
        "sequence": {"N": str(record.sequence)},
        "type_pk": {"S": f"TYPE#{event.event_type.value}"},
        "entity_pk": {"S": f"ENTITY#{event.entity}"},
        "day_pk": {"S": f"DAY#{event.occurred_at[:10]}"},
    }


_INDEXED_ATTRIBUTES = ("event_type", "entity", "occurred_at", "sequence", "type_pk", "entity_pk", "day_pk")


def _index_attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: item.get(name) for name in _INDEXED_ATTRIBUTES}


def _readable_record(item: Mapping[str, Any]) -> AuditRecord:
    try:
        return AuditRecord.model_validate_json(item["document"]["S"])
    except (KeyError, TypeError, ValueError) as error:
        raise AuditIntegrityError(
            field="audit_trail", message=f"record {_sk(item)!r} is unreadable; run verify()"
        ) from error


def _check_attested(item: Mapping[str, Any] | None, previous: DigestRef, chain: str) -> None:
    """The record a digest attested must still be there, intact, with the attested hash."""
    sequence = previous.digest.last_sequence
    if item is None or _position(item) != sequence:
        raise AuditIntegrityError(
            field="chain",
            message=f"record {sequence}, attested by digest {previous.key}, is missing; no digest written",
        )
    try:
        document = json.loads(item["document"]["S"])
        record = AuditRecord.model_validate(document)
        intact = compute_hash(document) == record.record_hash == previous.digest.head_hash and record.chain == chain
    except (KeyError, TypeError, ValueError):
        intact = False
    if not intact:
        raise AuditIntegrityError(
            field="chain", message=f"record {sequence} differs from digest {previous.key}; no digest written"
        )


def _head_break(head: _Head | None, last_sequence: int, hashes_at: Mapping[int, str]) -> BrokenLink | None:
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


def _sk_of(sequence: int) -> str:
    return f"{_SEQ_PREFIX}{sequence:0{_SEQ_DIGITS}d}"


def _sk(item: Mapping[str, Any]) -> str:
    value = item.get("sk", {}).get("S", "") if isinstance(item.get("sk"), dict) else ""
    return str(value)


def _position(item: Mapping[str, Any]) -> int | None:
    """The sequence a record's key says it is at (None for a malformed key)."""
    digits = _sk(item).removeprefix(_SEQ_PREFIX)
    if len(digits) != _SEQ_DIGITS or not digits.isascii() or not digits.isdigit() or int(digits) < 1:
        return None
    return int(digits)


def _error_code(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "ClientError"))
    return type(error).__name__


def _transient_kind(error: Exception) -> Literal["rejected", "ambiguous"] | None:
    """`rejected` (nothing happened), `ambiguous` (it may have happened) or None (not worth retrying)."""
    if isinstance(error, ConnectionError | HTTPClientError):
        return "ambiguous"
    if not isinstance(error, ClientError):
        return None
    code = _error_code(error)
    if code in _REJECTED_CODES:
        return "rejected"
    if code in _AMBIGUOUS_CODES or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
        return "ambiguous"
    return None


def _backoff(attempt: int) -> float:
    """Full-jitter exponential backoff, so that competing writers spread out."""
    return random.uniform(0, min(1.0, 0.02 * 2**attempt))


def _start(start_key: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"ExclusiveStartKey": start_key} if start_key else {}


def _time_condition(names: dict[str, str], values: dict[str, Any], since: str | None, until: str | None) -> str:
    if since is None and until is None:
        return ""
    names["#at"] = "occurred_at"
    if since is not None:
        values[":since"] = {"S": since}
    if until is not None:
        values[":until"] = {"S": until}
    if since is not None and until is not None:
        return " AND #at BETWEEN :since AND :until"
    return " AND #at >= :since" if since is not None else " AND #at <= :until"


def _checked_event_type(value: AuditEventType | str | None) -> AuditEventType | None:
    if value is None:
        return None
    try:
        return AuditEventType(value)
    except ValueError:
        raise InvalidRequestError(field="event_type", message=f"unknown audit event type {value!r}") from None


def _checked_timestamp(field: str, value: dt.datetime | str | None) -> str | None:
    if value is None:
        return None
    try:
        return _normalize_timestamp(value)
    except (TypeError, ValueError):
        raise InvalidRequestError(field=field, message="must be an ISO-8601 timestamp with a time zone") from None


def _digest_key(prefix: str, chain: str, last_sequence: int) -> str:
    return f"{prefix}/{chain}/{last_sequence:0{_SEQ_DIGITS}d}.json"


def _digest_sequence(key: str, folder: str) -> int | None:
    name = key.removeprefix(folder).removesuffix(".json")
    if not key.startswith(folder) or not key.endswith(".json") or len(name) != _SEQ_DIGITS or not name.isdigit():
        return None
    return int(name)


def _digest_break(
    digests: list[tuple[str, AuditDigest]], hashes_at: dict[int, str], chain_end: int
) -> BrokenLink | None:
    """The first digest whose attested record the chain no longer holds."""
    previous_end = 0
    for key, digest in digests:
        if digest.last_sequence > chain_end:
            return BrokenLink(
                sequence=chain_end + 1,
                reason=BreakReason.MISSING,
                detail=f"digest {key} attests records up to {digest.last_sequence}; the chain ends at {chain_end}",
            )
        if hashes_at.get(digest.last_sequence) != digest.head_hash:
            return BrokenLink(
                sequence=digest.last_sequence,
                reason=BreakReason.MODIFIED,
                detail=(
                    f"record {digest.last_sequence} differs from digest {key} ({digest.created_at}): the chain was "
                    f"rewritten between records {previous_end + 1} and {digest.last_sequence}"
                ),
            )
        previous_end = digest.last_sequence
    return None
