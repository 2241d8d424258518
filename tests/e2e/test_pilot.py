"""The whole pilot on the embedded AWS: the real template, state machine file and handlers.

One pilot run on the telecom data is shared by the module's tests (it takes about half a minute); the
failure tests start further executions on the same stack, with a fault injected into one step.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from browser import open_in_chromium
from werkzeug.test import Client

from api_clients import operator_client
from helpers import TELECOM_CSV, load_event
from local_cloud.cli import LOCAL_PARAMETERS, cmd_score, pilot_results
from local_cloud.platform import LocalPlatform
from mlops.core.errors import ModelNotFoundError
from mlops.pilot.payloads import PilotInput

pytestmark = pytest.mark.slow

EXPECTED_STATES = [
    "ValidateEnvironment",
    "IngestFeatures",
    "PrepareData",
    "TrainModel",
    "EvaluateModel",
    "QualityGate",
    "RegisterModel",
    "DecideApproval",
    "ApprovalGate",
    "DeployModel",
    "SmokeTest",
    "ValidateSuccessCriteria",
    "AllCriteriaMet",
    "MonitorModel",
    "StartExperiment",
    "RunRetentionCampaign",
    "ValidateExperimentCriteria",
    "PublishReport",
    "ExperimentCriteriaMet",
    "PilotSucceeded",
]


@pytest.fixture(scope="module")
def api(platform: LocalPlatform, pilot: dict[str, Any]) -> Client:
    return Client(platform.api_app())


def production_version(platform: LocalPlatform) -> str | None:
    """The version production points at (the registry's alias), and, once warm containers have re-read the
    alias (ModelRefreshSeconds is 1 s locally), the version /predict serves."""
    api = Client(platform.api_app())
    registered = api.get("/models").get_json()["production_version"]
    time.sleep(float(LOCAL_PARAMETERS["ModelRefreshSeconds"]) + 0.1)
    served = api.post("/predict", json=json.loads(load_event("predict_valid")["body"])).get_json()["model_version"]
    assert served == registered
    return registered


# ------------------------------------------------------------------------------------------ the pilot run
def test_the_pilot_succeeds_with_every_criterion_and_writes_its_results_file(pilot: dict[str, Any]) -> None:
    results = pilot["results"]
    written = json.loads((pilot["output_dir"] / "pilot_results.json").read_text())
    assert written["status"] == results["status"] == "SUCCEEDED", results["error"]
    for key in (
        "execution_time_s",
        "metrics",
        "latency_ms",
        "model_version",
        "deployment_id",
        "execution_arn",
        "states",
        "success_criteria",
        "experiment",
    ):
        assert written[key], key
    assert {
        "ab_testing_ready",
        "experiment_units",
        "primary_effect_p_value",
        "projected_annual_impact_usd",
        "monitored_accuracy",
        "monitored_auc",
        "no_drift_on_later_window",
    } <= set(written["success_criteria"])
    assert all(c["passed"] for c in written["success_criteria"].values())
    assert [s["name"] for s in written["states"]] == EXPECTED_STATES
    assert all(s["status"] == "SUCCEEDED" for s in written["states"])


def test_the_pilot_writes_a_report_that_renders_offline_in_chromium(pilot: dict[str, Any], chromium: Path) -> None:
    # Given the report the pilot wrote beside its results
    report = pilot["output_dir"] / "report.html"
    assert pilot["results"]["report"] == str(report)
    # When headless Chromium opens it from disk, with no network
    page = open_in_chromium(report)
    # Then it is this run's report, every figure decoded to a real image, and nothing failed or was fetched
    assert page["title"] == f"Pilot report: churn {pilot['results']['model_version']} (PASS)"
    names = [image["name"] for image in page["images"]]
    assert {"roc", "precision_recall", "calibration", "confusion_matrix", "threshold_value", "global_importance",
            "example_explanation", "ab_results", "drift_psi", "score_drift", "latency"} <= set(names)  # fmt: skip
    for image in page["images"]:
        assert image["complete"], image["name"]
        assert image["naturalWidth"] > 0, image["name"]
    assert page["console_errors"] == page["page_errors"] == page["failed_requests"] == []


def test_the_decision_threshold_is_chosen_for_business_value_and_used(pilot: dict[str, Any]) -> None:
    results = pilot["results"]
    threshold = results["decision_threshold"]
    # Then it is not the default 0.5 but the campaign's best (offer $50 against $210 kept: near 50/210)
    assert 0.05 <= threshold <= 0.5
    assert threshold != 0.5
    # And the held-out metrics and the registered version use it
    assert results["metrics"]["threshold"] == threshold


def test_the_pilot_ingests_the_file_into_the_feature_store_and_trains_from_it(pilot: dict[str, Any]) -> None:
    # Every customer of the file is ingested once, and the training set is read back from the store
    ingested = pilot["results"]["feature_store"]
    assert (ingested["rows"], ingested["entities"], ingested["written"]) == (4000, 4000, 4000)
    assert ingested["feature_group"] == "customer_behavior"
    assert ingested["offline_parts_written"] == 1
    assert pilot["results"]["dataset"]["feature_source"].startswith(
        "feature store customer_behavior v1, each customer at its label time"
    )
    assert pilot["results"]["dataset"]["rows"] == 4000


def test_the_selected_model_reaches_the_auc_target_on_the_held_out_split(pilot: dict[str, Any]) -> None:
    metrics = pilot["results"]["metrics"]
    assert metrics["roc_auc"] >= 0.92
    assert metrics["n_samples"] == 800
    # And the metrics at the chosen threshold come with those at 0.5
    assert metrics["at_threshold_0_5"]["threshold"] == 0.5
    assert set(pilot["results"]["cv_auc"]) >= {"random_forest", "gradient_boosting"}


def test_the_smoke_test_measured_latency_over_200_calls(pilot: dict[str, Any]) -> None:
    latency = pilot["results"]["latency_ms"]
    assert latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    criterion = pilot["results"]["success_criteria"]["smoke_test_errors"]
    assert criterion["value"] == 0


def test_the_ab_test_ran_at_the_size_its_plan_asks_and_its_impact_criterion_reads_its_estimate(
    pilot: dict[str, Any],
) -> None:
    experiment = pilot["results"]["experiment"]
    results, impact = experiment["results"], experiment["business_impact"]
    campaign = experiment["campaign"]
    # Given the churn_model_v1_vs_baseline experiment, 50/50 between the schema's baseline rule and the model
    assert experiment["name"] == "churn_model_v1_vs_baseline"
    assert {v["name"]: v["weight"] for v in experiment["variants"]} == {"baseline": 0.5, "model": 0.5}
    assert experiment["variants"][0]["rule"]["column"] == "number_customer_service_calls"
    assert experiment["error"] is None
    # Then it exposed at least the units its own power plan asks for: the 800 held-out customers, then
    # customers simulated from the training split, each once, with a split that passes the SRM check
    planned = experiment["plan"]["total_units"]
    assert results["units"] == campaign["customers"] >= planned
    assert campaign["held_out_customers"] == 800
    assert campaign["simulated_customers"] == campaign["customers"] - 800
    assert "training split" in campaign["generator"]
    assert results["sample_ratio"]["mismatch"] is False
    # And each metric compares the model with the baseline: difference, interval, p-values, lift
    assert [m["metric"] for m in results["metrics"]] == ["retained", "customer_value_usd", "offered"]
    for metric in results["metrics"]:
        comparison = metric["comparisons"][0]
        assert (comparison["control"], comparison["treatment"]) == ("baseline", "model")
        low, high = comparison["confidence_interval"]["low"], comparison["confidence_interval"]["high"]
        assert low <= comparison["difference"] <= high
        assert 0 <= comparison["p_value"] <= 1
        assert 0 <= comparison["sequential"]["always_valid_p_value"] <= 1
        assert comparison["sequential"]["estimate"] == "cuped"
    # And the model's offers keep more of the customers who were about to leave than the rule's
    variants = campaign["variants"]
    recall = {name: v["saved"] / v["would_churn"] for name, v in variants.items()}
    assert recall["model"] > recall["baseline"]
    # And the impact criterion reads the experiment's own estimate, whose primary effect is significant at the
    # plan's alpha at the planned size; the simulation's truth is only reported beside it
    assumptions = impact["assumptions"]
    assert assumptions == {
        "customer_base": 100_000,
        "annual_value_per_customer_usd": 700.0,
        "offer_cost_usd": 50.0,
        "offer_acceptance_rate": 0.3,
    }
    measured = impact["measured_by_experiment"]
    assert impact["projected_annual_impact_usd"] == measured["projected_annual_impact_usd"]
    low, high = measured["projected_annual_impact_ci_usd"]
    assert low <= measured["projected_annual_impact_usd"] <= high
    assert measured["projected_annual_impact_usd"] == pytest.approx(
        measured["net_value_per_customer_usd"] * 100_000, abs=100.0
    )
    primary = impact["primary_effect"]
    assert primary["significant_at_planned_size"]
    assert primary["p_value"] < primary["alpha"]
    criteria = pilot["results"]["success_criteria"]
    assert criteria["projected_annual_impact_usd"]["value"] == measured["projected_annual_impact_usd"]
    assert "simulated truth" in criteria["projected_annual_impact_usd"]["detail"]
    assert criteria["experiment_units"]["value"] >= criteria["experiment_units"]["target"] == planned


def test_monitoring_judges_a_later_window_with_prediction_ids_the_evaluation_never_used(
    platform: LocalPlatform, api: Client, pilot: dict[str, Any]
) -> None:
    monitoring = pilot["results"]["monitoring"]
    # Given the customers the held-out evaluation scored, and the later window the monitoring judged
    s3, bucket = platform.client("s3"), platform.stack.physical_id("ArtifactBucket")
    window = json.loads(s3.get_object(Bucket=bucket, Key=monitoring["predictions"]["key"])["Body"].read())
    evaluated = {row["customer_id"] for row in csv.DictReader(io.StringIO(_artifact(platform, "test.csv")))}
    # Then the monitored accuracy and AUC come from every window customer's outcome, joined by prediction id
    assert len(window) == monitoring["window_customers"] == monitoring["outcomes_matched"] == 400
    assert monitoring["accuracy"] is not None
    assert monitoring["auc"] is not None
    # And the window's customers are none of the evaluated ones, and its prediction ids none of the predictions
    # the evaluation's customers were ever served (smoke test, campaign)
    assert not {row["customer_id"] for row in window} & evaluated
    served_to_evaluated = {
        prediction_id
        for prediction_id, customer in _audited_predictions(operator_client(platform))
        if customer in evaluated
    }
    assert served_to_evaluated
    assert not {row["prediction_id"] for row in window} & served_to_evaluated


def _artifact(platform: LocalPlatform, name: str) -> str:
    s3, bucket = platform.client("s3"), platform.stack.physical_id("ArtifactBucket")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="runs/")["Contents"] if o["Key"].endswith(name)]
    return s3.get_object(Bucket=bucket, Key=sorted(keys)[-1])["Body"].read().decode()


def _audited_predictions(operator: Client) -> list[tuple[str, str]]:
    """(prediction id, customer id) of every prediction in the audit trail, read through GET /audit (an operator
    route: signed)."""
    pairs: list[tuple[str, str]] = []
    query: dict[str, Any] = {"event_type": "prediction", "limit": 1000}
    while True:
        page = operator.get("/audit", query_string=query).get_json()
        for record in page["records"]:
            details = record["event"]["details"]
            pairs += [(row["prediction_id"], row["customer_id"]) for row in details.get("predictions", [details])]
        if not page.get("next_page_token"):
            return pairs
        query["page_token"] = page["next_page_token"]


def test_predict_after_the_pilot_returns_the_customers_variant_and_its_decision(
    api: Client, pilot: dict[str, Any]
) -> None:
    experiment_id = pilot["results"]["experiment"]["experiment_id"]
    body = json.loads(load_event("predict_valid")["body"])
    decisions = {}
    for calls in (0, 5):
        # Given customers with few and with many service calls, each asked twice
        for customer in (f"C9{calls}{i:03d}" for i in range(40)):
            request = {
                "customer_id": customer,
                "features": {**body["features"], "number_customer_service_calls": calls},
            }
            first, second = (api.post("/predict", json=request).get_json() for _ in range(2))
            # Then each gets a variant of the running experiment, the same one every time
            assert first["experiment_id"] == experiment_id
            assert first["variant"] == second["variant"]
            decisions.setdefault((first["variant"], calls), set()).add(first["churn_prediction"])
            if first["variant"] == "model":
                assert first["churn_prediction"] == (first["churn_probability"] >= first["threshold"])
    # And the baseline variant serves the rule: churn exactly when there were more than 3 service calls
    assert decisions[("baseline", 0)] == {False}
    assert decisions[("baseline", 5)] == {True}


def test_model_artifacts_are_written_and_match_their_recorded_digests(pilot: dict[str, Any]) -> None:
    import hashlib

    model_dir = pilot["output_dir"] / "model"
    card = json.loads((model_dir / "model_card.json").read_text())
    for name, filename in (
        ("onnx", "model.onnx"),
        ("sklearn", "model.skops"),
        ("feature_spec", "feature_spec.json"),
    ):
        assert (
            hashlib.sha256((model_dir / filename).read_bytes()).hexdigest()
            == (card["model_details"]["artifacts"][name]["sha256"])
        )
    assert card["model_details"]["version"] == pilot["results"]["model_version"]
    # The card has segments by international plan and by state region, and a rendered Markdown beside it
    assert {s["segment"] for s in card["segments"]} == {"international_plan", "state_region"}
    assert sum(s["n"] for s in card["segments"] if s["segment"] == "state_region") == 800
    markdown = (model_dir / "model_card.md").read_text()
    assert markdown.startswith(f"# Model card: churn {card['model_details']['version']}")
    assert "## Segment metrics" in markdown
    assert card["lineage"]["feature_group"] == "customer_behavior"
    assert card["data"]["sha256"] == hashlib.sha256(TELECOM_CSV.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------ serving
def test_predict_serves_the_deployed_model(api: Client, pilot: dict[str, Any]) -> None:
    event = load_event("predict_valid")
    response = api.post("/predict", data=event["body"], content_type="application/json")
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["model_version"] == pilot["results"]["model_version"]
    assert 0.0 <= body["churn_probability"] <= 1.0
    # The pilot left its A/B test running: the decision is the customer's variant's (C00011 has 4 calls)
    model_decision = body["churn_probability"] >= body["threshold"]
    assert body["churn_prediction"] == (model_decision if body["variant"] == "model" else True)
    assert body["imputed_features"] == []
    assert body["prediction_id"]


def test_missing_and_unseen_features_are_imputed_and_listed(api: Client) -> None:
    missing = api.post(
        "/predict", data=load_event("predict_missing_features")["body"], content_type="application/json"
    ).get_json()
    assert "total_eve_minutes" in missing["imputed_features"]
    assert "state" not in missing["imputed_features"]
    unseen = api.post(
        "/predict", data=load_event("predict_unseen_category")["body"], content_type="application/json"
    ).get_json()
    assert set(unseen["imputed_features"]) == {"state", "area_code"}


@pytest.mark.parametrize(
    ("event_name", "status", "field"),
    [
        ("predict_invalid_type", 422, "features.total_day_minutes"),
        ("predict_unknown_feature", 422, "features.total_day_minute"),
        ("predict_missing_customer_id", 422, "customer_id"),
        ("predict_malformed_json", 400, "body"),
        ("predict_batch_too_large", 422, "records"),
    ],
)
def test_invalid_requests_get_a_4xx_json_error_naming_the_field(
    platform: LocalPlatform, pilot: dict[str, Any], event_name: str, status: int, field: str
) -> None:
    # Given an invalid request event from events/ (the same file sam local invoke uses)
    response = platform.runtime.invoke("ScoringFunction", load_event(event_name))
    body = json.loads(response["body"])
    # Then a 4xx with the error shape that names the field, and no stack trace
    assert response["statusCode"] == status, body
    assert field in [f["field"] for f in body["error"]["fields"]]
    assert "Traceback" not in response["body"]


def test_a_batch_error_names_the_record(api: Client) -> None:
    batch = json.loads(load_event("predict_batch_valid")["body"])
    batch["records"][3]["features"]["total_day_calls"] = float("inf")
    response = api.post("/predict/batch", data=json.dumps(batch), content_type="application/json")
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"][0]["field"] == "records[3].features.total_day_calls"


def test_batch_predictions_equal_single_predictions(api: Client) -> None:
    batch = json.loads(load_event("predict_batch_valid")["body"])
    response = api.post("/predict/batch", json=batch).get_json()
    singles = [api.post("/predict", json=record).get_json() for record in batch["records"]]
    assert [p["churn_probability"] for p in response["predictions"]] == [s["churn_probability"] for s in singles]


def test_health_and_models_report_the_serving_version(api: Client, pilot: dict[str, Any]) -> None:
    version = pilot["results"]["model_version"]
    assert api.get("/health").get_json() == {"status": "ok", "model_name": "churn", "model_version": version}
    models = api.get("/models").get_json()
    assert models["production_version"] == version
    assert [m["status"] for m in models["models"] if m["version"] == version] == ["Deployed"]


def test_make_score_writes_the_same_probabilities_as_the_api(
    api: Client, pilot: dict[str, Any], tmp_path: Path
) -> None:
    # Given the first 50 telecom customers as a CSV
    rows = list(csv.DictReader(TELECOM_CSV.open()))[:50]
    input_csv = tmp_path / "input.csv"
    with input_csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    # When scoring it with the pilot's model directory
    output_csv = tmp_path / "scores.csv"
    assert (
        cmd_score(argparse.Namespace(model_dir=pilot["output_dir"] / "model", input=input_csv, output=output_csv)) == 0
    )
    scored = list(csv.DictReader(output_csv.open()))
    # Then one row per input row, with the API's probabilities
    assert [r["customer_id"] for r in scored] == [r["customer_id"] for r in rows]
    numeric = {
        k
        for k in rows[0]
        if k not in {"customer_id", "state", "area_code", "international_plan", "voice_mail_plan", "churn"}
    }
    for row, score in zip(rows[:10], scored[:10], strict=True):
        features = {k: (float(v) if k in numeric else v) for k, v in row.items() if k not in {"customer_id", "churn"}}
        api_probability = api.post("/predict", json={"customer_id": row["customer_id"], "features": features})
        assert float(score["churn_probability"]) == pytest.approx(
            api_probability.get_json()["churn_probability"], abs=1e-6
        )
        assert score["model_version"] == pilot["results"]["model_version"]


# ------------------------------------------------------------------------------------------ failures
def start_pilot(platform: LocalPlatform, **overrides: Any) -> Any:
    pilot_input = PilotInput(
        data_key="datasets/telecom_churn.csv",
        schema_key="datasets/telecom_churn.schema.json",
        smoke_test_calls=20,
        **overrides,
    )
    arn = platform.start_execution("PilotStateMachine", pilot_input.model_dump(mode="json"))
    return platform.wait_for_execution(arn, timeout_s=600)


def failure_record(platform: LocalPlatform, execution_arn: str) -> dict[str, Any]:
    table = platform.stack.physical_id("ModelRegistryTable")
    name = execution_arn.rsplit(":", 1)[-1]
    item = platform.client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": "MODEL#churn"}, "sk": {"S": f"RUN#{name}"}}
    )
    return item["Item"]


def test_a_failing_deploy_step_leaves_the_previous_model_serving(
    platform: LocalPlatform, pilot: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the first pilot's model serving
    serving = pilot["results"]["model_version"]
    assert production_version(platform) == serving

    # When a second pilot's deployment transaction fails
    def failing_transaction(self: Any, writes: Any, model_name: str, expected_current: Any) -> None:
        raise RuntimeError("injected: DynamoDB transaction failed")

    monkeypatch.setattr("mlops.registry.store.ModelRegistry._transact", failing_transaction)
    result = start_pilot(platform)

    # Then the execution fails at DeployModel, the failure is recorded, and the old model still serves
    assert result.status == "FAILED"
    failed = [s for s in result.states if s.error]
    assert failed[0].name == "DeployModel"
    assert "RuntimeError" in failed[0].error
    assert failure_record(platform, result.execution_arn)["error"]["S"] == "RuntimeError"
    assert production_version(platform) == serving


def test_a_failing_smoke_test_rolls_production_back_to_the_previous_model(
    platform: LocalPlatform, pilot: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = pilot["results"]["model_version"]

    # When the new model deploys but the smoke test then fails
    def failing_summary(latencies: Any) -> Any:
        raise RuntimeError("injected: smoke test failure")

    monkeypatch.setattr("mlops.pilot.smoke_test.summarise_latency", failing_summary)
    result = start_pilot(platform)

    # Then it deployed, rolled back, and production serves the previous version again
    names = [s.name for s in result.states]
    assert result.status == "FAILED"
    assert names.index("DeployModel") < names.index("SmokeTest") < names.index("RollBack")
    rollback = next(s for s in result.states if s.name == "RollBack")
    assert rollback.status == "SUCCEEDED"
    assert production_version(platform) == serving


def test_a_model_below_the_quality_targets_is_never_registered(platform: LocalPlatform, pilot: dict[str, Any]) -> None:
    serving = pilot["results"]["model_version"]
    result = start_pilot(platform, targets={"accuracy": 0.999, "auc_roc": 0.87, "latency_p95_ms": 80})
    names = [s.name for s in result.states]
    assert result.status == "FAILED"
    assert "RegisterModel" not in names
    assert "ModelBelowTargets" in names
    assert failure_record(platform, result.execution_arn)["error"]["S"] == "ModelBelowTargets"
    assert production_version(platform) == serving
    # And the results file of such a run says why
    results = pilot_results(result, result.output or {}, elapsed_s=1.0)
    assert results["status"] == "FAILED"
    assert results["error"]["error"]


# ------------------------------------------------------------------------------------------ step events
def test_the_environment_step_event_checks_every_resource(platform: LocalPlatform, pilot: dict[str, Any]) -> None:
    # Given the event the ValidateEnvironment step received in a real run (events/, `make events`)
    report = platform.runtime.invoke("ValidateEnvironmentFunction", load_event("pilot_step_validate_environment"))
    # Then the three buckets, both tables, the scoring function and the data objects answered
    assert len(report["checked"]) == 8
    assert report["production_version"] == pilot["results"]["model_version"]


def test_the_success_criteria_step_event_passes_and_a_slow_endpoint_fails_it(platform: LocalPlatform) -> None:
    event = load_event("pilot_step_validate_success_criteria")
    assert platform.runtime.invoke("ValidateCriteriaFunction", event)["all_passed"] is True
    # When the smoke test had measured a p95 above the target
    event["pilot"]["smoke_test"]["latency_ms"]["p95"] = (
        event["pilot"]["dataset"]["use_case"]["targets"]["latency_p95_ms"] + 1
    )
    report = platform.runtime.invoke("ValidateCriteriaFunction", event)
    assert report["all_passed"] is False
    assert report["failed"] == ["latency_p95_ms"]


def test_deploying_an_unknown_version_is_refused_and_changes_nothing(
    platform: LocalPlatform, pilot: dict[str, Any]
) -> None:
    event = {**load_event("pilot_step_deploy_model"), "model_version": "v-does-not-exist"}
    with pytest.raises(ModelNotFoundError):
        platform.runtime.invoke("DeployModelFunction", event)
    assert production_version(platform) == pilot["results"]["model_version"]


def test_a_json_body_is_read_as_json_whatever_content_type_the_client_sends(api: Client) -> None:
    # Given the body curl -d sends, with curl's default form content type
    body = load_event("predict_valid")["body"]
    for content_type in ("application/x-www-form-urlencoded", "text/plain"):
        response = api.post("/predict", data=body, content_type=content_type)
        assert response.status_code == 200, response.get_json()


def test_a_failing_ab_test_fails_the_pilot_but_keeps_the_validated_model_serving(
    platform: LocalPlatform, pilot: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the first pilot's experiment running, and a second pilot whose campaign step cannot read its data
    def unreadable(*args: Any) -> Any:
        raise RuntimeError("injected: test split unreadable")

    monkeypatch.setattr("mlops.pilot.campaign.read_customers", unreadable)
    result = start_pilot(platform)

    # Then the pilot fails on ab_testing_ready after the new model passed its own criteria ...
    names = [s.name for s in result.states]
    assert result.status == "FAILED"
    assert "RollBack" not in names
    assert names.index("AllCriteriaMet") < names.index("StartExperiment") < names.index("RunRetentionCampaign")
    assert "ExperimentCriteriaNotMet" in names
    output = pilot_results(result, result.output or {}, elapsed_s=1.0)
    assert output["status"] == "FAILED"
    assert failure_record(platform, result.execution_arn)["error"]["S"] == "ExperimentCriteriaNotMet"
    assert "ab_testing_ready" in failure_record(platform, result.execution_arn)["cause"]["S"]
    # ... the new version keeps serving (no rollback), and the first pilot's experiment was superseded
    history = platform.client("stepfunctions").get_execution_history(executionArn=result.execution_arn)["events"]
    started = next(
        json.loads(e["stateExitedEventDetails"]["output"])
        for e in history
        if e["type"] == "TaskStateExited" and e["stateExitedEventDetails"]["name"] == "StartExperiment"
    )["experiment"]
    assert started["stopped_previous"] == pilot["results"]["experiment"]["experiment_id"]
    registered = next(
        json.loads(e["stateExitedEventDetails"]["output"])
        for e in history
        if e["type"] == "TaskStateExited" and e["stateExitedEventDetails"]["name"] == "RegisterModel"
    )["registration"]["model_version"]
    assert production_version(platform) == registered != pilot["results"]["model_version"]


def test_the_results_show_the_global_importance_from_the_model_card(pilot: dict[str, Any]) -> None:
    explainability = pilot["results"]["explainability"]
    importance = explainability["global_importance"]
    card = json.loads((pilot["output_dir"] / "model" / "model_card.json").read_text())
    assert explainability == card["explainability"]
    # Then every input feature is ranked, and the service calls the data is known for are among the top five
    names = [entry["feature"] for entry in importance] if isinstance(importance, list) else list(importance)
    assert "number_customer_service_calls" in names[:5]
