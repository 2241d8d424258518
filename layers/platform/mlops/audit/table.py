"""The audit table on DynamoDB: how chains, records, heads and the chain registry are stored, and read back.

Item layout (one table, it may be shared; string keys `pk`, `sk`):
- record: `pk = AUDIT#<chain>`, `sk = SEQ#<sequence, 12 digits>`. Its whole content is the canonical JSON
  `document` (the only thing that is hashed and verified). Copies for filtering, checked against the document by
  verify: `event_type`, `entity`, `occurred_at`, `sequence`, and the GSI keys `type_pk = TYPE#<event_type>`,
  `entity_pk = ENTITY#<entity>` and `day_pk = DAY#<YYYY-MM-DD of occurred_at>`.
- head: `pk = AUDIT#<chain>`, `sk = HEAD`, with `sequence`, `record_hash` and `updated_at` of the newest record
  (as far as the writers got to tell it: a hint, see `mlops.audit.trail`).
- registry: `pk = AUDIT_CHAINS`, `sk = <chain>`, with `chain` and `registered_at`.
- event marker: `pk = AUDIT_EVENT#<event_id>`, `sk = EVENT`, with the `chain`, `sequence` and `record_hash` of the
  event's record, written in the same transaction as the record, so an event is recorded once (see
  `mlops.audit.trail`), and a record rewritten later no longer matches what was recorded with its event.

Indexes (`AUDIT_TABLE_INDEXES`; string keys, projection ALL - `document` is all the queries read):
`by_type` (HASH `type_pk`, RANGE `occurred_at`), `by_entity` (HASH `entity_pk`, RANGE `occurred_at`) and
`by_day` (HASH `day_pk`, RANGE `occurred_at`). Only records carry these attributes, so heads and registry items
stay out of the indexes. Each index key value (one event type, one entity, one day) takes every matching record
of every chain: a GSI partition sustains about 1,000 writes per second, far above the platform's audit volume;
beyond that, shard `day_pk`/`type_pk` and merge the shards when reading.

Reads go through `RetryingDynamoDB`: transient failures are retried (`mlops.core.retries`) and, once the attempts
are spent, reported as `AuditUnavailableError`. Only boto3 and pydantic: the package goes into a small layer used
by the online handler.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from mlops.audit.records import GENESIS_HASH, AuditRecord, compute_hash
from mlops.core.canonical_json import canonical_dumps
from mlops.core.errors import AuditIntegrityError, AuditUnavailableError, InvalidRequestError
from mlops.core.retries import error_code, is_transient, with_retries

CHAIN_REGISTRY_PK = "AUDIT_CHAINS"
HEAD_SK = "HEAD"
SEQ_PREFIX = "SEQ#"
SEQ_DIGITS = 12
LAST_SEQUENCE = 10**SEQ_DIGITS - 1
CHAIN_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELED = "TransactionCanceledException"
EVENT_MARKER_PREFIX = "AUDIT_EVENT#"
EVENT_MARKER_SK = "EVENT"
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
INDEXED_ATTRIBUTES = ("event_type", "entity", "occurred_at", "sequence", "type_pk", "entity_pk", "day_pk")


class Head(BaseModel):
    """A chain's newest record as far as someone knows it: its sequence and hash."""

    model_config = ConfigDict(frozen=True)

    sequence: int
    record_hash: str


EMPTY_HEAD = Head(sequence=0, record_hash=GENESIS_HASH)


class Marker(BaseModel):
    """Where the writer appended an event, and the hash of the record it sealed it into."""

    model_config = ConfigDict(frozen=True)

    chain: str
    sequence: int
    record_hash: str

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> Marker | None:
        try:
            return cls(
                chain=item["chain"]["S"], sequence=int(item["sequence"]["N"]), record_hash=item["record_hash"]["S"]
            )
        except (KeyError, TypeError, ValueError):
            return None


def sequence_sort_key(sequence: int) -> str:
    return f"{SEQ_PREFIX}{sequence:0{SEQ_DIGITS}d}"


def item_sort_key(item: Mapping[str, Any]) -> str:
    value = item.get("sk", {}).get("S", "") if isinstance(item.get("sk"), dict) else ""
    return str(value)


def position(item: Mapping[str, Any]) -> int | None:
    """The sequence a record's key says it is at (None for a malformed key)."""
    digits = item_sort_key(item).removeprefix(SEQ_PREFIX)
    if len(digits) != SEQ_DIGITS or not digits.isascii() or not digits.isdigit() or int(digits) < 1:
        return None
    return int(digits)


def record_attributes(record: AuditRecord) -> dict[str, Any]:
    """The non-key attributes of a record's item: the document and its copies used by queries and the GSIs."""
    event = record.event
    return {
        "document": {"S": canonical_dumps(record.model_dump(mode="json"))},
        "event_type": {"S": event.event_type.value},
        "entity": {"S": event.entity},
        "occurred_at": {"S": event.occurred_at},
        "sequence": {"N": str(record.sequence)},
        "type_pk": {"S": f"TYPE#{event.event_type.value}"},
        "entity_pk": {"S": f"ENTITY#{event.entity}"},
        "day_pk": {"S": f"DAY#{event.occurred_at[:10]}"},
    }


def index_attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: item.get(name) for name in INDEXED_ATTRIBUTES}


def readable_record(item: Mapping[str, Any]) -> AuditRecord:
    """The record an item holds; `AuditIntegrityError` if its document is not one."""
    try:
        return AuditRecord.model_validate_json(item["document"]["S"])
    except (KeyError, TypeError, ValueError) as error:
        raise AuditIntegrityError(
            field="audit_trail", message=f"record {item_sort_key(item)!r} is unreadable; run verify()"
        ) from error


def exclusive_start(start_key: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `ExclusiveStartKey` argument of a Query continuing after `start_key` (none for the first page)."""
    return {"ExclusiveStartKey": start_key} if start_key else {}


class RetryingDynamoDB:
    """A DynamoDB client whose calls are retried on transient failures (`max_attempts`, jittered backoff)."""

    def __init__(self, client: Any, max_attempts: int, sleep: Callable[[float], None]) -> None:
        self.client = client
        self.max_attempts = max(1, max_attempts)
        self.sleep = sleep

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """For reads and for writes that are safe to repeat (a conditional put whose repeat fails harmlessly)."""
        method = getattr(self.client, operation)
        try:
            return with_retries(lambda: method(**kwargs), max_attempts=self.max_attempts, sleep=self.sleep)
        except (ClientError, BotoCoreError) as error:
            if not is_transient(error):
                raise
            raise AuditUnavailableError(
                field="audit_trail",
                message=f"DynamoDB {operation} failed {self.max_attempts} times ({error_code(error)})",
            ) from error


def registered_chains(table_name: str, dynamo: RetryingDynamoDB) -> list[str]:
    """Every chain registered in the table, sorted by name (one Query, paginated)."""
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
        response = dynamo.call("query", **request, **exclusive_start(start_key))
        chains.extend(item_sort_key(item) for item in response.get("Items", []))
        start_key = response.get("LastEvaluatedKey")
        if start_key is None:
            return sorted(chain for chain in chains if CHAIN_PATTERN.fullmatch(chain))


class ChainTable:
    """One chain's items in the audit table: its records, its head item and its registry entry."""

    def __init__(self, table_name: str, dynamo: RetryingDynamoDB, chain: str) -> None:
        if not isinstance(chain, str) or not CHAIN_PATTERN.fullmatch(chain):
            raise InvalidRequestError(field="chain", message="a chain name is 1-64 letters, digits, '_', '.' or '-'")
        self.table_name = table_name
        self.dynamo = dynamo
        self.chain = chain
        self._pk = f"AUDIT#{chain}"

    def key(self, sort_key: str) -> dict[str, Any]:
        return {"pk": {"S": self._pk}, "sk": {"S": sort_key}}

    def item(self, record: AuditRecord) -> dict[str, Any]:
        """The whole item that stores `record`."""
        return {**self.key(sequence_sort_key(record.sequence)), **record_attributes(record)}

    def append_items(self, record: AuditRecord) -> list[dict[str, Any]]:
        """The transaction that appends a record: its slot must be free and its event not yet recorded."""
        marker = {
            "pk": {"S": f"{EVENT_MARKER_PREFIX}{record.event.event_id}"},
            "sk": {"S": EVENT_MARKER_SK},
            "chain": {"S": self.chain},
            "sequence": {"N": str(record.sequence)},
            "record_hash": {"S": record.record_hash},
        }
        condition = "attribute_not_exists(pk)"
        return [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": self.item(record),
                    "ConditionExpression": condition,
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {"Put": {"TableName": self.table_name, "Item": marker, "ConditionExpression": condition}},
        ]

    def record_items(self, first: int = 1, last: int = LAST_SEQUENCE) -> Iterator[dict[str, Any]]:
        """Raw record items in key order, one consistent DynamoDB page at a time."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
            "ExpressionAttributeValues": {
                ":pk": {"S": self._pk},
                ":first": {"S": sequence_sort_key(first)},
                ":last": {"S": sequence_sort_key(last)},
            },
            "ConsistentRead": True,
        }
        start_key: dict[str, Any] | None = None
        while True:
            response = self.dynamo.call("query", **request, **exclusive_start(start_key))
            yield from response.get("Items", [])
            start_key = response.get("LastEvaluatedKey")
            if start_key is None:
                return

    def event_markers(self, event_ids: list[str]) -> dict[str, Marker]:
        """The markers of these events (consistent reads, 100 a call), by event id; absent ones are left out."""
        markers: dict[str, Marker] = {}
        for start in range(0, len(event_ids), 100):
            keys = [
                {"pk": {"S": f"{EVENT_MARKER_PREFIX}{event_id}"}, "sk": {"S": EVENT_MARKER_SK}}
                for event_id in dict.fromkeys(event_ids[start : start + 100])
            ]
            request: dict[str, Any] = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = self.dynamo.call("batch_get_item", RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    marker = Marker.of(item)
                    if marker is not None:
                        markers[item["pk"]["S"].removeprefix(EVENT_MARKER_PREFIX)] = marker
                request = response.get("UnprocessedKeys") or {}
        return markers

    def record_item(self, sequence: int) -> dict[str, Any] | None:
        """The raw item at `sequence` (consistent read), None if the slot is free."""
        key = self.key(sequence_sort_key(sequence))
        return self.dynamo.call("get_item", TableName=self.table_name, Key=key, ConsistentRead=True).get("Item")

    def newest(self) -> Head:
        """The chain's newest record (one consistent Query, newest first), checked to be intact."""
        response = self.dynamo.call(
            "query",
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",  # the SEQ# keys verify walks
            ExpressionAttributeValues={
                ":pk": {"S": self._pk},
                ":first": {"S": sequence_sort_key(1)},
                ":last": {"S": sequence_sort_key(LAST_SEQUENCE)},
            },
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = response.get("Items", [])
        if not items:
            return EMPTY_HEAD
        item = items[0]
        record = readable_record(item)
        intact = compute_hash(record) == record.record_hash
        if not intact or position(item) != record.sequence or record.chain != self.chain:
            raise AuditIntegrityError(
                field="audit_trail",
                message=f"the newest record {item_sort_key(item)!r} of chain {self.chain} is not intact; run verify()",
            )
        return Head(sequence=record.sequence, record_hash=record.record_hash)

    def head_item(self) -> Head | None:
        """The head item (a hint that may lag behind the records), None if there is none."""
        response = self.dynamo.call("get_item", TableName=self.table_name, Key=self.key(HEAD_SK), ConsistentRead=True)
        item = response.get("Item")
        if item is None:
            return None
        try:
            return Head(sequence=int(item["sequence"]["N"]), record_hash=str(item["record_hash"]["S"]))
        except (KeyError, TypeError, ValueError) as error:
            raise AuditIntegrityError(
                field="audit_trail", message=f"the head of chain {self.chain} is malformed"
            ) from error

    def register(self, registered_at: str) -> None:
        """Put the chain in the registry; a chain already there stays as it is."""
        try:
            self.dynamo.call(
                "put_item",
                TableName=self.table_name,
                Item={
                    "pk": {"S": CHAIN_REGISTRY_PK},
                    "sk": {"S": self.chain},
                    "chain": {"S": self.chain},
                    "registered_at": {"S": registered_at},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error_code(error) != CONDITION_FAILED:
                raise

    def is_registered(self) -> bool:
        key = {"pk": {"S": CHAIN_REGISTRY_PK}, "sk": {"S": self.chain}}
        response = self.dynamo.call("get_item", TableName=self.table_name, Key=key, ConsistentRead=True)
        return "Item" in response
