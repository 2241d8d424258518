"""The experiments API on the embedded AWS: the real template, ExperimentsTable and handler (moto)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from api_clients import client, operator_client
from helpers import load_event
from local_cloud.platform import LocalPlatform
from mlops.experiments.statistics import sample_size_proportions

FUNCTION = "ExperimentsFunction"


def invoke(platform: LocalPlatform, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = platform.runtime.invoke(FUNCTION, event)
    return response["statusCode"], json.loads(response["body"])


def with_body(event_name: str, body: dict[str, Any] | None = None, experiment_id: str | None = None) -> dict:
    """An events/ file, optionally with another body or experiment id."""
    event = load_event(event_name)
    if body is not None:
        event["body"] = json.dumps(body)
    if experiment_id is not None:
        event["path"] = event["path"].replace("exp-demo", experiment_id)
        event["pathParameters"] = {"experiment_id": experiment_id}
    return event


def create_body(**changes: Any) -> dict[str, Any]:
    body = json.loads(load_event("experiment_create_valid")["body"])
    body.update(changes)
    return body


def stored_items(platform: LocalPlatform, experiment_id: str, prefix: str) -> list[dict[str, Any]]:
    response = platform.client("dynamodb").query(
        TableName=platform.stack.physical_id("ExperimentsTable"),
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": f"EXPERIMENT#{experiment_id}"}, ":prefix": {"S": prefix}},
    )
    return response["Items"]


@pytest.fixture(scope="module")
def demo(platform: LocalPlatform) -> dict[str, Any]:
    status, body = invoke(platform, load_event("experiment_create_valid"))
    assert status == 201, body
    return body


# ------------------------------------------------------------------------------------------ create and read
def test_creating_an_experiment_stores_it_running_with_its_sample_size_plan(
    platform: LocalPlatform, demo: dict[str, Any]
) -> None:
    # Given the experiment created from events/experiment_create_valid.json
    # Then it runs, has its own salt, and plans the z-test's sample size for +2 points on an 86% retention
    assert demo["experiment_id"] == "exp-demo"
    assert demo["status"] == "running"
    assert demo["salt"].startswith("exp-demo:")
    planned = sample_size_proportions(0.86, 0.02, 0.05, 0.8)[0]
    assert demo["plan"]["units_per_variant"] == {"control": planned, "new_copy": planned}
    # And reading it back gives the same document
    status, body = invoke(platform, load_event("experiment_get"))
    assert status == 200
    assert body == demo


def test_creating_the_same_experiment_id_twice_is_a_conflict(platform: LocalPlatform, demo: dict[str, Any]) -> None:
    status, body = invoke(platform, load_event("experiment_create_valid"))
    assert status == 409
    assert body["error"]["code"] == "experiment_conflict"
    assert body["error"]["fields"][0]["field"] == "experiment_id"


def test_weights_that_do_not_sum_to_one_are_refused_naming_the_field(platform: LocalPlatform) -> None:
    status, body = invoke(platform, load_event("experiment_create_invalid_weights"))
    assert status == 422
    assert [f["field"] for f in body["error"]["fields"]] == ["variants"]
    assert "sum to 1" in body["error"]["fields"][0]["message"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"control": "nobody"}, "control"),
        ({"baseline_value": 0.99}, "baseline_value"),  # 0.99 + 0.02 is not a rate
        ({"primary_metric": {"name": "revenue", "kind": "continuous"}}, "standard_deviation"),
        ({"variants": [{"name": "a", "weight": 0.5}, {"name": "a", "weight": 0.5}]}, "variants"),
        ({"model_name": "churn"}, "variants"),  # variants must then say what /predict serves
        ({"guardrail_metrics": [{"name": "retained", "kind": "conversion"}]}, "guardrail_metrics"),
        ({"cuped_covariate": "revenue_usd"}, "cuped_covariate"),
        ({"alpha": 0.7}, "alpha"),
        ({"power": 0.3}, "power"),
        ({"minimum_detectable_effect": 0}, "minimum_detectable_effect"),
        ({"name": None}, "name"),
        ({"variants": [{"name": "only", "weight": 1.0}]}, "variants"),
    ],
)
def test_invalid_experiments_are_refused_naming_the_field(
    platform: LocalPlatform, changes: dict[str, Any], field: str
) -> None:
    # Given a valid body with one thing wrong
    event = with_body("experiment_create_valid", create_body(experiment_id="exp-invalid", **changes))
    # When it is posted
    status, body = invoke(platform, event)
    # Then a 422 names the field, and nothing was stored
    assert status == 422, body
    assert field in [f["field"] for f in body["error"]["fields"]], body
    assert invoke(platform, with_body("experiment_get", experiment_id="exp-invalid"))[0] == 404


def test_an_unknown_experiment_is_a_404(platform: LocalPlatform) -> None:
    status, body = invoke(platform, with_body("experiment_results", experiment_id="exp-nope"))
    assert status == 404
    assert body["error"]["code"] == "experiment_not_found"


# ------------------------------------------------------------------------------------------ assignment
def test_a_unit_keeps_its_variant_and_its_exposure_is_logged_once(platform: LocalPlatform, demo: dict) -> None:
    # When the same unit is assigned five times
    answers = [invoke(platform, load_event("experiment_assign")) for _ in range(5)]
    # Then every answer gives the same variant, and only the first one was a first exposure
    assert {status for status, _ in answers} == {200}
    assert len({body["variant"] for _, body in answers}) == 1
    assert [body["first_exposure"] for _, body in answers] == [True, False, False, False, False]
    # And the table holds exactly one exposure for it
    exposures = stored_items(platform, "exp-demo", "EXPOSURE#C00011")
    assert len(exposures) == 1
    assert exposures[0]["variant"]["S"] == answers[0][1]["variant"]


def test_outcomes_are_refused_for_unknown_metrics_bad_values_and_units_never_assigned(
    platform: LocalPlatform, demo: dict
) -> None:
    cases = [
        ({"unit_id": "C00011", "metric": "clicks", "value": 1}, 400, "metric"),
        ({"unit_id": "C00011", "metric": "retained", "value": 2}, 400, "value"),
        ({"unit_id": "never-seen", "metric": "retained", "value": 1}, 409, "unit_id"),
        ({"unit_id": "C00011", "metric": "retained"}, 422, "value"),
    ]
    for body, expected_status, field in cases:
        status, answer = invoke(platform, with_body("experiment_outcome", body))
        assert status == expected_status, (body, answer)
        assert field in [f["field"] for f in answer["error"]["fields"]], answer


# ------------------------------------------------------------------------------------------ results
def test_results_compare_the_variants_with_the_values_that_were_posted(platform: LocalPlatform) -> None:
    # Given a fresh experiment where 400 units were assigned through the API and got outcomes
    experiment_id = "exp-results"
    assert invoke(platform, with_body("experiment_create_valid", create_body(experiment_id=experiment_id)))[0] == 201
    rng = np.random.default_rng(0)
    variants: dict[str, str] = {}
    posted: dict[str, list[float]] = {"control": [], "new_copy": []}
    for i in range(400):
        unit = f"unit-{i}"
        _, assignment = invoke(platform, with_body("experiment_assign", {"unit_id": unit}, experiment_id))
        variants[unit] = assignment["variant"]
        retained = float(rng.random() < (0.80 if assignment["variant"] == "control" else 0.90))
        posted[assignment["variant"]].append(retained)
        outcomes = [("retained", retained), ("revenue_last_year_usd", float(rng.normal(500, 100)))]
        if i % 3:  # units without a revenue outcome count as 0
            outcomes.append(("revenue_usd", float(rng.gamma(2, 50))))
        for metric, value in outcomes:
            body = {"unit_id": unit, "metric": metric, "value": value}
            assert invoke(platform, with_body("experiment_outcome", body, experiment_id))[0] == 200

    # When the results are read
    status, results = invoke(platform, with_body("experiment_results", experiment_id=experiment_id))

    # Then every unit counts once, the split is checked, and the primary metric is the difference of what was posted
    assert status == 200, results
    assert results["units"] == 400
    assert results["sample_ratio"]["observed"] == {v: list(variants.values()).count(v) for v in ("control", "new_copy")}
    assert results["sample_ratio"]["mismatch"] is False
    primary, revenue, unsubscribed = results["metrics"]
    assert (primary["metric"], primary["role"], revenue["role"]) == ("retained", "primary", "guardrail")
    comparison = primary["comparisons"][0]
    expected = np.mean(posted["new_copy"]) - np.mean(posted["control"])
    assert comparison["difference"] == pytest.approx(expected)
    assert comparison["confidence_interval"]["low"] < expected < comparison["confidence_interval"]["high"]
    assert comparison["test"] == "two-proportion z-test"
    assert 0 <= comparison["p_value"] <= 1
    seq = comparison["sequential"]
    assert seq["confidence_sequence"]["low"] <= comparison["confidence_interval"]["low"]
    assert seq["always_valid_p_value"] >= comparison["p_value"]
    assert comparison["probability_treatment_better"] > 0.5
    assert comparison["cuped"]["covariate"] == "revenue_last_year_usd"
    assert 0 < comparison["achieved_power"] < 0.5  # 400 units of a plan of ~9,000
    assert revenue["comparisons"][0]["test"] == "Welch's t-test"
    assert unsubscribed["variants"]["control"]["mean"] == 0  # no outcome posted: 0 for every unit


# ------------------------------------------------------------------------------------------ stop
def test_a_stopped_experiment_assigns_no_one_but_still_takes_outcomes(platform: LocalPlatform) -> None:
    experiment_id = "exp-stop"
    assert invoke(platform, with_body("experiment_create_valid", create_body(experiment_id=experiment_id)))[0] == 201
    assert invoke(platform, with_body("experiment_assign", experiment_id=experiment_id))[0] == 200
    # When it is stopped (twice: stopping is idempotent)
    status, stopped = invoke(platform, with_body("experiment_stop", experiment_id=experiment_id))
    again_status, again = invoke(platform, with_body("experiment_stop", experiment_id=experiment_id))
    # Then it is stopped with the reason, new assignments are refused, late outcomes are recorded
    assert (status, again_status) == (200, 200)
    assert stopped["status"] == "stopped"
    assert stopped["stop_reason"] == "enough data"
    assert again == stopped
    status, body = invoke(platform, with_body("experiment_assign", {"unit_id": "new-unit"}, experiment_id))
    assert status == 409
    assert body["error"]["code"] == "experiment_conflict"
    assert invoke(platform, with_body("experiment_outcome", experiment_id=experiment_id))[0] == 200


def test_one_running_experiment_per_model_until_it_stops(platform: LocalPlatform) -> None:
    rule = {"column": "number_customer_service_calls", "operator": ">", "value": 3}
    serving = [{"name": "baseline", "weight": 0.5, "serves": "rule", "rule": rule}]
    serving.append({"name": "model", "weight": 0.5, "serves": "model"})
    first = create_body(experiment_id="exp-model-1", model_name="churn", variants=serving, control="baseline")
    second = {**first, "experiment_id": "exp-model-2"}
    # Given one experiment splitting model churn's traffic
    assert invoke(platform, with_body("experiment_create_valid", first))[0] == 201
    # When a second one is created for the same model, it is refused naming the model
    status, body = invoke(platform, with_body("experiment_create_valid", second))
    assert status == 409
    assert body["error"]["fields"][0]["field"] == "model_name"
    # And once the first stops, the second can start
    assert invoke(platform, with_body("experiment_stop", experiment_id="exp-model-1"))[0] == 200
    assert invoke(platform, with_body("experiment_create_valid", second))[0] == 201


def test_the_template_routes_reach_the_function_over_http(platform: LocalPlatform, demo: dict) -> None:
    api = client(platform)
    assert api.get("/experiments/exp-demo").get_json()["name"] == demo["name"]
    response = api.post("/experiments/exp-demo/assign", json={"unit_id": "http-unit"})
    assert response.status_code == 200
    assert response.get_json()["variant"] in {"control", "new_copy"}
    assert api.get("/experiments/exp-demo/results").status_code == 200


def test_only_an_operator_creates_and_stops_an_experiment_over_http(platform: LocalPlatform) -> None:
    # Given an experiment to run, a client with no AWS credentials and the local operator (SigV4)
    body = create_body(experiment_id="exp-http")
    api, operator = client(platform), operator_client(platform)
    # When the client tries to create it, then to stop the demo one: both refused (AWS_IAM routes)
    assert api.post("/experiments", json=body).status_code == 403
    assert api.post("/experiments/exp-http/stop", json={"reason": "no"}).status_code == 403
    assert api.get("/experiments/exp-http").status_code == 404
    # And when the operator does, signed: created, then stopped, in its name
    created = operator.post("/experiments", json=body)
    assert created.status_code == 201, created.get_json()
    stopped = operator.post("/experiments/exp-http/stop", json={"reason": "enough data"})
    assert stopped.status_code == 200, stopped.get_json()
    assert stopped.get_json()["status"] == "stopped"
    records = operator.get("/audit", query_string={"entity": "experiment:exp-http"}).get_json()["records"]
    assert [r["event"]["actor"] for r in records] == [platform.operator.arn] * 2
