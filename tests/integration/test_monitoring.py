"""Monitoring on the local stack (moto) after one pilot: the metrics each handler emits (EMF), outcomes logged
through the API by the prediction id /predict returned, and the monitor's drift and accuracy verdicts on an
explicit window crossing the template's alarm thresholds on shifted data and wrong outcomes, and staying below
them otherwise."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd
import pytest
from werkzeug.test import Client

from helpers import TELECOM_CSV, alarm_breached, emitted_metrics, load_event
from local_cloud.platform import LocalPlatform

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(platform: LocalPlatform, pilot: dict[str, Any]) -> Client:
    return Client(platform.api_app())


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    """Customers drawn like the training data (the pilot trained on a split of the same file)."""
    return pd.read_csv(TELECOM_CSV, dtype={"area_code": str}).sample(n=600, random_state=7)


def score(api: Client, frame: pd.DataFrame) -> list[dict[str, Any]]:
    predictions = []
    features = [c for c in frame.columns if c not in {"customer_id", "churn"}]
    for start in range(0, len(frame), 200):
        chunk = frame.iloc[start : start + 200]
        records = [
            {"customer_id": row["customer_id"], "features": {name: row[name] for name in features}}
            for row in json.loads(chunk.to_json(orient="records"))
        ]
        response = api.post("/predict/batch", json={"records": records})
        assert response.status_code == 200, response.get_json()
        predictions += response.get_json()["predictions"]
    return predictions


def run_monitor(platform: LocalPlatform, since: dt.datetime) -> dict[str, Any]:
    """The monitor's report on the explicit window from `since` to now."""
    return platform.runtime.invoke("ModelMonitorFunction", {"window_start": since.isoformat()})


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_the_pilot_monitors_a_later_window_of_its_own_traffic(pilot: dict[str, Any]) -> None:
    monitoring = pilot["results"]["monitoring"]
    # Then the later window's requests were captured, each once (not the smoke test's: synthetic traffic is left
    # out, and the window starts after it)
    customers = monitoring["window_customers"]
    assert customers == pilot["results"]["dataset"]["monitoring_rows"] > 0
    assert monitoring["captured_rows"] == customers
    # And that traffic, drawn like the training data, raises no drift
    assert monitoring["drift_detected"] is False
    # And every logged outcome met its prediction; accuracy is above the alarm's 80%
    assert monitoring["outcomes_logged"] == monitoring["outcomes_matched"] == customers
    assert monitoring["accuracy"] >= 0.8
    assert pilot["results"]["success_criteria"]["monitored_accuracy"]["passed"] is True


def test_the_scoring_handler_emits_the_metrics_the_alarms_and_dashboard_read(
    platform: LocalPlatform, pilot: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a batch request through the scoring function
    capsys.readouterr()
    response = platform.runtime.invoke("ScoringFunction", load_event("predict_batch_valid"))
    assert response["statusCode"] == 200
    # When its EMF output is read (the audit writer, draining the request's records after it, emits its own)
    metrics = [m for m in emitted_metrics(capsys.readouterr().out) if m["dimensions"].get("service") == "scoring"]
    # Then requests, latency and errors are there, with the service dimension
    by_name = {m["name"]: m for m in metrics}
    for name in ("Requests", "Latency", "Errors", "ClientErrors", "Predictions", "PredictedChurn"):
        assert by_name[name]["dimensions"] == {"service": "scoring"}, name
    assert by_name["Errors"]["value"] == 0
    # And predictions per variant, per model version and per score bucket
    records = len(json.loads(load_event("predict_batch_valid")["body"])["records"])
    for name, dimension in (
        ("PredictionsByVariant", "variant"),
        ("PredictionsByModelVersion", "model_version"),
        ("ChurnScoreBucket", "bucket"),
    ):
        emitted = [m for m in metrics if m["name"] == name]
        assert emitted, name
        assert all(set(m["dimensions"]) == {"service", dimension} for m in emitted), name
        assert sum(m["value"] for m in emitted) == records, name
    versions = {m["dimensions"]["model_version"] for m in metrics if m["name"] == "PredictionsByModelVersion"}
    assert versions == {pilot["results"]["model_version"]}


def test_a_bad_request_counts_as_a_client_error_not_an_error(
    platform: LocalPlatform, pilot: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    response = platform.runtime.invoke("ScoringFunction", load_event("predict_invalid_type"))
    assert response["statusCode"] == 422
    by_name = {m["name"]: m["value"] for m in emitted_metrics(capsys.readouterr().out)}
    assert by_name["ClientErrors"] == 1
    assert by_name["Errors"] == 0


def test_unshifted_traffic_stays_below_the_drift_alarm(
    platform: LocalPlatform, api: Client, customers: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given customers drawn like the training data, scored after `since`
    since = now()
    score(api, customers)
    capsys.readouterr()
    # When the monitor runs over that window
    report = run_monitor(platform, since)
    metrics = {m["name"]: m["value"] for m in emitted_metrics(capsys.readouterr().out)}
    # Then it judged them, found no drift, and the alarm's metric stays below its threshold
    assert report["captured_rows"] == len(customers)
    assert report["drift"]["sufficient_data"] is True
    assert report["drift"]["drift_detected"] is False, report["drift"]["drifted_features"]
    assert metrics["DriftDetected"] == 0
    assert not alarm_breached("DataDriftAlarm", metrics["DriftDetected"])


def test_shifted_traffic_crosses_the_drift_alarm(
    platform: LocalPlatform, api: Client, customers: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given customers whose day-time usage grew by 30% and 40% of whom took the international plan
    shifted = customers.copy()
    shifted["total_day_minutes"] *= 1.3
    shifted.loc[shifted.sample(frac=0.4, random_state=1).index, "international_plan"] = "yes"
    since = now()
    score(api, shifted)
    capsys.readouterr()
    # When the monitor runs over that window
    report = run_monitor(platform, since)
    metrics = {m["name"]: m["value"] for m in emitted_metrics(capsys.readouterr().out)}
    # Then exactly the shifted features drifted, and the alarm's metric crosses its threshold
    assert report["drift"]["drift_detected"] is True
    assert {"total_day_minutes", "international_plan"} <= set(report["drift"]["drifted_features"])
    assert metrics["DriftDetected"] == 1
    assert metrics["MaxFeaturePSI"] > 0.2
    assert alarm_breached("DataDriftAlarm", metrics["DriftDetected"])
    # And the latest report is served by the API
    latest = platform.runtime.invoke("MonitoringFunction", _get("/monitoring/latest"))
    assert json.loads(latest["body"])["report_key"] == report["report_key"]


def test_outcomes_that_contradict_the_model_cross_the_accuracy_alarm(
    platform: LocalPlatform, api: Client, customers: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given predictions for customers, then outcomes logged through the API naming the predictions they judge
    since = now()
    predictions = score(api, customers)
    observed_at = now().isoformat()

    def log(judged: list[dict[str, Any]], agree: bool) -> None:
        outcomes = [
            {
                "prediction_id": p["prediction_id"],
                "customer_id": p["customer_id"],
                "churned": (p["churn_probability"] >= p["threshold"]) is agree,
                "observed_at": observed_at,
            }
            for p in judged
        ]
        response = api.post("/outcomes", json={"outcomes": outcomes})
        assert response.status_code == 200, response.get_json()

    # When the outcomes agree with the model's decisions, accuracy is 1 and no alarm
    log(predictions, agree=True)
    capsys.readouterr()
    agreeing = run_monitor(platform, since)
    metrics = {m["name"]: m["value"] for m in emitted_metrics(capsys.readouterr().out)}
    assert agreeing["accuracy"]["matched"] == agreeing["accuracy"]["matched_by_prediction_id"] == len(customers)
    assert agreeing["accuracy"]["accuracy"] == 1.0
    assert not alarm_breached("ModelAccuracyAlarm", metrics["ModelAccuracy"])
    # And when later outcomes correct half of them to the opposite, those replace the first (each prediction is
    # judged once): accuracy falls to one half and the alarm fires
    log(predictions[: len(predictions) // 2], agree=False)
    capsys.readouterr()
    contradicted = run_monitor(platform, since)
    metrics = {m["name"]: m["value"] for m in emitted_metrics(capsys.readouterr().out)}
    assert contradicted["accuracy"]["matched"] == len(customers)
    assert contradicted["accuracy"]["superseded_outcomes"] == len(customers) // 2
    assert contradicted["accuracy"]["accuracy"] == pytest.approx(0.5)
    assert alarm_breached("ModelAccuracyAlarm", metrics["ModelAccuracy"])


def test_a_customer_scored_twice_is_judged_by_the_prediction_its_outcome_names(
    platform: LocalPlatform, api: Client, customers: pd.DataFrame
) -> None:
    # Given customers scored, then scored again (the same inputs: the same decisions, new prediction ids), and
    # outcomes naming the first predictions
    since = now()
    first = score(api, customers)
    again = score(api, customers)
    assert {p["prediction_id"] for p in first}.isdisjoint(p["prediction_id"] for p in again)
    outcomes = [
        {
            "prediction_id": p["prediction_id"],
            "customer_id": p["customer_id"],
            "churned": p["churn_probability"] >= p["threshold"],
            "observed_at": now().isoformat(),
        }
        for p in first
    ]
    assert api.post("/outcomes", json={"outcomes": outcomes}).status_code == 200
    # When the monitor judges the window
    report = run_monitor(platform, since)
    # Then drift saw both scorings, and each outcome judged exactly the prediction it named
    assert report["captured_rows"] == 2 * len(customers)
    accuracy = report["accuracy"]
    assert (accuracy["matched"], accuracy["matched_by_prediction_id"]) == (len(customers), len(customers))
    assert (accuracy["matched_by_customer"], accuracy["unknown_prediction_ids"]) == (0, 0)
    assert accuracy["window"]["scope"] == "window_predictions"
    assert accuracy["auc"] is not None
    assert accuracy["brier_score"] is not None


def test_bad_outcomes_are_refused_naming_each_field(platform: LocalPlatform, pilot: dict[str, Any]) -> None:
    # Given outcomes without `churned` and with a time that has no time zone (events/outcomes_invalid.json)
    response = platform.runtime.invoke("MonitoringFunction", load_event("outcomes_invalid"))
    # Then a 422 names both fields
    assert response["statusCode"] == 422
    fields = {f["field"] for f in json.loads(response["body"])["error"]["fields"]}
    assert {"outcomes[0].churned", "outcomes[0].observed_at"} <= fields


@pytest.mark.parametrize("prediction_id", ["p-1", "3f2b8c1e-5a4d-4e6f-9b7a", 42])
def test_a_malformed_prediction_id_is_refused_naming_the_field(
    platform: LocalPlatform, pilot: dict[str, Any], prediction_id: object
) -> None:
    # Given the outcomes of events/outcomes_log.json, the second naming a prediction_id /predict never returns
    event = load_event("outcomes_log")
    body = json.loads(event["body"])
    body["outcomes"][1]["prediction_id"] = prediction_id
    # When they are posted
    response = platform.runtime.invoke("MonitoringFunction", event | {"body": json.dumps(body)})
    # Then a 422 in the API's error shape names that field, and nothing is logged
    assert response["statusCode"] == 422
    error = json.loads(response["body"])["error"]
    assert [f["field"] for f in error["fields"]] == ["outcomes[1].prediction_id"]
    assert error["retryable"] is False


def test_the_hourly_schedule_event_runs_the_monitor(platform: LocalPlatform, pilot: dict[str, Any]) -> None:
    # Given the EventBridge scheduled event (events/monitor_scheduled.json)
    report = platform.runtime.invoke("ModelMonitorFunction", load_event("monitor_scheduled"))
    # Then the default window (MONITOR_WINDOW_HOURS) is judged for the production model
    assert report["model_version"] == pilot["results"]["model_version"]
    assert report["captured_rows"] >= pilot["results"]["monitoring"]["captured_rows"]
    assert report["report_key"].startswith("monitoring/churn/reports/")


def test_the_outcomes_event_is_accepted(platform: LocalPlatform, pilot: dict[str, Any]) -> None:
    response = platform.runtime.invoke("MonitoringFunction", load_event("outcomes_log"))
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["accepted"] == 2


def _get(path: str) -> dict[str, Any]:
    return load_event("monitoring_latest") | {"path": path, "resource": path}
