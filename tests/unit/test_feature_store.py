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
from botocore.exceptions import ClientError
from moto import mock_aws

from helpers import TELECOM_CSV, TELECOM_SCHEMA
from mlops.core.errors import (
    EntityNotFoundError,
    FeatureGroupConflictError,
    FeatureStoreUnavailableError,
    FeatureValidationError,
    InvalidRequestError,
)
from mlops.data.dataset import read_dataset
from mlops.data.schema import DataSchema
from mlops.feature_store.ingestion import ingest_file, training_frame_from_store
from mlops.feature_store.offline import OfflineFeatureStore
from mlops.feature_store.online import (
    FeatureGroup,
    FeatureGroupCatalog,
    IncomingRecord,
    IngestionReport,
    OnlineFeatureLookup,
    OnlineFeatureStore,
    WriteOutcome,
    feature_group_from_schema,
)

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
    ingested = T0 + dt.timedelta(days=30)
    # Given the newest record arrives first
    newest = (T0 + dt.timedelta(days=2), ingested)
    assert store.put_latest(group, "C1", {"calls": 5, "plan": "b"}, *newest) is WriteOutcome.WRITTEN
    # When an older one arrives late, even ingested later, and the newest is re-sent (same ingestion)
    later = ingested + dt.timedelta(hours=1)
    assert store.put_latest(group, "C1", {"calls": 1, "plan": "a"}, T0, later) is WriteOutcome.SKIPPED_NOT_NEWER
    assert store.put_latest(group, "C1", {"calls": 5, "plan": "b"}, *newest) is WriteOutcome.SKIPPED_NOT_NEWER
    # Then the store holds the newest values
    record = store.get(group, "C1")
    assert record.values == {"calls": 5.0, "plan": "b"}
    assert record.event_time == T0 + dt.timedelta(days=2)
    # And a genuinely newer event does replace it
    store.put_latest(group, "C1", {"calls": 6, "plan": None}, T0 + dt.timedelta(days=3), ingested)
    assert store.get(group, "C1").values == {"calls": 6.0, "plan": None}


def test_a_record_with_the_same_event_time_replaces_the_stored_one_only_if_ingested_later(
    aws: dict[str, Any], group: FeatureGroup
) -> None:
    # Given a record of C1 at T0 ingested at T0 + 1h (a clock at T0 + 2h for records without an ingestion time)
    store = OnlineFeatureStore("features", aws["dynamodb"], clock=lambda: (T0 + dt.timedelta(hours=2)).timestamp())
    hour = dt.timedelta(hours=1)
    store.put_latest(group, "C1", {"calls": 1, "plan": "a"}, T0, T0 + hour)
    # When a record with the same event time but an earlier ingestion arrives, it is refused
    assert store.put_latest(group, "C1", {"calls": 0}, T0, T0 + hour / 2) is WriteOutcome.SKIPPED_NOT_NEWER
    assert store.get(group, "C1").values == {"calls": 1.0, "plan": "a"}
    # When one ingested later arrives (a correction), it replaces the stored record, as the offline join would
    assert store.put_latest(group, "C1", {"calls": 2, "plan": "b"}, T0, T0 + 1.5 * hour) is WriteOutcome.WRITTEN
    assert store.get(group, "C1").values == {"calls": 2.0, "plan": "b"}
    # And one without an ingestion time is ingested now (the clock), which is later still
    assert store.put_latest(group, "C1", {"calls": 3, "plan": "c"}, T0) is WriteOutcome.WRITTEN
    assert store.get(group, "C1").values == {"calls": 3.0, "plan": "c"}
    # And in a batch, the latest ingestion of the same event wins whatever the input order
    batch = [
        IncomingRecord(entity_id="C2", event_time=T0, ingested_at=T0 + 2 * hour, values={"calls": 22}),
        IncomingRecord(entity_id="C2", event_time=T0, ingested_at=T0 + hour, values={"calls": 21}),
    ]
    assert store.put_latest_many(group, batch) == {WriteOutcome.WRITTEN: 1, WriteOutcome.SKIPPED_NOT_NEWER: 1}
    assert store.get(group, "C2").values["calls"] == 22.0
    older = [IncomingRecord(entity_id="C2", event_time=T0, ingested_at=T0, values={"calls": 20})]
    assert store.put_latest_many(group, older) == {WriteOutcome.SKIPPED_NOT_NEWER: 1}
    assert store.get(group, "C2").values["calls"] == 22.0


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


def test_deleting_a_customer_removes_the_online_record_and_records_the_deletion(
    aws: dict[str, Any], group: FeatureGroup
) -> None:
    # Given a stored customer
    store = OnlineFeatureStore("features", aws["dynamodb"])
    store.put_latest(group, "C1", {"calls": 1, "plan": "a"}, T0)
    # When a data-subject request deletes it
    deletion = store.delete(group, "C1", requested_by="arn:aws:iam::123:user/dpo", reason="data-subject request")
    # Then the online record is gone and the deletion is on record, without any feature value
    assert store.get(group, "C1") is None
    assert store.deletions(group.name) == [deletion]
    assert deletion.entity_id == "C1"
    assert deletion.requested_by.endswith("user/dpo")
    assert "calls" not in deletion.model_dump_json()
    # And deleting it again is a clear 404-type error, recording nothing
    with pytest.raises(EntityNotFoundError, match="customer_id"):
        store.delete(group, "C1", requested_by="x", reason="again")
    assert len(store.deletions(group.name)) == 1
    # And no later ingestion brings the erased customer back, however new its event
    assert store.put_latest(group, "C1", {"calls": 2}, T0 + dt.timedelta(days=365)) is WriteOutcome.SKIPPED_NOT_NEWER
    record = IncomingRecord(entity_id="C1", event_time=T0, values={"calls": 2})
    assert store.put_latest_many(group, [record]) == {WriteOutcome.SKIPPED_NOT_NEWER: 1}
    assert store.get(group, "C1") is None


def test_bulk_ingestion_keeps_the_newest_record_per_entity(aws: dict[str, Any], group: FeatureGroup) -> None:
    store = OnlineFeatureStore("features", aws["dynamodb"])
    ingested = T0 + dt.timedelta(days=10)
    # Given a stored record of C1 at day 5
    store.put_latest(group, "C1", {"calls": 5, "plan": "e"}, T0 + dt.timedelta(days=5), ingested)
    # When a batch brings C1 at days 2 and 9 (out of order), an older C1 than stored, and C2 twice at one time

    def record(entity_id: str, days: int, values: dict[str, Any]) -> IncomingRecord:
        return IncomingRecord(
            entity_id=entity_id, event_time=T0 + dt.timedelta(days=days), ingested_at=ingested, values=values
        )

    batch = [
        record("C1", 9, {"calls": 9, "plan": "i"}),
        record("C1", 2, {"calls": 2, "plan": "b"}),
        record("C2", 0, {"calls": 1, "plan": "a"}),
        record("C2", 0, {"calls": 1, "plan": "a"}),
    ]
    outcomes = store.put_latest_many(group, batch, workers=4)
    # Then only the newest record of each entity is written
    assert outcomes == {WriteOutcome.WRITTEN: 2, WriteOutcome.SKIPPED_NOT_NEWER: 2}
    assert store.get(group, "C1").values == {"calls": 9.0, "plan": "i"}
    # And sending the same batch again (same ingestion time) writes nothing
    assert store.put_latest_many(group, batch) == {WriteOutcome.SKIPPED_NOT_NEWER: 4}


def test_the_catalog_keeps_one_definition_per_group_version(aws: dict[str, Any], group: FeatureGroup) -> None:
    catalog = FeatureGroupCatalog("features", aws["dynamodb"])
    # Given no registration, the group is unknown
    with pytest.raises(EntityNotFoundError, match="feature_group"):
        catalog.latest(group.name)
    # When registering it twice, then a second version
    catalog.register(group)
    catalog.register(group)
    v2 = group.model_copy(update={"version": 2, "ttl_seconds": 60})
    catalog.register(v2)
    # Then the latest version is read back, and a changed definition under a used version is refused
    assert catalog.latest(group.name) == v2
    with pytest.raises(FeatureGroupConflictError, match="bump its version"):
        catalog.register(group.model_copy(update={"ttl_seconds": 5}))


def test_a_lookup_reads_any_number_of_ids_in_batches_of_100(aws: dict[str, Any], group: FeatureGroup) -> None:
    store = OnlineFeatureStore("features", aws["dynamodb"])
    FeatureGroupCatalog("features", aws["dynamodb"]).register(group)
    store.put_latest_many(
        group, [IncomingRecord(entity_id=f"C{i}", event_time=T0, values={"calls": i}) for i in range(250)]
    )
    lookup = OnlineFeatureLookup(store, FeatureGroupCatalog("features", aws["dynamodb"]), group.name, 60)
    records = lookup.records([f"C{i}" for i in range(260)], features=["calls", "not_in_group"])
    assert len(records) == 250
    assert records["C249"].values == {"calls": 249.0}


def test_a_failing_dynamodb_is_a_retryable_unavailable_error(group: FeatureGroup) -> None:
    class Down:
        def batch_get_item(self, **_: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "BatchGetItem")

    with pytest.raises(FeatureStoreUnavailableError, match="ProvisionedThroughputExceeded") as raised:
        OnlineFeatureStore("features", Down()).get(group, "C1")
    assert raised.value.retryable


def test_point_in_time_returns_the_values_valid_at_each_timestamp(aws: dict[str, Any], group: FeatureGroup) -> None:
    # Given a group whose records stay fresh for 60 days (the TTL bounds the join, see test_point_in_time.py)
    group = group.model_copy(update={"ttl_seconds": 60 * 24 * 3600})
    # And three versions of one customer, appended out of order, and one of another customer
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
    assert result["plan"].iloc[0] is None


def test_history_is_partitioned_by_event_date_and_append_only(aws: dict[str, Any], group: FeatureGroup) -> None:
    now = {"t": T0.timestamp()}
    offline = OfflineFeatureStore("offline", aws["s3"], clock=lambda: now["t"])
    frame = pd.DataFrame(
        {
            "entity_id": ["C1", "C2"],
            "event_time": [T0, T0 + dt.timedelta(days=1)],
            "calls": [1.0, 2.0],
            "plan": ["a", "b"],
        }
    )
    # Given two records of two days, appended at T0
    first = offline.append(group, frame).written_keys
    assert [k.split("/")[3] for k in first] == ["date=2026-11-01", "date=2026-11-02"]
    # When appending the same records again an hour later, and then new records
    now["t"] += 3600
    again = offline.append(group, frame)
    newer = frame.assign(event_time=T0 + dt.timedelta(days=1), calls=[5.0, 6.0])
    added = offline.append(group, newer).written_keys
    # Then the same records add nothing and keep their first ingestion time; new records add a part
    assert again.written_keys == []
    assert again.records["ingested_at"].tolist() == [pd.Timestamp(T0)] * 2
    assert [k.split("/")[3] for k in added] == ["date=2026-11-02"]
    history = offline.history(group)
    assert len(history) == 4
    assert sorted(history["ingested_at"].unique().tolist()) == [
        pd.Timestamp(T0),
        pd.Timestamp(T0 + dt.timedelta(hours=1)),
    ]


@pytest.mark.slow
def test_ingesting_the_telecom_file_twice_changes_nothing_and_rebuilds_the_training_set(aws: dict[str, Any]) -> None:
    # Given the 4,000-customer file as one snapshot
    schema = DataSchema.from_file(TELECOM_SCHEMA)
    group = feature_group_from_schema(schema)
    raw = TELECOM_CSV.read_bytes()
    online = OnlineFeatureStore("features", aws["dynamodb"])
    offline = OfflineFeatureStore("offline", aws["s3"])
    catalog = FeatureGroupCatalog("features", aws["dynamodb"])

    def ingest() -> IngestionReport:
        return ingest_file(raw, "telecom_churn.csv", schema, group, T0, online, offline, catalog)

    # When ingesting it, then again
    first, second = ingest(), ingest()
    # Then every customer is written once, and the second run writes nothing online or offline
    assert (first.rows, first.entities, first.written, first.offline_parts_written) == (4000, 4000, 4000, 1)
    assert (second.written, second.skipped_not_newer, second.offline_parts_written) == (0, 4000, 0)
    pages = (
        aws["dynamodb"]
        .get_paginator("scan")
        .paginate(
            TableName="features",
            Select="COUNT",
            FilterExpression="begins_with(pk, :fg)",
            ExpressionAttributeValues={":fg": {"S": "FG#"}},
        )
    )
    assert sum(page["Count"] for page in pages) == 4000
    assert second.ingested_at == first.ingested_at  # the records keep the time they were first ingested
    frame = read_dataset(TELECOM_CSV, schema)
    sample = online.get(group, "C00011")
    expected = frame.set_index(schema.id_column).loc["C00011"]
    assert sample.values["number_customer_service_calls"] == expected["number_customer_service_calls"]
    assert sample.values["state"] == expected["state"]
    # And the training set built through the store as of the snapshot equals the one built from the file
    rebuilt = training_frame_from_store(frame, schema, catalog.latest(group.name), T0, offline)
    columns = [schema.id_column, *schema.feature_columns, schema.target]
    pd.testing.assert_frame_equal(rebuilt[columns], frame[columns].reset_index(drop=True), check_dtype=False)
    # But as of a moment before the snapshot the store knows nothing: no later value leaks into the past
    before = training_frame_from_store(frame, schema, group, T0 - dt.timedelta(seconds=1), offline)
    assert before[schema.feature_columns].isna().all().all()
