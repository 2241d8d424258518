"""Feature ingestion: materialise a data file into a feature group's online and offline stores.

The group is declared from the data schema (`feature_group_from_schema`) and registered in the catalog, so
lookups and scoring read the same definition. Each record's event time is the file's event-time column when
it has one, otherwise the snapshot time the caller gives (`as_of`): a file of customers as they were then.
Each record's ingestion time is the one the offline history holds for it (when its part was first written),
and the online store is given the same time, so both stores break ties on event time alike.
"""

from __future__ import annotations

import datetime as dt
import io
import time
from typing import Any

import pandas as pd

from mlops.core.artifacts import sha256_hex
from mlops.core.errors import DataValidationError
from mlops.data.dataset import read_dataset
from mlops.data.schema import DataSchema
from mlops.feature_store.offline import ENTITY, EVENT_TIME, INGESTED_AT, OfflineFeatureStore
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
    appended = offline.append(group, records)
    outcomes = online.put_latest_many(
        group,
        (
            IncomingRecord(
                entity_id=row[ENTITY],
                event_time=row[EVENT_TIME].to_pydatetime(),
                ingested_at=row[INGESTED_AT].to_pydatetime(),
                values=row,
            )
            for row in appended.records.to_dict("records")
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
        offline_parts_written=len(appended.written_keys),
        event_time_source="column" if group.event_time_column in frame.columns else "as_of",
        ttl_seconds=group.ttl_seconds,
        as_of=as_of,
        ingested_at=appended.records[INGESTED_AT].max().to_pydatetime() if len(records) else None,
        seconds=round(seconds, 3),
        rows_per_second=round(len(records) / seconds, 1) if seconds else 0.0,
    )


def training_frame_from_store(
    labels: pd.DataFrame,
    schema: DataSchema,
    group: FeatureGroup,
    as_of: dt.datetime | None,
    offline: OfflineFeatureStore,
    *,
    label_time_column: str | None = None,
    as_known_at_label_time: bool = False,
) -> pd.DataFrame:
    """The training set from the store: each labelled entity's features at its label time, by the offline
    store's point-in-time join (no value recorded later leaks in; the group's TTL applies).

    The label time is `as_of` for every row, or each row's own value of the `label_time_column` of `labels`
    (give exactly one). With `as_known_at_label_time`, records ingested after a row's label time are left out
    too. The result has the id column, the label time column (when given), the features and the target.
    """
    if (as_of is None) == (label_time_column is None):
        raise DataValidationError(field="label_time_column", message="give either as_of or label_time_column")
    if label_time_column is None:
        label_times: Any = pd.Timestamp(as_of)
    elif label_time_column not in labels.columns:
        raise DataValidationError(field=label_time_column, message="the labels have no such column")
    else:
        label_times = labels[label_time_column].to_numpy()
    asked = pd.DataFrame({ENTITY: labels[schema.id_column].astype(str).to_numpy(), EVENT_TIME: label_times})
    try:
        features = offline.point_in_time(group, asked, as_known_at_label_time=as_known_at_label_time)
    except DataValidationError as error:
        raise DataValidationError(field=label_time_column or "as_of", message=error.message) from error
    frame = pd.DataFrame({schema.id_column: labels[schema.id_column].to_numpy()})
    if label_time_column is not None:
        frame[label_time_column] = labels[label_time_column].to_numpy()
    for column in schema.feature_columns:
        frame[column] = features[column].to_numpy()
    frame[schema.target] = labels[schema.target].to_numpy()
    return frame
