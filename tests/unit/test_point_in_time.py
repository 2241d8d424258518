"""Point-in-time training against Feast's semantics, on a hand-built history (moto S3 and DynamoDB).

Feast is not a dependency: the expected rows are written by hand from Feast's point-in-time join
(https://docs.feast.dev/v0.67-branch/getting-started/concepts/point-in-time-joins). For each entity row (entity
id, label time) it takes the feature row of the same entity with the latest event timestamp at or before the
label time (a record exactly at the label time counts) and no earlier than the label time minus the feature
view's TTL (an age of exactly the TTL counts); rows with the same event timestamp are deduplicated by the latest
created timestamp (a data source's `created_timestamp_column`, here the ingestion time); an entity row without
such a record is kept, with null features. Ingestion times play no other part in Feast's join; the store's
`as_known_at_label_time` option also leaves out records ingested after the label time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws

from helpers import load_template
from mlops.core.errors import DataValidationError
from mlops.data.schema import DataSchema
from mlops.feature_store.ingestion import ingest_file, training_frame_from_store
from mlops.feature_store.offline import OfflineFeatureStore
from mlops.feature_store.online import (
    FeatureGroup,
    FeatureGroupCatalog,
    OnlineFeatureStore,
    feature_group_from_schema,
)

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
MINUTE, HOUR, DAY = dt.timedelta(minutes=1), dt.timedelta(hours=1), dt.timedelta(days=1)
GROUP = FeatureGroup(
    name="customer_behavior",
    entity_key="customer_id",
    ttl_seconds=24 * 3600,
    features={"calls": "number", "plan": "string"},
)

# The history: (entity, event time, ingestion time, calls, plan). Records with one ingestion time are one file.
HISTORY = [
    ("C1", T0 - 2 * HOUR, T0 - 2 * HOUR, 1.0, "a"),
    ("C1", T0, T0, 2.0, "b"),
    ("C1", T0 + 2 * HOUR, T0 + 2 * HOUR, 3.0, "c"),
    ("C2", T0 + HOUR, T0 + HOUR, 20.0, "x"),
    ("C3", T0 - HOUR, T0 - HOUR, 30.0, "first"),
    ("C3", T0 - HOUR, T0 + 30 * MINUTE, 31.0, "corrected"),  # same event time, ingested later
    ("C4", T0, T0, 40.0, "p"),
    ("C4", T0, T0 + MINUTE, 41.0, "q"),
    ("C5", T0 - DAY, T0 - DAY, 50.0, "ttl"),
    ("C6", T0 - 3 * DAY, T0 - 3 * DAY, 60.0, "stale"),
    ("C6", T0 - 6 * HOUR, T0 - 6 * HOUR, 61.0, "fresh"),
    ("C7", T0 - 3 * HOUR, T0 - 3 * HOUR, 70.0, "early"),
    ("C7", T0 - HOUR, T0 + 5 * HOUR, 71.0, "late"),  # late-arriving: ingested 6 hours after its event
    ("C8", T0 - 2 * DAY, T0 - 2 * DAY, 80.0, "old"),
    ("C8", T0 + HOUR, T0 + HOUR, 81.0, "later"),
    ("C10", T0 - 2 * HOUR, T0 - 2 * HOUR, 100.0, "n"),
    ("C10", T0 - HOUR, T0 - HOUR, None, None),  # the latest record has missing values
]


@dataclasses.dataclass(frozen=True)
class Expected:
    calls: float
    plan: str | None
    event_time: dt.datetime


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    entity_id: str
    label_time: dt.datetime
    feast: Expected | None  # None: no record, the row is kept with missing features
    as_known: Expected | str | None = "same as feast"  # with as_known_at_label_time, where it differs

    @property
    def expected_as_known(self) -> Expected | None:
        return self.feast if isinstance(self.as_known, str) else self.as_known


CASES = [
    Case("before_any_record", "C1", T0 - 3 * HOUR, None),
    Case("record_exactly_at_the_label_time_counts", "C1", T0 - 2 * HOUR, Expected(1.0, "a", T0 - 2 * HOUR)),
    Case("latest_record_before_the_label_time", "C1", T0 - HOUR, Expected(1.0, "a", T0 - 2 * HOUR)),
    Case("newer_record_exactly_at_the_label_time_wins", "C1", T0, Expected(2.0, "b", T0)),
    Case("a_later_record_is_never_seen", "C1", T0 + HOUR, Expected(2.0, "b", T0)),
    Case("latest_of_all_records", "C1", T0 + 5 * HOUR, Expected(3.0, "c", T0 + 2 * HOUR)),
    Case("only_records_after_the_label_time", "C2", T0, None),
    Case("entity_without_any_record", "C9", T0, None),
    Case("tie_on_event_time_goes_to_the_latest_ingestion", "C3", T0 + HOUR, Expected(31.0, "corrected", T0 - HOUR)),
    Case(
        "tie_whose_correction_was_ingested_after_the_label_time",
        "C3",
        T0,
        Expected(31.0, "corrected", T0 - HOUR),
        as_known=Expected(30.0, "first", T0 - HOUR),
    ),
    Case(
        "tie_exactly_at_the_label_time",
        "C4",
        T0,
        Expected(41.0, "q", T0),
        as_known=Expected(40.0, "p", T0),  # "p" was ingested exactly at the label time: known by then
    ),
    Case("age_of_exactly_the_ttl_counts", "C5", T0, Expected(50.0, "ttl", T0 - DAY)),
    Case("older_than_the_ttl_is_missing", "C5", T0 + dt.timedelta(seconds=1), None),
    Case("newer_record_within_the_ttl", "C6", T0, Expected(61.0, "fresh", T0 - 6 * HOUR)),
    Case("only_record_older_than_the_ttl", "C6", T0 - DAY, None),
    Case(
        "late_arriving_record",
        "C7",
        T0,
        Expected(71.0, "late", T0 - HOUR),
        as_known=Expected(70.0, "early", T0 - 3 * HOUR),
    ),
    Case("late_record_once_ingested", "C7", T0 + 6 * HOUR, Expected(71.0, "late", T0 - HOUR)),
    Case("stale_record_before_and_fresh_record_after", "C8", T0, None),
    Case("missing_values_of_the_latest_record_are_not_filled", "C10", T0, Expected(np.nan, None, T0 - HOUR)),
]


def s3_client() -> Any:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="offline")
    return s3


def ingest_history(s3: Any, group: FeatureGroup = GROUP) -> OfflineFeatureStore:
    """HISTORY appended one file per ingestion time, each at its own time."""
    now = {"t": 0.0}
    offline = OfflineFeatureStore("offline", s3, clock=lambda: now["t"])
    history = pd.DataFrame(HISTORY, columns=["entity_id", "event_time", "ingested_at", "calls", "plan"])
    for ingested_at, file in history.groupby("ingested_at", sort=True):
        now["t"] = ingested_at.timestamp()
        offline.append(group, file.drop(columns="ingested_at"))
    return offline


def label_rows(label_times: Any = None) -> pd.DataFrame:
    times = [case.label_time for case in CASES] if label_times is None else label_times
    return pd.DataFrame({"entity_id": [case.entity_id for case in CASES], "event_time": times})


@pytest.fixture(scope="module")
def joined() -> dict[str, pd.DataFrame]:
    """The join of every case's label row, with Feast's semantics and as the store knew it at the label time."""
    with mock_aws():
        offline = ingest_history(s3_client())
        return {
            "feast": offline.point_in_time(GROUP, label_rows()),
            "as_known": offline.point_in_time(GROUP, label_rows(), as_known_at_label_time=True),
        }


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        table = load_template()["Resources"]["FeatureStoreTable"]["Properties"]
        dynamodb.create_table(
            TableName="features",
            **{key: table[key] for key in ("AttributeDefinitions", "KeySchema", "BillingMode")},
        )
        yield {"dynamodb": dynamodb, "s3": s3_client()}


def assert_row(row: pd.Series, expected: Expected | None) -> None:
    if expected is None:
        assert np.isnan(row["calls"])
        assert row["plan"] is None
        assert pd.isna(row["feature_event_time"])
        return
    np.testing.assert_equal(row["calls"], expected.calls)
    assert row["plan"] == expected.plan
    assert row["feature_event_time"] == pd.Timestamp(expected.event_time)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_label_row_gets_the_features_feast_gives_it(case: Case, joined: dict[str, pd.DataFrame]) -> None:
    # Given the hand-built history and every case's label row (the `joined` fixture)
    # When they are joined at once with Feast's semantics
    result = joined["feast"]
    # Then this case's row holds the record Feast picks for it, or missing features
    assert_row(result.iloc[CASES.index(case)], case.feast)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_as_known_at_the_label_time_leaves_out_later_ingestions(case: Case, joined: dict[str, pd.DataFrame]) -> None:
    # Given the same history and label rows
    # When they are joined as the store knew them at each label time
    result = joined["as_known"]
    # Then a record ingested after the label time is not seen, and nothing else changes
    assert_row(result.iloc[CASES.index(case)], case.expected_as_known)
    known = result["feature_ingested_at"].iloc[CASES.index(case)]
    assert pd.isna(known) or known <= pd.Timestamp(case.label_time)


def test_the_join_keeps_every_label_row_in_order(joined: dict[str, pd.DataFrame]) -> None:
    # Given the label rows, when joined
    result = joined["feast"]
    # Then every row is kept (a left join), in order, with its own columns first
    assert len(result) == len(CASES)
    assert result["entity_id"].tolist() == [case.entity_id for case in CASES]
    assert list(result.columns) == [
        "entity_id",
        "event_time",
        "calls",
        "plan",
        "feature_event_time",
        "feature_ingested_at",
    ]
    assert result["calls"].dtype == "float64"


LABEL_TIME_FORMS = {
    "seconds_naive": lambda: pd.Series([c.label_time.replace(tzinfo=None) for c in CASES]).astype("datetime64[s]"),
    "milliseconds_naive": lambda: pd.Series([c.label_time.replace(tzinfo=None) for c in CASES]).astype(
        "datetime64[ms]"
    ),
    "nanoseconds_naive": lambda: pd.Series([c.label_time.replace(tzinfo=None) for c in CASES]).astype("datetime64[ns]"),
    "nanoseconds_utc": lambda: pd.Series([c.label_time for c in CASES]).astype("datetime64[ns, UTC]"),
    "milliseconds_in_paris": lambda: (
        pd.Series([c.label_time for c in CASES]).dt.tz_convert("Europe/Paris").astype("datetime64[ms, Europe/Paris]")
    ),
    "python_datetimes_in_new_york": lambda: pd.Series(
        [c.label_time.astimezone(ZoneInfo("America/New_York")) for c in CASES], dtype=object
    ),
    "iso_strings": lambda: pd.Series([c.label_time.isoformat() for c in CASES]),
}


@pytest.mark.parametrize("form", LABEL_TIME_FORMS)
def test_label_times_of_any_unit_and_time_zone_give_the_same_rows(
    form: str, aws: dict[str, Any], joined: dict[str, pd.DataFrame]
) -> None:
    # Given the history, and the label times in another unit or zone than the history's UTC microseconds
    offline = ingest_history(aws["s3"])
    label_times = LABEL_TIME_FORMS[form]()
    # When joining (a naive label time is taken as UTC)
    result = offline.point_in_time(GROUP, label_rows(label_times))
    # Then the rows are those of the UTC label times, and the caller's label times are returned untouched
    columns = ["calls", "plan", "feature_event_time", "feature_ingested_at"]
    pd.testing.assert_frame_equal(result[columns], joined["feast"][columns])
    assert result["event_time"].tolist() == label_times.tolist()


def test_numeric_label_times_are_refused(aws: dict[str, Any]) -> None:
    # Given the history, and label times as epoch numbers (seconds? milliseconds?)
    offline = ingest_history(aws["s3"])
    epochs = pd.Series([int(c.label_time.timestamp()) for c in CASES])
    # When joining, then the store refuses to guess their unit, naming the column
    with pytest.raises(DataValidationError, match="ambiguous") as refused:
        offline.point_in_time(GROUP, label_rows(epochs))
    assert refused.value.field == "event_time"


def test_a_tie_goes_to_the_latest_ingestion_whichever_part_sorts_last(aws: dict[str, Any]) -> None:
    # Given two files with a record of C1 at the same event time, ingested in one order under version 1 and in
    # the other under version 2: the parts' names hash their records only, so in one of the versions the part
    # ingested last sorts first
    first = pd.DataFrame({"entity_id": ["C1"], "event_time": [T0], "calls": [1.0], "plan": ["one"]})
    second = first.assign(calls=[2.0], plan=["two"])
    now = {"t": 0.0}
    offline = OfflineFeatureStore("offline", aws["s3"], clock=lambda: now["t"])
    for version, files in ((1, (first, second)), (2, (second, first))):
        group = GROUP.model_copy(update={"version": version})
        for hours, file in enumerate(files, start=1):
            now["t"] = (T0 + hours * HOUR).timestamp()
            offline.append(group, file)
    # When joining at a label time after both ingestions
    asked = pd.DataFrame({"entity_id": ["C1"], "event_time": [T0 + DAY / 2]})
    results = [offline.point_in_time(GROUP.model_copy(update={"version": v}), asked) for v in (1, 2)]
    # Then each version gives the record ingested last
    assert [result["plan"].iloc[0] for result in results] == ["two", "one"]


SCHEMA = DataSchema(
    id_column="customer_id",
    target="churn",
    positive_label="yes",
    numerical=["calls"],
    categorical=["plan"],
    derived_features=False,
)


def csv(*rows: tuple[str, dt.datetime, float, str]) -> bytes:
    frame = pd.DataFrame(rows, columns=["customer_id", "event_time", "calls", "plan"]).assign(churn="no")
    buffer = io.StringIO()
    frame.assign(event_time=frame["event_time"].map(dt.datetime.isoformat)).to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def test_training_and_serving_agree_on_records_with_the_same_event_time(aws: dict[str, Any]) -> None:
    # Given the ingestion of one file and, an hour later, a correction with the same event time for C1
    group = feature_group_from_schema(SCHEMA, ttl_seconds=GROUP.ttl_seconds)
    now = {"t": (T0 + HOUR).timestamp()}
    offline = OfflineFeatureStore("offline", aws["s3"], clock=lambda: now["t"])
    online = OnlineFeatureStore("features", aws["dynamodb"])
    catalog = FeatureGroupCatalog("features", aws["dynamodb"])
    original = csv(("C1", T0, 1.0, "a"), ("C2", T0, 5.0, "e"))
    correction = csv(("C1", T0, 2.0, "b"))

    def ingest(raw: bytes) -> None:
        ingest_file(raw, "file.csv", SCHEMA, group, T0, online, offline, catalog)
        now["t"] += 3600

    def training_value(label_time: dt.datetime, **options: Any) -> str | None:
        labels = pd.DataFrame({"customer_id": ["C1"], "label_time": [label_time], "churn": ["no"]})
        frame = training_frame_from_store(
            labels, SCHEMA, group, None, offline, label_time_column="label_time", **options
        )
        return frame["plan"].iloc[0]

    ingest(original)
    ingest(correction)
    # When the original file is ingested again (a re-run of an old file)
    ingest(original)
    # Then serving and training both read the correction, the record ingested last
    assert online.get(group, "C1").values == {"calls": 2.0, "plan": "b"}
    assert training_value(T0 + 4 * HOUR) == "b"
    # And as the store knew it before the correction was ingested, training reads the original
    assert training_value(T0 + HOUR, as_known_at_label_time=True) == "a"
    assert training_value(T0 + HOUR) == "b"  # Feast's semantics: ingestion time only breaks ties


def test_a_training_set_reads_each_customer_at_its_own_label_time(aws: dict[str, Any]) -> None:
    # Given the history, and labels observed at different times
    offline = ingest_history(aws["s3"])
    labels = pd.DataFrame(
        {
            "customer_id": ["C1", "C1", "C5", "C7"],
            "observed_at": [T0 - HOUR, T0 + 5 * HOUR, T0 + DAY, T0],
            "churn": ["no", "yes", "no", "yes"],
        }
    )
    # When building the training set at each row's label time, and at one time for every row
    per_row = training_frame_from_store(labels, SCHEMA, GROUP, None, offline, label_time_column="observed_at")
    at_once = training_frame_from_store(labels, SCHEMA, GROUP, T0 + 5 * HOUR, offline)
    # Then each row has the features of its own label time (missing past the TTL), with its label time
    assert list(per_row.columns) == ["customer_id", "observed_at", "calls", "plan", "churn"]
    np.testing.assert_equal(per_row["calls"].to_numpy(), [1.0, 3.0, np.nan, 71.0])
    assert per_row["churn"].tolist() == ["no", "yes", "no", "yes"]
    # And one as-of time for every row still works, reading everything at that time
    np.testing.assert_equal(at_once["calls"].to_numpy(), [3.0, 3.0, np.nan, 71.0])
    assert list(at_once.columns) == ["customer_id", "calls", "plan", "churn"]
    # And a label time must be given once: as one time or as a column of the labels
    for as_of, column in ((None, None), (T0, "observed_at")):
        with pytest.raises(DataValidationError, match="either as_of or label_time_column"):
            training_frame_from_store(labels, SCHEMA, GROUP, as_of, offline, label_time_column=column)
    with pytest.raises(DataValidationError) as missing:
        training_frame_from_store(labels, SCHEMA, GROUP, None, offline, label_time_column="nope")
    assert missing.value.field == "nope"
