"""Feature store: feature groups, an online store on DynamoDB and an append-only offline history in S3.

- A **feature group** (`FeatureGroup`) is declared once: name, entity key, typed features, event-time
  column, freshness window (TTL) and version. `feature_group_from_schema` derives one from a data schema.
- The **online store** keeps only the latest record per entity: the one with the latest event time and,
  among records with the same event time, the latest ingestion (the offline point-in-time join breaks ties
  the same way, so training and serving agree). Every write is conditional on being later in that order
  than what is stored, so out-of-order, repeated and concurrent ingestion are safe and idempotent: an older
  record never overwrites a newer one, and the same record (same ingestion time) is not written twice.
- The **offline store** (see `mlops.feature_store.offline`, which needs pandas and pyarrow) is the full history.

This module needs only boto3 and pydantic, so the scoring path can read online features without pandas.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from mlops.core.errors import (
    EntityNotFoundError,
    FeatureGroupConflictError,
    FeatureStoreUnavailableError,
    FeatureValidationError,
    InvalidRequestError,
)
from mlops.core.retries import backoff_delay, sleep, with_retries
from mlops.data.schema import DataSchema

if TYPE_CHECKING:
    from mlops.core.settings import FeatureLookupSettings

MAX_BATCH_IDS = 100
_EVENT_TIME = "event_time"  # attribute holding the record's event time (epoch milliseconds)
_INGESTED_AT = "ingested_at"  # attribute holding the record's ingestion time (epoch milliseconds)
_DELETED = "deleted_by"  # present on a tombstone: the deletion id that erased the entity
# A tombstone's event time is later than any real event, so the newest-wins condition keeps every later
# ingestion (a re-run of an old file included) from bringing an erased customer back.
_TOMBSTONE_EVENT_MS = 9_999_999_999_999
_RESERVED = frozenset({"pk", "sk", _EVENT_TIME, _INGESTED_AT, _DELETED})
_AWS_ERRORS = (ClientError, BotoCoreError)
# Replace the stored record only with a later one: a later event, or the same event ingested later. A tombstone
# has no ingestion time, so no record with its (far future) event time replaces it either.
_NEWER_CONDITION = (
    "attribute_not_exists(pk) OR #event_time < :event_time"
    " OR (#event_time = :event_time AND #ingested_at < :ingested_at)"
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class FeatureType(StrEnum):
    NUMBER = "number"
    STRING = "string"


class FeatureGroup(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    version: int = Field(default=1, ge=1)
    entity_key: str
    event_time_column: str = "event_time"
    ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0, description="Records older than this are stale.")
    features: dict[str, FeatureType] = Field(min_length=1)

    @property
    def partition_key(self) -> str:
        return f"FG#{self.name}#v{self.version}"


def feature_group_from_schema(
    schema: DataSchema, name: str = "customer_behavior", ttl_seconds: int = 7 * 24 * 3600, version: int = 1
) -> FeatureGroup:
    """The feature group holding every feature column of a data schema, keyed by its id column."""
    features = {column: FeatureType.NUMBER for column in schema.numerical}
    features.update({column: FeatureType.STRING for column in schema.categorical})
    return FeatureGroup(
        name=name, version=version, entity_key=schema.id_column, features=features, ttl_seconds=ttl_seconds
    )


class FeatureRecord(BaseModel):
    entity_id: str
    event_time: dt.datetime
    values: dict[str, float | str | None]
    status: str = Field(description="fresh, or stale when older than the group's TTL")


def to_epoch_ms(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        raise InvalidRequestError(field="event_time", message="event times must carry a time zone")
    return (moment - _EPOCH) // dt.timedelta(milliseconds=1)  # exact: a float timestamp can lose the last ms


def from_epoch_ms(epoch_ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC)


class WriteOutcome(StrEnum):
    WRITTEN = "written"
    SKIPPED_NOT_NEWER = "skipped_not_newer"


class IncomingRecord(BaseModel):
    """One observation of an entity's features, as ingestion hands it to the online store."""

    model_config = ConfigDict(frozen=True)

    entity_id: str
    event_time: dt.datetime
    values: dict[str, Any]
    ingested_at: dt.datetime | None = Field(
        default=None, description="When the record was ingested (breaks ties on event time); None: when written"
    )


class IngestionReport(BaseModel):
    """What one ingestion did (the pilot's `features` section)."""

    feature_group: str
    group_version: int
    source_key: str
    source_sha256: str
    rows: int
    entities: int
    written: int
    skipped_not_newer: int
    offline_parts_written: int
    event_time_source: str = Field(description="column: the file's event-time column; as_of: the snapshot time")
    ttl_seconds: int | None = Field(default=None, description="The group's TTL: older records are stale.")
    as_of: dt.datetime = Field(description="Snapshot time of the file; training sets are built as of it.")
    ingested_at: dt.datetime | None = Field(
        default=None,
        description="Latest ingestion time of the file's records: by then the store knew all of them (an "
        "earlier run's time when this run found the records already ingested).",
    )
    seconds: float
    rows_per_second: float


class DeletionRecord(BaseModel):
    """A data-subject deletion request, kept (without any feature value) so governance can audit it."""

    deletion_id: str
    feature_group: str
    group_version: int
    entity_id: str
    requested_by: str
    reason: str
    requested_at: str


class OnlineFeatureStore:
    """The latest feature values of each entity, on DynamoDB (pk = group and version, sk = entity id)."""

    def __init__(self, table_name: str, dynamodb_client: Any, clock: Callable[[], float] = time.time) -> None:
        self.table_name = table_name
        self._ddb = dynamodb_client
        self._clock = clock

    def put_latest(
        self,
        group: FeatureGroup,
        entity_id: str,
        values: Mapping[str, Any],
        event_time: dt.datetime,
        ingested_at: dt.datetime | None = None,
    ) -> WriteOutcome:
        """Store the record unless the store already holds one at least as new for this entity: a later event
        time, or the same event time ingested no earlier. `ingested_at` defaults to now (the clock)."""
        ingested_ms = int(self._clock() * 1000) if ingested_at is None else to_epoch_ms(ingested_at)
        return self._put_if_newer(group, entity_id, values, (to_epoch_ms(event_time), ingested_ms))

    def _put_if_newer(
        self, group: FeatureGroup, entity_id: str, values: Mapping[str, Any], version: tuple[int, int]
    ) -> WriteOutcome:
        event_ms, ingested_ms = version
        item = {
            "pk": {"S": group.partition_key},
            "sk": {"S": entity_id},
            _EVENT_TIME: {"N": str(event_ms)},
            _INGESTED_AT: {"N": str(ingested_ms)},
        }
        item.update(_encode_values(group, values))
        try:
            self._ddb.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression=_NEWER_CONDITION,
                ExpressionAttributeNames={"#event_time": _EVENT_TIME, "#ingested_at": _INGESTED_AT},
                ExpressionAttributeValues={":event_time": item[_EVENT_TIME], ":ingested_at": item[_INGESTED_AT]},
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return WriteOutcome.SKIPPED_NOT_NEWER
        return WriteOutcome.WRITTEN

    def put_latest_many(
        self, group: FeatureGroup, records: Iterable[IncomingRecord], workers: int = 8
    ) -> Counter[WriteOutcome]:
        """Ingest many records with the same newest-wins guarantee as `put_latest` (records without an
        ingestion time are ingested now, all at one time).

        Within the input only each entity's newest record is a candidate (of two with the same event and
        ingestion time, the later in the input). The stored versions are read first (BatchGetItem, 100 keys a
        call) so that re-ingesting a file costs reads, not thousands of failed writes; the remaining records
        are written with the conditional put, which still guards against a concurrent writer, on `workers`
        threads (each put waits on the network).
        """
        now_ms = int(self._clock() * 1000)
        newest: dict[str, tuple[tuple[int, int], IncomingRecord]] = {}
        superseded = 0
        for record in records:
            ingested_ms = now_ms if record.ingested_at is None else to_epoch_ms(record.ingested_at)
            version = (to_epoch_ms(record.event_time), ingested_ms)
            kept = newest.get(record.entity_id)
            if kept is not None:
                superseded += 1
                if version < kept[0]:
                    continue
            newest[record.entity_id] = (version, record)
        entity_ids = list(newest)
        stored: dict[str, tuple[int, int]] = {}
        for start in range(0, len(entity_ids), MAX_BATCH_IDS):
            for item in self._batch_get_items(group, entity_ids[start : start + MAX_BATCH_IDS], []):
                stored[item["sk"]["S"]] = (int(item[_EVENT_TIME]["N"]), int(item.get(_INGESTED_AT, {"N": "-1"})["N"]))
        candidates = [(v, r) for v, r in newest.values() if stored.get(r.entity_id, (-1, -1)) < v]
        outcomes: Counter[WriteOutcome] = Counter()
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            outcomes.update(
                pool.map(lambda c: self._put_if_newer(group, c[1].entity_id, c[1].values, c[0]), candidates)
            )
        outcomes[WriteOutcome.SKIPPED_NOT_NEWER] += superseded + len(newest) - len(candidates)
        return outcomes

    def get(self, group: FeatureGroup, entity_id: str, features: Sequence[str] | None = None) -> FeatureRecord | None:
        records = self.batch_get(group, [entity_id], features)
        return records.get(entity_id)

    def batch_get(
        self, group: FeatureGroup, entity_ids: Sequence[str], features: Sequence[str] | None = None
    ) -> dict[str, FeatureRecord]:
        """Latest records of up to 100 entities, reading only the requested features (all when None).
        Entities without a record are absent from the result."""
        unique_ids = list(dict.fromkeys(entity_ids))
        if len(unique_ids) > MAX_BATCH_IDS:
            raise InvalidRequestError(field="customer_ids", message=f"at most {MAX_BATCH_IDS} ids per request")
        wanted = _checked_feature_names(group, features)
        now_ms = int(self._clock() * 1000)
        items = self._batch_get_items(group, unique_ids, wanted)
        return {item["sk"]["S"]: self._record(group, item, wanted, now_ms) for item in items if _DELETED not in item}

    def _batch_get_items(
        self, group: FeatureGroup, entity_ids: Sequence[str], features: Sequence[str], max_attempts: int = 5
    ) -> list[dict[str, Any]]:
        """BatchGetItem with a projection; unprocessed keys are retried with backoff, as DynamoDB asks."""
        if not entity_ids:
            return []
        names = {f"#f{i}": name for i, name in enumerate(features)}
        names.update(
            {"#pk": "pk", "#sk": "sk", "#event_time": _EVENT_TIME, "#ingested_at": _INGESTED_AT, "#deleted": _DELETED}
        )
        request: dict[str, Any] = {
            self.table_name: {
                "Keys": [{"pk": {"S": group.partition_key}, "sk": {"S": entity_id}} for entity_id in entity_ids],
                "ProjectionExpression": ", ".join(names),
                "ExpressionAttributeNames": names,
            }
        }
        items: list[dict[str, Any]] = []
        for attempt in range(max_attempts):
            if attempt:
                sleep(backoff_delay(attempt))
            try:
                # throttling and 5xx are retried here; unprocessed keys by this loop
                response = with_retries(lambda pending=request: self._ddb.batch_get_item(RequestItems=pending))
            except _AWS_ERRORS as error:
                raise FeatureStoreUnavailableError(field="feature_store", message=_aws_message(error)) from error
            items.extend(response.get("Responses", {}).get(self.table_name, []))
            request = response.get("UnprocessedKeys") or {}
            if not request.get(self.table_name, {}).get("Keys"):
                return items
        raise FeatureStoreUnavailableError(
            field="feature_store", message=f"DynamoDB left keys unprocessed after {max_attempts} attempts"
        )

    def delete(self, group: FeatureGroup, entity_id: str, requested_by: str, reason: str) -> DeletionRecord:
        """Erase an entity's online record for a data-subject request.

        The deletion is recorded first, so there is never a deletion without its record (a retried request
        records it again). The record is then replaced by a tombstone holding no feature value, which reads
        as absent and which no later ingestion overwrites.
        """
        if not [item for item in self._batch_get_items(group, [entity_id], []) if _DELETED not in item]:
            raise EntityNotFoundError(field="customer_id", message=f"no {group.name} record for {entity_id!r}")
        deletion = DeletionRecord(
            deletion_id=str(uuid.uuid4()),
            feature_group=group.name,
            group_version=group.version,
            entity_id=entity_id,
            requested_by=requested_by,
            reason=reason,
            requested_at=dt.datetime.fromtimestamp(self._clock(), tz=dt.UTC).isoformat(timespec="milliseconds"),
        )
        self._ddb.put_item(
            TableName=self.table_name,
            Item={
                "pk": {"S": f"DELETIONS#{group.name}"},
                "sk": {"S": f"{deletion.requested_at}#{deletion.deletion_id}"},
                "document": {"S": deletion.model_dump_json()},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
        self._ddb.put_item(
            TableName=self.table_name,
            Item={
                "pk": {"S": group.partition_key},
                "sk": {"S": entity_id},
                _EVENT_TIME: {"N": str(_TOMBSTONE_EVENT_MS)},
                _DELETED: {"S": deletion.deletion_id},
            },
        )
        return deletion

    def deletions(self, group_name: str) -> list[DeletionRecord]:
        """Every recorded deletion of a group, oldest first."""
        paginator = self._ddb.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"DELETIONS#{group_name}"}},
        )
        return [DeletionRecord.model_validate_json(i["document"]["S"]) for page in pages for i in page["Items"]]

    @staticmethod
    def _record(group: FeatureGroup, item: dict[str, Any], wanted: Iterable[str], now_ms: int) -> FeatureRecord:
        event_ms = int(item[_EVENT_TIME]["N"])
        values = {name: _decode(group.features[name], item.get(name)) for name in wanted}
        stale = now_ms - event_ms > group.ttl_seconds * 1000
        return FeatureRecord(
            entity_id=item["sk"]["S"],
            event_time=from_epoch_ms(event_ms),
            values=values,
            status="stale" if stale else "fresh",
        )


class FeatureGroupCatalog:
    """Where feature group definitions live (the feature table, pk = GROUP#<name>, sk = VERSION#<n>).

    Ingestion registers the group it writes; lookups and scoring read the latest version by name, so the
    definition is declared once (from the data schema) and every consumer agrees on it.
    """

    def __init__(self, table_name: str, dynamodb_client: Any) -> None:
        self.table_name = table_name
        self._ddb = dynamodb_client

    def register(self, group: FeatureGroup) -> None:
        """Idempotent for the same definition; a different definition under a registered version is refused."""
        document = group.model_dump_json()
        try:
            self._ddb.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": f"GROUP#{group.name}"},
                    "sk": {"S": f"VERSION#{group.version:06d}"},
                    "document": {"S": document},
                },
                ConditionExpression="attribute_not_exists(pk) OR document = :document",
                ExpressionAttributeValues={":document": {"S": document}},
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            raise FeatureGroupConflictError(
                field="feature_group",
                message=f"{group.name} v{group.version} is registered with another definition; bump its version",
            ) from None

    def latest(self, name: str) -> FeatureGroup:
        try:
            response = with_retries(
                lambda: self._ddb.query(
                    TableName=self.table_name,
                    KeyConditionExpression="pk = :pk",
                    ExpressionAttributeValues={":pk": {"S": f"GROUP#{name}"}},
                    ScanIndexForward=False,
                    Limit=1,
                )
            )
        except _AWS_ERRORS as error:
            raise FeatureStoreUnavailableError(field="feature_store", message=_aws_message(error)) from error
        if not response["Items"]:
            raise EntityNotFoundError(field="feature_group", message=f"feature group {name!r} has not been ingested")
        return FeatureGroup.model_validate_json(response["Items"][0]["document"]["S"])


class OnlineFeatureLookup:
    """What a serving function reads: one group's latest definition (re-read every `refresh_seconds`, so a
    new group version reaches warm containers) and its online records, any number of ids at a time."""

    def __init__(
        self,
        store: OnlineFeatureStore,
        catalog: FeatureGroupCatalog,
        group_name: str,
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._catalog = catalog
        self._group_name = group_name
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._group: FeatureGroup | None = None
        self._read_at = float("-inf")

    def group(self) -> FeatureGroup:
        now = self._clock()
        if self._group is None or now - self._read_at >= self._refresh_seconds:
            self._group = self._catalog.latest(self._group_name)
            self._read_at = now
        return self._group

    def records(self, entity_ids: Sequence[str], features: Sequence[str] | None = None) -> dict[str, FeatureRecord]:
        """Latest records of the ids (in batches of 100); only features the group has are read."""
        group = self.group()
        wanted = None if features is None else [name for name in features if name in group.features]
        unique_ids = list(dict.fromkeys(entity_ids))
        found: dict[str, FeatureRecord] = {}
        for start in range(0, len(unique_ids), MAX_BATCH_IDS):
            found.update(self.store.batch_get(group, unique_ids[start : start + MAX_BATCH_IDS], wanted))
        return found


def online_lookup(settings: FeatureLookupSettings, dynamodb_client: Any) -> OnlineFeatureLookup | None:
    """The lookup a serving function's settings describe; None when it has no feature table."""
    if settings.feature_store_table is None:
        return None
    return OnlineFeatureLookup(
        OnlineFeatureStore(settings.feature_store_table, dynamodb_client),
        FeatureGroupCatalog(settings.feature_store_table, dynamodb_client),
        settings.feature_group,
        settings.feature_group_refresh_seconds,
    )


def _aws_message(error: Exception) -> str:
    if isinstance(error, ClientError):
        return f"DynamoDB answered {error.response.get('Error', {}).get('Code', 'an error')}"
    return "DynamoDB is unreachable"


def _checked_feature_names(group: FeatureGroup, features: Sequence[str] | None) -> list[str]:
    if features is None:
        return list(group.features)
    unknown = [name for name in features if name not in group.features]
    if unknown:
        raise FeatureValidationError(field=f"features.{unknown[0]}", message=f"not a feature of group {group.name}")
    return list(dict.fromkeys(features))


def _encode_values(group: FeatureGroup, values: Mapping[str, Any]) -> dict[str, Any]:
    encoded: dict[str, Any] = {}
    for name, kind in group.features.items():
        value = values.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue  # missing: no attribute, read back as None and imputed at scoring time
        if kind is FeatureType.NUMBER:
            number = float(value)
            if not math.isfinite(number):
                raise FeatureValidationError(field=f"features.{name}", message="must be a finite number")
            encoded[name] = {"N": str(Decimal(repr(number)))}
        else:
            encoded[name] = {"S": str(value)}
    if _RESERVED & set(group.features):
        raise FeatureValidationError(field="features", message=f"feature names may not be one of {sorted(_RESERVED)}")
    return encoded


def _decode(kind: FeatureType, attribute: dict[str, str] | None) -> float | str | None:
    if attribute is None:
        return None
    return float(attribute["N"]) if kind is FeatureType.NUMBER else attribute["S"]
