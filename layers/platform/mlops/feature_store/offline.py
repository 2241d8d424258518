"""The offline feature store: an append-only history of every feature record, as Parquet in S3.

Layout: `offline/<group>/v<version>/date=<YYYY-MM-DD>/part-<content hash>.parquet`, partitioned by event date.
Nothing is ever overwritten (a part named by its content is written once, so re-ingesting the same records
adds nothing). Each record carries its ingestion time (`ingested_at`, Feast's created timestamp): when its
part was first written, also kept as the part's `ingested-at` metadata so a re-ingestion can reuse it.

`point_in_time` answers "what were these entities' features at these label times" with Feast's
point-in-time join: it only looks backwards, honours the group's TTL, breaks ties on event time by the
latest ingestion (the rule the online store follows too) and can exclude what was ingested after the label.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mlops.core.errors import DataValidationError
from mlops.feature_store.online import FeatureGroup, FeatureType

ENTITY = "entity_id"
EVENT_TIME = "event_time"
INGESTED_AT = "ingested_at"
FEATURE_EVENT_TIME = "feature_event_time"
FEATURE_INGESTED_AT = "feature_ingested_at"
# Parts written before ingestion times were recorded: known since the epoch, so they lose every tie.
UNKNOWN_INGESTION = pd.Timestamp(0, tz="UTC").as_unit("ns")
_INGESTED_AT_METADATA = "ingested-at"
_ROW = "_row"
_POSITION = "_position"
_LABEL_TIME = "_label_time"


@dataclasses.dataclass(frozen=True)
class AppendedRecords:
    """What `append` did: the records (typed) with the ingestion time the history holds for each of them, and
    the keys of the parts it wrote."""

    records: pd.DataFrame
    written_keys: list[str]


class OfflineFeatureStore:
    def __init__(
        self, bucket: str, s3_client: Any, prefix: str = "offline", clock: Callable[[], float] = time.time
    ) -> None:
        self.bucket = bucket
        self._s3 = s3_client
        self._prefix = prefix
        self._clock = clock

    def group_prefix(self, group: FeatureGroup) -> str:
        return f"{self._prefix}/{group.name}/v{group.version}/"

    def append(self, group: FeatureGroup, records: pd.DataFrame) -> AppendedRecords:
        """Append records (`entity_id`, `event_time` (UTC), one column per feature), one part per event date.

        A part already in the history (same records) is not written again and its records keep the ingestion
        time of their first write, so a repeated ingestion is a no-op here and, given those times, online too.
        New parts are ingested now (the clock, to the millisecond as the online store keeps it).
        """
        frame = _typed(group, records)
        now = pd.Timestamp(int(self._clock() * 1000), unit="ms", tz="UTC").as_unit("ns")
        ingested = pd.Series(now, index=frame.index)
        written = []
        for day, part in frame.groupby(frame[EVENT_TIME].dt.strftime("%Y-%m-%d"), sort=True):
            # the name hashes the records only, not their ingestion time, so the same records map to one part
            digest = hashlib.sha256(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes()).hexdigest()
            key = f"{self.group_prefix(group)}date={day}/part-{digest[:32]}.parquet"
            first_ingested = self._ingested_at_of(key)
            if first_ingested is not None:
                ingested[part.index] = first_ingested
                continue
            buffer = io.BytesIO()
            part.assign(**{INGESTED_AT: now}).to_parquet(buffer, index=False)
            self._s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=buffer.getvalue(),
                Metadata={_INGESTED_AT_METADATA: now.isoformat()},
            )
            written.append(key)
        return AppendedRecords(records=frame.assign(**{INGESTED_AT: ingested}), written_keys=written)

    def _ingested_at_of(self, key: str) -> pd.Timestamp | None:
        """The ingestion time of an existing part (None when there is no such part)."""
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=key)
        except self._s3.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        recorded = head.get("Metadata", {}).get(_INGESTED_AT_METADATA)
        return UNKNOWN_INGESTION if recorded is None else pd.Timestamp(recorded).tz_convert("UTC").as_unit("ns")

    def history(self, group: FeatureGroup) -> pd.DataFrame:
        """Every record ever appended (times as UTC nanoseconds), ordered by entity, event and ingestion time."""
        paginator = self._s3.get_paginator("list_objects_v2")
        keys = [
            obj["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.group_prefix(group))
            for obj in page.get("Contents", [])
            if obj["Key"].endswith(".parquet")
        ]
        if not keys:
            empty = _typed(group, pd.DataFrame(columns=[ENTITY, EVENT_TIME, *group.features]))
            frame = empty.assign(**{INGESTED_AT: pd.Series(dtype="datetime64[ns, UTC]")})
        else:
            frame = pd.concat(
                [
                    pd.read_parquet(io.BytesIO(self._s3.get_object(Bucket=self.bucket, Key=k)["Body"].read()))
                    for k in keys
                ],
                ignore_index=True,
            )
        if INGESTED_AT not in frame:
            frame[INGESTED_AT] = UNKNOWN_INGESTION
        frame[INGESTED_AT] = _utc_nanoseconds(frame[INGESTED_AT].fillna(UNKNOWN_INGESTION))
        frame[EVENT_TIME] = _utc_nanoseconds(frame[EVENT_TIME])
        columns = [ENTITY, EVENT_TIME, INGESTED_AT, *group.features]
        return frame[columns].sort_values([ENTITY, EVENT_TIME, INGESTED_AT], kind="stable").reset_index(drop=True)

    def point_in_time(
        self, group: FeatureGroup, entity_rows: pd.DataFrame, *, as_known_at_label_time: bool = False
    ) -> pd.DataFrame:
        """Each (`entity_id`, `event_time`) row's features as they were at its label time (`event_time`).

        Feast's point-in-time join: the record of the same entity with the latest event time at or before
        the label time (one exactly at it counts) and no older than the group's TTL (an age of exactly the TTL
        counts); ties on event time go to the latest ingestion. A row without such a record is kept, with
        missing features (NaN for numbers, None for text). With `as_known_at_label_time`, records ingested
        after the label time are ignored too: the features as the store knew them then.

        Label times may be any datetime-like (any unit; naive ones are taken as UTC); numbers are refused,
        since their unit is ambiguous. The result is `entity_rows` (same order and columns) with the features,
        the chosen record's `feature_event_time` and `feature_ingested_at` (NaT without one).
        """
        rows = entity_rows.reset_index(drop=True)
        keys = pd.DataFrame(
            {
                _ROW: np.arange(len(rows)),
                ENTITY: rows[ENTITY].astype("string"),  # the join key must have one dtype on both sides
                _LABEL_TIME: _label_times(rows[EVENT_TIME]),
            }
        )
        ttl = pd.Timedelta(seconds=group.ttl_seconds)
        history = self.history(group).rename(columns={EVENT_TIME: FEATURE_EVENT_TIME, INGESTED_AT: FEATURE_INGESTED_AT})
        history[ENTITY] = history[ENTITY].astype("string")
        history[_POSITION] = np.arange(len(history))  # the history's order breaks the last ties (file order)
        if len(keys):  # only records some row could see take part in the join
            history = history[
                history[FEATURE_EVENT_TIME].between(keys[_LABEL_TIME].min() - ttl, keys[_LABEL_TIME].max())
            ]
        # As Feast's file offline store does: every record of the row's entity, filtered, latest kept.
        candidates = keys.merge(history, on=ENTITY, how="inner")
        visible = (candidates[FEATURE_EVENT_TIME] <= candidates[_LABEL_TIME]) & (
            candidates[FEATURE_EVENT_TIME] >= candidates[_LABEL_TIME] - ttl
        )
        if as_known_at_label_time:
            visible &= candidates[FEATURE_INGESTED_AT] <= candidates[_LABEL_TIME]
        latest = (
            candidates[visible]
            .sort_values([_ROW, FEATURE_EVENT_TIME, FEATURE_INGESTED_AT, _POSITION], kind="stable")
            .drop_duplicates(_ROW, keep="last")
            .set_index(_ROW)
            .reindex(keys[_ROW])
        )
        result = rows.copy()
        for name, kind in group.features.items():
            values = latest[name].to_numpy()
            if kind is FeatureType.NUMBER:
                result[name] = pd.Series(values, dtype="float64")
            else:
                result[name] = pd.Series(values, dtype=object).where(pd.notna(values), None)
        result[FEATURE_EVENT_TIME] = latest[FEATURE_EVENT_TIME].to_numpy()
        result[FEATURE_INGESTED_AT] = latest[FEATURE_INGESTED_AT].to_numpy()
        return result


def _label_times(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise DataValidationError(
            field=EVENT_TIME, message="label times must be timestamps: a number's unit (s, ms, ns) is ambiguous"
        )
    try:
        times = _utc_nanoseconds(values)
    except (ValueError, TypeError) as error:
        raise DataValidationError(field=EVENT_TIME, message=f"label times must be timestamps: {error}") from error
    if times.isna().any():
        raise DataValidationError(field=EVENT_TIME, message="every row needs a label time")
    return times


def _utc_nanoseconds(values: pd.Series) -> pd.Series:
    """Datetime-likes of any unit and time zone as UTC nanoseconds (naive ones are taken as UTC): the as-of
    comparison needs one type on both sides."""
    return pd.to_datetime(values, utc=True).dt.as_unit("ns")


def _typed(group: FeatureGroup, records: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame(
        {ENTITY: records[ENTITY].astype(str), EVENT_TIME: pd.to_datetime(records[EVENT_TIME], utc=True)}
    )
    for name, kind in group.features.items():
        column = records[name] if name in records else pd.Series([None] * len(records), index=records.index)
        frame[name] = pd.to_numeric(column).astype("float64") if kind is FeatureType.NUMBER else column.astype(object)
    return frame.reset_index(drop=True)
