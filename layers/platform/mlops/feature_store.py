"""Feature store: feature groups, an online store on DynamoDB and an append-only offline history in S3.

- A **feature group** (`FeatureGroup`) is declared once: name, entity key, typed features, event-time
  column, freshness window (TTL) and version. `feature_group_from_schema` derives one from a data schema.
- The **online store** keeps only the latest record per entity. Every write is conditional on being newer
  than what is stored, so out-of-order, repeated and concurrent ingestion are safe and idempotent: an older
  or equal event never overwrites a newer one.
- The **offline store** (see `mlops.offline_store`, which needs pandas and pyarrow) is the full history.

This module needs only boto3 and pydantic, so the scoring path can read online features without pandas.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlops.errors import FeatureValidationError, InvalidRequestError
from mlops.schema import DataSchema

MAX_BATCH_IDS = 100
_EVENT_TIME = "event_time"  # attribute holding the record's event time (epoch milliseconds)
_RESERVED = frozenset({"pk", "sk", _EVENT_TIME, "ingested_at"})


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
    schema: DataSchema, name: str = "customer_behavior", ttl_seconds: int = 7 * 24 * 3600
) -> FeatureGroup:
    """The feature group holding every feature column of a data schema, keyed by its id column."""
    features = {column: FeatureType.NUMBER for column in schema.numerical}
    features.update({column: FeatureType.STRING for column in schema.categorical})
    return FeatureGroup(name=name, entity_key=schema.id_column, features=features, ttl_seconds=ttl_seconds)


class FeatureRecord(BaseModel):
    entity_id: str
    event_time: dt.datetime
    values: dict[str, float | str | None]
    status: str = Field(description="fresh, or stale when older than the group's TTL")


def to_epoch_ms(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        raise InvalidRequestError(field="event_time", message="event times must carry a time zone")
    return int(moment.timestamp() * 1000)


def from_epoch_ms(epoch_ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC)


class WriteOutcome(StrEnum):
    WRITTEN = "written"
    SKIPPED_NOT_NEWER = "skipped_not_newer"


class OnlineFeatureStore:
    """The latest feature values of each entity, on DynamoDB (pk = group and version, sk = entity id)."""

    def __init__(self, table_name: str, dynamodb_client: Any, clock: Any = time.time) -> None:
        self.table_name = table_name
        self._ddb = dynamodb_client
        self._clock = clock

    def put_latest(
        self, group: FeatureGroup, entity_id: str, values: Mapping[str, Any], event_time: dt.datetime
    ) -> WriteOutcome:
        """Store the record unless the store already holds one at least as new for this entity."""
        item = {
            "pk": {"S": group.partition_key},
            "sk": {"S": entity_id},
            _EVENT_TIME: {"N": str(to_epoch_ms(event_time))},
            "ingested_at": {"N": str(int(self._clock() * 1000))},
        }
        item.update(_encode_values(group, values))
        try:
            self._ddb.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR #event_time < :event_time",
                ExpressionAttributeNames={"#event_time": _EVENT_TIME},
                ExpressionAttributeValues={":event_time": item[_EVENT_TIME]},
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return WriteOutcome.SKIPPED_NOT_NEWER
        return WriteOutcome.WRITTEN

    def get(self, group: FeatureGroup, entity_id: str, features: Sequence[str] | None = None) -> FeatureRecord | None:
        records = self.batch_get(group, [entity_id], features)
        return records.get(entity_id)

    def batch_get(
        self,
        group: FeatureGroup,
        entity_ids: Sequence[str],
        features: Sequence[str] | None = None,
        max_attempts: int = 5,
    ) -> dict[str, FeatureRecord]:
        """Latest records of up to 100 entities (BatchGetItem, unprocessed keys retried with backoff),
        reading only the requested features."""
        unique_ids = list(dict.fromkeys(entity_ids))
        if len(unique_ids) > MAX_BATCH_IDS:
            raise InvalidRequestError(field="customer_ids", message=f"at most {MAX_BATCH_IDS} ids per request")
        wanted = _checked_feature_names(group, features)
        names = {f"#f{i}": name for i, name in enumerate(wanted)}
        names.update({"#pk": "pk", "#sk": "sk", "#event_time": _EVENT_TIME})
        request: dict[str, Any] = {
            self.table_name: {
                "Keys": [{"pk": {"S": group.partition_key}, "sk": {"S": entity_id}} for entity_id in unique_ids],
                "ProjectionExpression": ", ".join(names),
                "ExpressionAttributeNames": names,
            }
        }
        items: list[dict[str, Any]] = []
        for attempt in range(max_attempts):
            if not request.get(self.table_name, {}).get("Keys"):
                break
            response = self._ddb.batch_get_item(RequestItems=request)
            items.extend(response.get("Responses", {}).get(self.table_name, []))
            request = response.get("UnprocessedKeys") or {}
            if request:
                time.sleep(min(0.05 * 2**attempt, 1.0))  # DynamoDB asks callers to back off before retrying
        else:
            if request.get(self.table_name, {}).get("Keys"):
                raise TimeoutError(f"DynamoDB left keys unprocessed after {max_attempts} attempts")
        now_ms = int(self._clock() * 1000)
        return {item["sk"]["S"]: self._record(group, item, wanted, now_ms) for item in items}

    def delete(self, group: FeatureGroup, entity_id: str) -> bool:
        """Remove an entity's online record (a data-subject request); True when there was one."""
        response = self._ddb.delete_item(
            TableName=self.table_name,
            Key={"pk": {"S": group.partition_key}, "sk": {"S": entity_id}},
            ReturnValues="ALL_OLD",
        )
        return "Attributes" in response

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
