"""Feature ingestion: materialise a data file into a feature group's online and offline stores.

The group is declared from the data schema (`feature_group_from_schema`) and registered in the catalog, so
lookups and scoring read the same definition. Each record's event time is the file's event-time column when
it has one, otherwise the snapshot time the caller gives (`as_of`): a file of customers as they were then.
"""

from __future__ import annotations

import datetime as dt
import io
import time

import pandas as pd

from mlops.core.artifacts import sha256_hex
from mlops.core.errors import DataValidationError
from mlops.data.dataset import read_dataset
from mlops.data.schema import DataSchema
from mlops.feature_store.offline import ENTITY, EVENT_TIME, OfflineFeatureStore
from mlops.feature_store.online import (
    FeatureGroup,
    FeatureGroupCatalog,
    IncomingRecord,
    IngestionReport,
    OnlineFeatureStore,
    WriteOutcome,
)


def feature_records(frame: pd.DataFrame, schema: DataSchema, group: FeatureGroup, as_of: dt.datetime) -> pd.DataFrame:
    """`entity_id`, `event_time` (UTC) and the group's features of every row of a schema-checked frame."""
    if group.event_time_column in frame.columns:
        event_times = pd.to_datetime(frame[group.event_time_column], utc=True, errors="coerce")
        if event_times.isna().any():
            raise DataValidationError(field=group.event_time_column, message="every row needs a valid event time")
    else:
        if as_of.tzinfo is None:
            raise DataValidationError(field="as_of", message="the snapshot time must carry a time zone")
        event_times = pd.Series(pd.Timestamp(as_of).tz_convert("UTC"), index=frame.index)
    records = frame[list(group.features)].copy()
    records.insert(0, EVENT_TIME, event_times)
    records.insert(0, ENTITY, frame[schema.id_column].astype(str))
    return records.reset_index(drop=True)


def ingest_file(
    raw: bytes,
    source_key: str,
    schema: DataSchema,
    group: FeatureGroup,
    as_of: dt.datetime,
    online: OnlineFeatureStore,
    offline: OfflineFeatureStore,
    catalog: FeatureGroupCatalog,
    workers: int = 8,
) -> IngestionReport:
    """Register the group, append the file's records to the offline history and keep the newest per entity
    online. Safe to repeat: the same file adds no offline part and overwrites no online record."""
    started = time.perf_counter()
    frame = read_dataset(io.BytesIO(raw), schema)  # names the column of a missing column or bad type
    if frame[schema.id_column].isna().any():
        raise DataValidationError(field=schema.id_column, message="every row needs an entity id")
    records = feature_records(frame, schema, group, as_of)
    catalog.register(group)
    parts = offline.append(group, records)
    outcomes = online.put_latest_many(
        group,
        (
            IncomingRecord(entity_id=row[ENTITY], event_time=row[EVENT_TIME].to_pydatetime(), values=row)
            for row in records.to_dict("records")
        ),
        workers=workers,
    )
    seconds = time.perf_counter() - started
    return IngestionReport(
        feature_group=group.name,
        group_version=group.version,
        source_key=source_key,
        source_sha256=sha256_hex(raw),
        rows=len(records),
        entities=int(records[ENTITY].nunique()),
        written=outcomes[WriteOutcome.WRITTEN],
        skipped_not_newer=outcomes[WriteOutcome.SKIPPED_NOT_NEWER],
        offline_parts_written=len(parts),
        event_time_source="column" if group.event_time_column in frame.columns else "as_of",
        as_of=as_of,
        seconds=round(seconds, 3),
        rows_per_second=round(len(records) / seconds, 1) if seconds else 0.0,
    )


def training_frame_from_store(
    labels: pd.DataFrame, schema: DataSchema, group: FeatureGroup, as_of: dt.datetime, offline: OfflineFeatureStore
) -> pd.DataFrame:
    """The training set as the store knew it: each labelled entity's features as of `as_of` (a point-in-time
    join, so no value recorded later leaks in), with the id and target columns of `labels`."""
    asked = pd.DataFrame({ENTITY: labels[schema.id_column].astype(str), EVENT_TIME: pd.Timestamp(as_of)})
    features = offline.point_in_time(group, asked)
    frame = pd.DataFrame({schema.id_column: labels[schema.id_column].to_numpy()})
    for column in schema.feature_columns:
        frame[column] = features[column].to_numpy()
    frame[schema.target] = labels[schema.target].to_numpy()
    return frame
