"""Inference capture and outcome logging on moto S3: sampling, what a captured row holds, key layout, time windows,
each prediction once, outcomes naming their prediction, and the validation of POST /outcomes bodies."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws
from pydantic import ValidationError

from mlops.api.contracts import Prediction
from mlops.data.features import Columns
from mlops.monitoring.capture import InferenceCapture, distinct_predictions, score_bucket
from mlops.monitoring.outcomes import Outcome, OutcomeLog, OutcomesRequest

BUCKET = "monitoring-bucket"  # not plain "monitoring": moto routes monitoring.* hosts to CloudWatch
MODEL = "churn"
T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def s3() -> Iterator[Any]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def a_prediction(i: int, probability: float = 0.3, version: str = "v1", variant: str | None = None) -> Prediction:
    return Prediction(
        prediction_id=f"prediction-{i}",
        customer_id=f"C{i:05d}",
        churn_probability=probability,
        churn_prediction=probability >= 0.5,
        threshold=0.5,
        model_version=version,
        imputed_features=[],
        input_sha256="0" * 64,
        variant=variant,
    )


def request_columns(rows: int) -> Columns:
    """The raw inputs of `rows` scored records: a number (one missing) and a text (one missing)."""
    minutes = np.arange(rows, dtype=np.float64) * 10.0 + 100.5
    plans = np.array(["yes" if i % 2 else "no" for i in range(rows)], dtype=object)
    if rows > 1:
        minutes[1] = np.nan
        plans[1] = None
    return {"total_day_minutes": minutes, "international_plan": plans}


def stored_keys(s3: Any, prefix: str = "") -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def stored_text(s3: Any, key: str) -> str:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()


def capture_at(
    s3: Any, moment: dt.datetime, predictions: list[Prediction], capture: InferenceCapture | None = None
) -> None:
    (capture or InferenceCapture(BUCKET, s3, MODEL, sample_rate=1.0)).write(
        predictions, request_columns(len(predictions)), now=moment
    )


def an_outcome(
    customer: str, churned: bool = True, observed_at: dt.datetime = T0, prediction_id: str | None = None
) -> Outcome:
    return Outcome(customer_id=customer, churned=churned, observed_at=observed_at, prediction_id=prediction_id)


PREDICTION_ID = "3f2b8c1e-5a4d-4e6f-9b7a-0c1d2e3f4a5b"


# ---------------------------------------------------------------------- capture: sampling
def test_a_zero_sample_rate_captures_nothing(s3: Any) -> None:
    # Given a capture that keeps no row
    capture = InferenceCapture(BUCKET, s3, MODEL, sample_rate=0.0)
    # When a request of five predictions is captured
    kept = capture.write([a_prediction(i) for i in range(5)], request_columns(5), now=T0)
    # Then no row is kept and no object is written
    assert kept == 0
    assert stored_keys(s3) == []


def test_a_sample_rate_of_one_captures_every_row_in_one_object(s3: Any) -> None:
    # Given a capture that keeps every row
    capture = InferenceCapture(BUCKET, s3, MODEL, sample_rate=1.0)
    # When a request of five predictions is captured
    kept = capture.write([a_prediction(i) for i in range(5)], request_columns(5), now=T0)
    # Then all five rows are in one JSON-lines object, in request order
    assert kept == 5
    (key,) = stored_keys(s3)
    rows = [json.loads(line) for line in stored_text(s3, key).splitlines()]
    assert [row["prediction_id"] for row in rows] == [f"prediction-{i}" for i in range(5)]


def test_each_row_is_kept_when_its_draw_falls_under_the_sample_rate(s3: Any) -> None:
    # Given a capture at half rate whose draws alternate below and above one half
    draws = itertools.cycle([0.25, 0.75])
    capture = InferenceCapture(BUCKET, s3, MODEL, sample_rate=0.5, draw=lambda: next(draws))
    # When a request of six predictions is captured
    kept = capture.write([a_prediction(i) for i in range(6)], request_columns(6), now=T0)
    # Then exactly the rows drawn under the rate are kept, each with its own features
    assert kept == 3
    rows = capture.read(T0, T0)
    assert [row["prediction_id"] for row in rows] == ["prediction-0", "prediction-2", "prediction-4"]
    assert [row["features"]["total_day_minutes"] for row in rows] == [100.5, 120.5, 140.5]


# ---------------------------------------------------------------------- capture: what is stored, and where
def test_a_captured_row_holds_the_score_and_raw_inputs_but_never_the_customer_id(s3: Any) -> None:
    # Given two predictions of an experiment's variant, the second with a missing number and a missing text
    predictions = [a_prediction(0, 0.81, variant="treatment"), a_prediction(1, 0.12, variant="treatment")]
    # When they are captured
    capture_at(s3, T0, predictions)
    # Then the stored object names neither customer nor the customer_id field
    (key,) = stored_keys(s3)
    text = stored_text(s3, key)
    assert "customer_id" not in text
    assert "C00000" not in text
    assert "C00001" not in text
    # And each row holds when it was captured, the prediction's id, version, variant and score, and the inputs
    # with missing values as null
    first, second = (json.loads(line) for line in text.splitlines())
    assert first == {
        "captured_at": "2026-11-01T12:00:00+00:00",
        "prediction_id": "prediction-0",
        "model_version": "v1",
        "variant": "treatment",
        "churn_probability": 0.81,
        "features": {"total_day_minutes": 100.5, "international_plan": "no"},
    }
    assert second["features"] == {"total_day_minutes": None, "international_plan": None}
    assert '"total_day_minutes":null' in text
    assert "NaN" not in text


def test_a_capture_object_is_keyed_by_model_day_and_hour(s3: Any) -> None:
    # Given a request scored at 23:47:05 UTC, given in another time zone
    moment = dt.datetime(2026, 11, 2, 1, 47, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    # When it is captured
    capture_at(s3, moment, [a_prediction(0)])
    # Then its object is under capture/<model>/dt=<UTC day>/hour=<UTC hour>/, named after minute and second
    (key,) = stored_keys(s3)
    assert re.fullmatch(r"capture/churn/dt=2026-11-01/hour=23/4705-[0-9a-f]{32}\.jsonl", key), key


def test_two_requests_in_the_same_second_get_two_objects(s3: Any) -> None:
    capture_at(s3, T0, [a_prediction(0)])
    capture_at(s3, T0, [a_prediction(1)])
    assert len(stored_keys(s3)) == 2


# ---------------------------------------------------------------------- capture: reading back
def test_rows_are_read_back_across_an_hour_and_day_boundary_within_the_window(s3: Any) -> None:
    # Given requests captured at 22:59, 23:50, 00:10 (the next day) and 01:30
    before_midnight = dt.datetime(2026, 11, 1, 23, 50, tzinfo=dt.UTC)
    for i, moment in enumerate(
        [
            before_midnight - dt.timedelta(minutes=51),
            before_midnight,
            before_midnight + dt.timedelta(minutes=20),
            before_midnight + dt.timedelta(minutes=100),
        ]
    ):
        capture_at(s3, moment, [a_prediction(i)])
    # When the rows of 23:30 to 00:30 are read
    rows = InferenceCapture(BUCKET, s3, MODEL, sample_rate=0).read(
        before_midnight - dt.timedelta(minutes=20), before_midnight + dt.timedelta(minutes=40)
    )
    # Then the two requests inside the window are found, in both hours, and no other
    assert sorted(row["prediction_id"] for row in rows) == ["prediction-1", "prediction-2"]


def test_rows_of_the_same_hour_outside_the_window_are_left_out(s3: Any) -> None:
    # Given requests at 12:05 and 12:55
    capture_at(s3, T0 + dt.timedelta(minutes=5), [a_prediction(0)])
    capture_at(s3, T0 + dt.timedelta(minutes=55), [a_prediction(1)])
    # When 12:30 to 13:00 is read
    rows = InferenceCapture(BUCKET, s3, MODEL, sample_rate=0).read(
        T0 + dt.timedelta(minutes=30), T0 + dt.timedelta(hours=1)
    )
    # Then only the later one is found
    assert [row["prediction_id"] for row in rows] == ["prediction-1"]


def test_window_bounds_are_inclusive(s3: Any) -> None:
    capture_at(s3, T0, [a_prediction(0)])
    capture_at(s3, T0 + dt.timedelta(minutes=10), [a_prediction(1)])
    rows = InferenceCapture(BUCKET, s3, MODEL, sample_rate=0).read(T0, T0 + dt.timedelta(minutes=10))
    assert sorted(row["prediction_id"] for row in rows) == ["prediction-0", "prediction-1"]


def test_rows_can_be_read_for_one_model_version(s3: Any) -> None:
    # Given requests scored by v1 and by v2 within the same hour
    capture_at(s3, T0, [a_prediction(0, version="v1"), a_prediction(1, version="v1")])
    capture_at(s3, T0 + dt.timedelta(minutes=1), [a_prediction(2, version="v2")])
    capture = InferenceCapture(BUCKET, s3, MODEL, sample_rate=0)
    # When the window is read for v2, and for every version
    of_v2 = capture.read(T0, T0 + dt.timedelta(hours=1), model_version="v2")
    of_all = capture.read(T0, T0 + dt.timedelta(hours=1))
    # Then only v2's row is found for v2, and all three otherwise
    assert [row["prediction_id"] for row in of_v2] == ["prediction-2"]
    assert len(of_all) == 3


def test_another_models_capture_is_not_read(s3: Any) -> None:
    capture_at(s3, T0, [a_prediction(0)], InferenceCapture(BUCKET, s3, "other-model", sample_rate=1.0))
    assert InferenceCapture(BUCKET, s3, MODEL, sample_rate=0).read(T0, T0 + dt.timedelta(hours=1)) == []


# ---------------------------------------------------------------------- capture: each prediction once
def test_a_prediction_captured_twice_is_read_back_once(s3: Any) -> None:
    # Given a request of three predictions captured at 12:00, and captured again at 12:01 (a retried request)
    predictions = [a_prediction(i) for i in range(3)]
    capture_at(s3, T0, predictions)
    capture_at(s3, T0 + dt.timedelta(minutes=1), predictions)
    # When the window's rows are read and each prediction kept once
    read = InferenceCapture(BUCKET, s3, MODEL, sample_rate=0).read(T0, T0 + dt.timedelta(hours=1))
    rows, repeats = distinct_predictions(read)
    # Then each prediction is one row, the first captured, and the three repeats are counted
    assert sorted(row["prediction_id"] for row in rows) == ["prediction-0", "prediction-1", "prediction-2"]
    assert {row["captured_at"] for row in rows} == {T0.isoformat()}
    assert (len(read), repeats) == (6, 3)


def test_rows_without_a_prediction_id_are_each_kept() -> None:
    rows = [{"prediction_id": "a"}, {"features": {}}, {"features": {}}, {"prediction_id": "a"}]
    assert distinct_predictions(rows) == ([{"prediction_id": "a"}, {"features": {}}, {"features": {}}], 1)


# ---------------------------------------------------------------------- outcomes
def test_outcomes_round_trip_across_a_day_boundary(s3: Any) -> None:
    # Given outcomes logged at 23:59 and at 00:01 the next day
    late = [an_outcome("C00001", True, T0), an_outcome("C00002", False, T0 + dt.timedelta(hours=1))]
    early = [an_outcome("C00003", True, dt.datetime(2026, 11, 2, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))))]
    log = OutcomeLog(BUCKET, s3, MODEL)
    late_key = log.write(late, "request-1", now=dt.datetime(2026, 11, 1, 23, 59, tzinfo=dt.UTC))
    early_key = log.write(early, "request-2", now=dt.datetime(2026, 11, 2, 0, 1, tzinfo=dt.UTC))
    # When 23:00 to 01:00 is read
    read = log.read(dt.datetime(2026, 11, 1, 23, tzinfo=dt.UTC), dt.datetime(2026, 11, 2, 1, tzinfo=dt.UTC))
    # Then every outcome comes back as it was logged
    assert sorted(read, key=lambda o: o.customer_id) == [*late, *early]
    # And each request's outcomes are one object under the day it was logged
    assert late_key == "outcomes/churn/dt=2026-11-01/235900-request-1.jsonl"
    assert early_key == "outcomes/churn/dt=2026-11-02/000100-request-2.jsonl"


def test_outcomes_logged_outside_the_window_are_left_out(s3: Any) -> None:
    # Given outcomes logged at 08:00 and at 12:10 on the same day
    log = OutcomeLog(BUCKET, s3, MODEL)
    log.write([an_outcome("C00001")], "morning", now=T0 - dt.timedelta(hours=4))
    log.write([an_outcome("C00002")], "noon", now=T0 + dt.timedelta(minutes=10))
    # When the hour from 12:00 is read (the monitor's window: "the outcomes logged in `window`")
    read = log.read(T0, T0 + dt.timedelta(hours=1))
    # Then only the outcome logged in that hour is found
    assert [o.customer_id for o in read] == ["C00002"]


def test_an_outcome_naming_its_prediction_round_trips_and_one_without_stores_no_id(s3: Any) -> None:
    # Given an outcome naming its prediction (in upper case, as a caller may copy it) and one naming none
    named = an_outcome("C00001", prediction_id=PREDICTION_ID.upper())
    log = OutcomeLog(BUCKET, s3, MODEL)
    key = log.write([named, an_outcome("C00002")], "request-1", now=T0)
    # When they are read back
    read = log.read(T0, T0)
    # Then the id is kept as /predict returns it (lower case), and the other outcome stores no id at all
    assert [o.prediction_id for o in read] == [PREDICTION_ID, None]
    second = json.loads(stored_text(s3, key).splitlines()[1])
    assert "prediction_id" not in second


def test_outcomes_are_read_back_in_the_order_they_were_logged(s3: Any) -> None:
    # Given two requests logged in the same second, the later one under a key that lists first
    log = OutcomeLog(BUCKET, s3, MODEL)
    moment = T0 + dt.timedelta(minutes=30)
    log.write([an_outcome("C00001", True), an_outcome("C00002", True)], "b-first", now=moment)
    log.write([an_outcome("C00001", False)], "a-correction", now=moment + dt.timedelta(milliseconds=500))
    assert [key.rsplit("-", 1)[-1] for key in stored_keys(s3)] == ["correction.jsonl", "first.jsonl"]
    # When the hour is read
    read = log.read(T0, T0 + dt.timedelta(hours=1))
    # Then the outcomes come in logged order (a request's own order kept): the correction last
    assert [(o.customer_id, o.churned) for o in read] == [("C00001", True), ("C00002", True), ("C00001", False)]


def test_a_body_of_one_to_a_thousand_outcomes_is_accepted() -> None:
    outcome = {"customer_id": "C00001", "churned": True, "observed_at": "2026-11-01T12:00:00Z"}
    assert len(OutcomesRequest.model_validate({"outcomes": [outcome]}).outcomes) == 1
    assert len(OutcomesRequest.model_validate({"outcomes": [outcome] * 1000}).outcomes) == 1000


@pytest.mark.parametrize(
    ("body", "location"),
    [
        pytest.param({"outcomes": []}, ("outcomes",), id="no-outcomes"),
        pytest.param(
            {"outcomes": [{"customer_id": "C1", "churned": True, "observed_at": "2026-11-01T12:00:00Z"}] * 1001},
            ("outcomes",),
            id="more-than-a-thousand",
        ),
        pytest.param(
            {"outcomes": [{"customer_id": "C 1; drop", "churned": True, "observed_at": "2026-11-01T12:00:00Z"}]},
            ("outcomes", 0, "customer_id"),
            id="customer-id-with-spaces",
        ),
        pytest.param(
            {"outcomes": [{"customer_id": "C1", "observed_at": "2026-11-01T12:00:00Z"}]},
            ("outcomes", 0, "churned"),
            id="churned-missing",
        ),
        pytest.param(
            {"outcomes": [{"customer_id": "C1", "churned": True, "observed_at": "2026-11-01T12:00:00Z", "x": 1}]},
            ("outcomes", 0, "x"),
            id="unknown-field",
        ),
        pytest.param(
            {"outcomes": [{"customer_id": "C1", "churned": True, "observed_at": "yesterday"}]},
            ("outcomes", 0, "observed_at"),
            id="observed-at-not-a-time",
        ),
        pytest.param(
            {"outcomes": [{"customer_id": "C1", "churned": True, "observed_at": "2026-11-01T12:00:00Z"}], "x": 1},
            ("x",),
            id="unknown-top-level-field",
        ),
        *(
            pytest.param(
                {
                    "outcomes": [
                        {"customer_id": "C1", "churned": True, "observed_at": "2026-11-01T12:00:00Z"},
                        {"customer_id": "C2", "churned": True, "observed_at": "2026-11-01T12:00:00Z", **bad},
                    ]
                },
                ("outcomes", 1, "prediction_id"),
                id=f"prediction-id-{name}",
            )
            for name, bad in {
                "not-a-uuid": {"prediction_id": "prediction-1"},
                "truncated": {"prediction_id": PREDICTION_ID[:-1]},
                "with-spaces": {"prediction_id": f" {PREDICTION_ID} "},
                "empty": {"prediction_id": ""},
                "a-number": {"prediction_id": 12345},
            }.items()
        ),
    ],
)
def test_an_invalid_outcomes_body_is_refused_naming_the_field(body: dict[str, Any], location: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as raised:
        OutcomesRequest.model_validate(body)
    assert [error["loc"] for error in raised.value.errors()] == [location]


# ---------------------------------------------------------------------- score buckets
@pytest.mark.parametrize(
    ("probability", "bucket"),
    [
        (0.0, "0.0-0.1"),
        (0.0999, "0.0-0.1"),
        (0.1, "0.1-0.2"),
        (0.3, "0.3-0.4"),
        (0.5, "0.5-0.6"),
        (0.7, "0.7-0.8"),
        (0.9, "0.9-1.0"),
        (0.99, "0.9-1.0"),
        (1.0, "0.9-1.0"),
    ],
)
def test_a_probability_falls_in_its_tenth_and_one_falls_in_the_last(probability: float, bucket: str) -> None:
    assert score_bucket(probability) == bucket


def test_every_bucket_label_is_one_of_ten() -> None:
    labels = {score_bucket(p) for p in np.linspace(0.0, 1.0, 1001)}
    assert labels == {f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10)}


@pytest.mark.parametrize("observed_at", [0, 1767225600, 1.5, True])
def test_an_outcome_time_must_be_an_iso_string_not_a_number(observed_at: object) -> None:
    # Given an outcome whose time is a number (fuzzing found pydantic took it as Unix time, which the
    # document does not allow)
    body = {"outcomes": [{"customer_id": "C00011", "churned": True, "observed_at": observed_at}]}

    # When it is validated / Then it is refused, naming the field
    with pytest.raises(ValidationError) as refused:
        OutcomesRequest.model_validate(body)
    assert refused.value.errors()[0]["loc"] == ("outcomes", 0, "observed_at")
    assert OutcomesRequest.model_validate(
        {"outcomes": [{"customer_id": "C00011", "churned": True, "observed_at": "2026-01-01T00:00:00Z"}]}
    )


@pytest.mark.parametrize("churned", [0, 1, "true", "yes", None])
def test_an_outcome_is_a_json_boolean(churned: object) -> None:
    # Given an outcome whose churned flag is not a JSON boolean (fuzzing found 0 accepted as False)
    body = {"outcomes": [{"customer_id": "C00011", "churned": churned, "observed_at": "2026-01-01T00:00:00Z"}]}

    # When it is validated / Then it is refused, naming the field
    with pytest.raises(ValidationError) as refused:
        OutcomesRequest.model_validate(body)
    assert refused.value.errors()[0]["loc"] == ("outcomes", 0, "churned")


def test_a_malformed_prediction_id_is_refused_saying_what_it_must_be() -> None:
    # Given an outcome whose prediction_id is not the UUID /predict returns
    body = {
        "outcomes": [
            {"customer_id": "C1", "churned": True, "observed_at": "2026-11-01T12:00:00Z", "prediction_id": "p-1"}
        ]
    }
    # When it is validated / Then it is refused, naming the field and what it must be
    with pytest.raises(ValidationError) as refused:
        OutcomesRequest.model_validate(body)
    (error,) = refused.value.errors()
    assert error["loc"] == ("outcomes", 0, "prediction_id")
    assert "as /predict returned it" in error["msg"]
