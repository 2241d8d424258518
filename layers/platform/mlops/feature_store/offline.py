"""The offline feature store: an append-only history of every feature record, as Parquet in S3.

Layout: `offline/<group>/v<version>/date=<YYYY-MM-DD>/part-<content hash>.parquet`, partitioned by event date.
Nothing is ever overwritten (a part named by its content is written once, so re-ingesting the same records
adds nothing), and the history can answer "what were this entity's features at time T" for any T:
`point_in_time` does that with an as-of join that only looks backwards, so a training row never sees a
value recorded after its own timestamp.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pandas as pd

from mlops.feature_store.online import FeatureGroup, FeatureType

ENTITY = "entity_id"
EVENT_TIME = "event_time"


class OfflineFeatureStore:
    def __init__(self, bucket: str, s3_client: Any, prefix: str = "offline") -> None:
        self.bucket = bucket
        self._s3 = s3_client
        self._prefix = prefix

    def group_prefix(self, group: FeatureGroup) -> str:
        return f"{self._prefix}/{group.name}/v{group.version}/"

    def append(self, group: FeatureGroup, records: pd.DataFrame) -> list[str]:
        """Append records (`entity_id`, `event_time` (UTC), one column per feature); returns the keys of the
        parts written, one per event date (none for records already in the history as the same part)."""
        frame = _typed(group, records)
        keys = []
        for day, part in frame.groupby(frame[EVENT_TIME].dt.strftime("%Y-%m-%d"), sort=True):
            digest = hashlib.sha256(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes()).hexdigest()
            key = f"{self.group_prefix(group)}date={day}/part-{digest[:32]}.parquet"
            if self._exists(key):
                continue
            buffer = io.BytesIO()
            part.to_parquet(buffer, index=False)
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=buffer.getvalue())
            keys.append(key)
        return keys

    def _exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=key)
        except self._s3.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    def history(self, group: FeatureGroup) -> pd.DataFrame:
        """Every record ever appended, ordered by entity and event time."""
        paginator = self._s3.get_paginator("list_objects_v2")
        keys = [
            obj["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.group_prefix(group))
            for obj in page.get("Contents", [])
            if obj["Key"].endswith(".parquet")
        ]
        if not keys:
            return _typed(group, pd.DataFrame(columns=[ENTITY, EVENT_TIME, *group.features]))
        parts = [
            pd.read_parquet(io.BytesIO(self._s3.get_object(Bucket=self.bucket, Key=k)["Body"].read())) for k in keys
        ]
        frame = pd.concat(parts, ignore_index=True)
        return frame.sort_values([ENTITY, EVENT_TIME], kind="stable").reset_index(drop=True)

    def point_in_time(self, group: FeatureGroup, entity_times: pd.DataFrame) -> pd.DataFrame:
        """For each (`entity_id`, `event_time`) row, the features as they were at that time.

        The latest record at or before the row's time wins; an entity with no record by then gets missing
        values. Records that share an event time are deduplicated (re-ingestion is idempotent). The result
        keeps the order and the columns of `entity_times` and adds the features and `feature_event_time`.
        """
        history = self.history(group).drop_duplicates([ENTITY, EVENT_TIME], keep="last")
        history = history.rename(columns={EVENT_TIME: "feature_event_time"})
        history[ENTITY] = history[ENTITY].astype("string")
        left = entity_times.assign(_row=range(len(entity_times)))
        left[ENTITY] = left[ENTITY].astype("string")  # the join key must have one dtype on both sides
        left[EVENT_TIME] = pd.to_datetime(left[EVENT_TIME], utc=True)
        joined = pd.merge_asof(
            left.sort_values(EVENT_TIME, kind="stable"),
            history.sort_values("feature_event_time", kind="stable"),
            left_on=EVENT_TIME,
            right_on="feature_event_time",
            by=ENTITY,
            direction="backward",
            allow_exact_matches=True,
        )
        return joined.sort_values("_row").drop(columns="_row").reset_index(drop=True)


def _typed(group: FeatureGroup, records: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame(
        {ENTITY: records[ENTITY].astype(str), EVENT_TIME: pd.to_datetime(records[EVENT_TIME], utc=True)}
    )
    for name, kind in group.features.items():
        column = records[name] if name in records else pd.Series([None] * len(records), index=records.index)
        frame[name] = pd.to_numeric(column).astype("float64") if kind is FeatureType.NUMBER else column.astype(object)
    return frame.reset_index(drop=True)
