"""POST /explain and /explain/batch on the local stack (moto): the template's ExplainFunction, after one pilot.

The module runs one pilot on its own LocalPlatform (about 25 s); only one platform may be active per process,
so it stays module-scoped here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from werkzeug.test import Client

from helpers import TELECOM_CSV, load_event
from local_cloud.platform import LocalPlatform

pytestmark = pytest.mark.slow

TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def api(platform: LocalPlatform, pilot: dict[str, Any]) -> Client:
    return Client(platform.api_app())


def invoke(platform: LocalPlatform, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = platform.runtime.invoke("ExplainFunction", event)
    assert isinstance(response, dict)
    return response["statusCode"], json.loads(response["body"])


def body_of(event_name: str) -> dict[str, Any]:
    return json.loads(load_event(event_name)["body"])


def assert_additive(explanation: dict[str, Any]) -> None:
    total = explanation["base_value"] + sum(c["contribution"] for c in explanation["contributions"])
    assert abs(total + explanation["remaining_contribution"] - explanation["model_output"]) < TOLERANCE


def test_the_explain_event_explains_the_served_version_with_predicts_probability(
    platform: LocalPlatform, pilot: dict[str, Any]
) -> None:
    # Given the deployed pilot model and the event `sam local invoke ExplainFunction -e` would send
    # When the function is invoked
    status, explanation = invoke(platform, load_event("explain_valid"))
    # Then it explains the version /predict serves, with the very probability /predict gives the same body
    assert status == 200, explanation
    predicted = platform.runtime.invoke("ScoringFunction", load_event("predict_valid"))
    prediction = json.loads(predicted["body"])
    assert explanation["model_version"] == prediction["model_version"] == pilot["results"]["model_version"]
    assert abs(explanation["churn_probability"] - prediction["churn_probability"]) < TOLERANCE
    # And every input feature is explained, additively, in the output space of the selected algorithm
    assert len(explanation["contributions"]) == 19
    assert_additive(explanation)
    expected_space = "log_odds" if pilot["results"]["algorithm"] == "gradient_boosting" else "probability"
    assert explanation["output_space"] == expected_space
    assert len(explanation["reasons"]) == 5
    assert all(c["from"] for c in explanation["contributions"])


@pytest.mark.parametrize("event_name", ["predict_valid", "predict_missing_features", "predict_unseen_category"])
def test_explain_and_predict_agree_through_the_api(api: Client, event_name: str) -> None:
    # Given a /predict body, complete or with imputed values
    body = body_of(event_name)
    # When it is sent to both endpoints
    prediction = api.post("/predict", json=body).get_json()
    response = api.post("/explain", json=body)
    explanation = response.get_json()
    # Then both answer for the same version with the same probability and the same imputed features
    assert response.status_code == 200, explanation
    assert explanation["model_version"] == prediction["model_version"]
    assert abs(explanation["churn_probability"] - prediction["churn_probability"]) < TOLERANCE
    assert explanation["imputed_features"] == prediction["imputed_features"]
    assert_additive(explanation)


def test_top_n_limits_the_contributions(api: Client) -> None:
    # Given a body / When explained with ?top=3, and with ?top=0
    response = api.post("/explain?top=3", json=body_of("predict_valid"))
    refused = api.post("/explain?top=0", json=body_of("predict_valid"))
    # Then the three largest are listed and the rest is summed up
    explanation = response.get_json()
    assert response.status_code == 200, explanation
    assert len(explanation["contributions"]) == 3
    assert explanation["remaining_contribution"] != 0.0
    assert_additive(explanation)
    # And a top below 1 is a validation error naming the query parameter
    assert refused.status_code == 422
    assert refused.get_json()["error"]["fields"][0]["field"] == "query.top"


def test_naming_the_served_version_is_accepted_and_another_is_refused_with_409(
    platform: LocalPlatform, api: Client, pilot: dict[str, Any]
) -> None:
    served = pilot["results"]["model_version"]
    # Given a body naming the served version / When explained / Then it is
    accepted = api.post("/explain", json={**body_of("predict_valid"), "model_version": served})
    assert accepted.status_code == 200
    assert accepted.get_json()["model_version"] == served
    # Given the event naming a version that is not deployed / When invoked
    status, body = invoke(platform, load_event("explain_not_deployed_version"))
    # Then it is refused as a conflict, in the API's one error shape, naming the served version
    assert status == 409
    error = body["error"]
    assert error["code"] == "version_not_deployed"
    assert error["fields"][0]["field"] == "model_version"
    assert body_of("explain_not_deployed_version")["model_version"] in error["message"]
    assert served in error["message"]
    assert error["retryable"] is False


def test_a_batch_is_explained_like_predict_batch_scores_it(platform: LocalPlatform, api: Client) -> None:
    # Given the batch event / When invoked
    status, batch = invoke(platform, load_event("explain_batch_valid"))
    # Then every record is explained, with /predict/batch's probabilities for the same records
    assert status == 200, batch
    records = body_of("explain_batch_valid")["records"]
    predictions = api.post("/predict/batch", json={"records": records}).get_json()["predictions"]
    assert [e["customer_id"] for e in batch["explanations"]] == [r["customer_id"] for r in records]
    for explanation, prediction in zip(batch["explanations"], predictions, strict=True):
        assert abs(explanation["churn_probability"] - prediction["churn_probability"]) < TOLERANCE
        assert explanation["model_version"] == batch["model_version"]
        assert_additive(explanation)


def test_a_batch_of_more_than_100_records_is_refused_naming_records(api: Client) -> None:
    # Given 101 stored customers sent by id / When explained as one batch
    ids = [line.split(",", 1)[0] for line in TELECOM_CSV.read_text().splitlines()[1:102]]
    records = [{"customer_id": customer_id} for customer_id in ids]
    response = api.post("/explain/batch", json={"records": records})
    # Then the batch is a validation error on `records`
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert [f["field"] for f in error["fields"]] == ["records"]
    # And 100 records are fine
    assert api.post("/explain/batch", json={"records": records[:100]}).status_code == 200


def test_the_model_card_holds_the_global_importance(pilot: dict[str, Any]) -> None:
    # Given the model card the pilot run downloaded
    card = json.loads((pilot["output_dir"] / "model" / "model_card.json").read_text())
    explainability = card["explainability"]
    # Then it ranks every input feature by mean |SHAP| on the held-out split, largest first
    importance = explainability["global_importance"]
    assert len(importance) == 19
    values = [item["mean_abs_contribution"] for item in importance]
    assert values == sorted(values, reverse=True)
    assert values[0] > 0
    assert explainability["rows"] == card["data"]["test_rows"]
    assert explainability["output_space"] in {"log_odds", "probability"}
    assert isinstance(explainability["base_value"], float)
    assert "TreeSHAP" in explainability["method"]
    assert explainability["max_additivity_error"] < TOLERANCE
