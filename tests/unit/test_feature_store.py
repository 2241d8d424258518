"""Feature store on moto: online latest-record semantics, offline history and point-in-time reads."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws

from helpers import TELECOM_CSV, TELECOM_SCHEMA
from mlops.errors import FeatureValidationError, InvalidRequestError
from mlops.feature_store import FeatureGroup, OnlineFeatureStore, WriteOutcome, feature_group_from_schema
from mlops.offline_store import OfflineFeatureStore
from mlops.schema import DataSchema
from mlops.training import read_dataset

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="features",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="offline")
        yield {"dynamodb": dynamodb, "s3": s3}


@pytest.fixture
def group() -> FeatureGroup:
    return FeatureGroup(
        name="customer_behavior",
        entity_key="customer_id",
        ttl_seconds=3600,
        features={"calls": "number", "plan": "string"},
    )


def test_a_group_is_declared_from_the_data_schema() -> None:
    schema = DataSchema.from_file(TELECOM_SCHEMA)
    group = feature_group_from_schema(schema)
    assert group.entity_key == "customer_id"
    assert group.features["number_customer_service_calls"] == "number"
    assert group.features["state"] == "string"
    assert set(group.features) == set(schema.feature_columns)


def test_an_older_event_never_overwrites_a_newer_one(aws: dict[str, Any], group: FeatureGroup) -> None:
    store = OnlineFeatureStore("features", aws["dynamodb"])
    # Given the newest record arrives first
    assert store.put_latest(group, "C1", {"calls": 5, "plan": "b"}, T0 + dt.timedelta(days=2)) is WriteOutcome.WRITTEN
    # When an older one arrives late, and the newest is re-sent
    assert store.put_latest(group, "C1", {"calls": 1, "plan": "a"}, T0) is WriteOutcome.SKIPPED_NOT_NEWER
    assert store.put_latest(group, "C1", {"calls": 5, "plan": "b"}, T0 + dt.timedelta(days=2)) is (
        WriteOutcome.SKIPPED_NOT_NEWER
    )
    # Then the store holds the newest values
    record = store.get(group, "C1")
    assert record.values == {"calls": 5.0, "plan": "b"}
    assert record.event_time == T0 + dt.timedelta(days=2)
    # And a genuinely newer event does replace it
    store.put_latest(group, "C1", {"calls": 6, "plan": None}, T0 + dt.timedelta(days=3))
    assert store.get(group, "C1").values == {"calls": 6.0, "plan": None}


def test_freshness_follows_the_groups_ttl(aws: dict[str, Any], group: FeatureGroup) -> None:
    now = {"t": T0.timestamp()}
    store = OnlineFeatureStore("features", aws["dynamodb"], clock=lambda: now["t"])
    store.put_latest(group, "C1", {"calls": 1}, T0)
    assert store.get(group, "C1").status == "fresh"
    now["t"] += group.ttl_seconds + 1
    assert store.get(group, "C1").status == "stale"


def test_batch_reads_project_only_the_requested_features_and_skip_unknown_ids(
    aws: dict[str, Any], group: FeatureGroup
) -> None:
    store = OnlineFeatureStore("features", aws["dynamodb"])
    for i in range(100):
        store.put_latest(group, f"C{i}", {"calls": i, "plan": "p"}, T0)
    records = store.batch_get(group, [f"C{i}" for i in range(99)] + ["unknown"], features=["calls"])
    assert len(records) == 99
    assert records["C42"].values == {"calls": 42.0}
    with pytest.raises(InvalidRequestError, match="at most 100"):
        store.batch_get(group, [f"C{i}" for i in range(101)])
    with pytest.raises(FeatureValidationError, match=r"features\.nope"):
        store.batch_get(group, ["C1"], features=["nope"])


def test_unprocessed_keys_are_retried(aws: dict[str, Any], group: FeatureGroup) -> None:
    # Given a DynamoDB that leaves every key but the first unprocessed on the first call, as under throttling
    real = aws["dynamodb"]
    store = OnlineFeatureStore("features", real)
    for i in range(5):
        store.put_latest(group, f"C{i}", {"calls": i}, T0)

    class ThrottledOnce:
        exceptions = real.exceptions
        calls = 0

        def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # boto3's name
            self.calls += 1
            if self.calls > 1:
                return real.batch_get_item(RequestItems=RequestItems)
            keys = RequestItems["features"]["Keys"]
            first = real.batch_get_item(RequestItems={"features": {**RequestItems["features"], "Keys": keys[:1]}})
            return {**first, "UnprocessedKeys": {"features": {**RequestItems["features"], "Keys": keys[1:]}}}

    throttled = ThrottledOnce()
    records = OnlineFeatureStore("features", throttled).batch_get(group, [f"C{i}" for i in range(5)])
    # Then every record still arrives, after a retry
    assert sorted(records) == [f"C{i}" for i in range(5)]
    assert throttled.calls == 2


def test_deleting_a_customer_removes_the_online_record(aws: dict[str, Any], group: FeatureGroup) -> None:
    store = OnlineFeatureStore("features", aws["dynamodb"])
    store.put_latest(group, "C1", {"calls": 1}, T0)
    assert store.delete(group, "C1") is True
    assert store.get(group, "C1") is None
    assert store.delete(group, "C1") is False


def test_point_in_time_returns_the_values_valid_at_each_timestamp(aws: dict[str, Any], group: FeatureGroup) -> None:
    # Given three versions of one customer, appended out of order, and one of another customer
    offline = OfflineFeatureStore("offline", aws["s3"])
    versions = pd.DataFrame(
        {
            "entity_id": ["C1", "C1", "C1", "C2"],
            "event_time": [T0 + dt.timedelta(days=10), T0, T0 + dt.timedelta(days=5), T0],
            "calls": [3.0, 1.0, 2.0, 9.0],
            "plan": ["c", "a", "b", "z"],
        }
    )
    offline.append(group, versions)
    # When asking for C1 before any record, at each version, between versions and after all of them
    asked = pd.DataFrame(
        {
            "entity_id": ["C1", "C1", "C1", "C1", "C1", "C2"],
            "event_time": [
                T0 - dt.timedelta(days=1),
                T0,
                T0 + dt.timedelta(days=7),
                T0 + dt.timedelta(days=10),
                T0 + dt.timedelta(days=30),
                T0 + dt.timedelta(days=1),
            ],
        }
    )
    result = offline.point_in_time(group, asked)
    # Then each row sees the latest value at or before its own time, never a later one
    assert np.isnan(result["calls"].iloc[0])
    assert result["calls"].tolist()[1:] == [1.0, 2.0, 3.0, 3.0, 9.0]
    assert result["plan"].tolist()[1:] == ["a", "b", "c", "c", "z"]
    assert (result["feature_event_time"].iloc[1:] <= pd.to_datetime(asked["event_time"].iloc[1:], utc=True)).all()


def test_history_is_partitioned_by_event_date_and_append_only(aws: dict[str, Any], group: FeatureGroup) -> None:
    offline = OfflineFeatureStore("offline", aws["s3"])
    frame = pd.DataFrame(
        {
            "entity_id": ["C1", "C2"],
            "event_time": [T0, T0 + dt.timedelta(days=1)],
            "calls": [1.0, 2.0],
            "plan": ["a", "b"],
        }
    )
    first = offline.append(group, frame)
    second = offline.append(group, frame)
    assert [k.split("/")[3] for k in first] == ["date=2026-11-01", "date=2026-11-02"]
    assert set(first).isdisjoint(second)
    assert len(offline.history(group)) == 4


@pytest.mark.slow
def test_ingesting_the_telecom_file_twice_changes_nothing_and_rebuilds_the_training_set(aws: dict[str, Any]) -> None:
    # Given the 4,000-customer file as one snapshot
    schema = DataSchema.from_file(TELECOM_SCHEMA)
    group = feature_group_from_schema(schema)
    frame = read_dataset(TELECOM_CSV, schema)
    online = OnlineFeatureStore("features", aws["dynamodb"])
    offline = OfflineFeatureStore("offline", aws["s3"])
    snapshot = frame.rename(columns={schema.id_column: "entity_id"}).assign(event_time=T0)

    def ingest() -> list[WriteOutcome]:
        offline.append(group, snapshot)
        return [
            online.put_latest(group, row["entity_id"], row, T0)
            for row in snapshot[["entity_id", *schema.feature_columns]].to_dict("records")
        ]

    # When ingesting it, then again
    assert set(ingest()) == {WriteOutcome.WRITTEN}
    assert set(ingest()) == {WriteOutcome.SKIPPED_NOT_NEWER}
    # Then every customer is online once, with the file's values
    pages = aws["dynamodb"].get_paginator("scan").paginate(TableName="features", Select="COUNT")
    assert sum(page["Count"] for page in pages) == 4000
    sample = online.get(group, "C00011")
    expected = frame.set_index(schema.id_column).loc["C00011"]
    assert sample.values["number_customer_service_calls"] == expected["number_customer_service_calls"]
    assert sample.values["state"] == expected["state"]
    # And the training set built through the store as of the snapshot equals the file
    rebuilt = offline.point_in_time(group, snapshot[["entity_id", "event_time"]])
    pd.testing.assert_frame_equal(
        rebuilt[schema.feature_columns].reset_index(drop=True),
        frame[schema.feature_columns].reset_index(drop=True),
        check_dtype=False,
    )
