"""The feature store through the API on the local stack (moto), after one pilot ingested the telecom file:
GET/DELETE /features/{customer_id}, POST /features/batch, and /predict, /explain with only a customer id."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from werkzeug.test import Client

from api_clients import client, operator_client
from helpers import TELECOM_CSV, TELECOM_SCHEMA, load_event
from local_cloud.platform import LocalPlatform
from mlops.data.dataset import read_dataset
from mlops.data.schema import DataSchema
from mlops.feature_store.online import OnlineFeatureStore, feature_group_from_schema

pytestmark = pytest.mark.slow

SCHEMA = DataSchema.from_file(TELECOM_SCHEMA)


@pytest.fixture(scope="module")
def api(platform: LocalPlatform, pilot: dict[str, Any]) -> Client:
    """A scoring client: API key routes (no key is enforced here)."""
    return client(platform)


@pytest.fixture(scope="module")
def customers() -> Any:
    return read_dataset(TELECOM_CSV, SCHEMA).set_index(SCHEMA.id_column)


def full_payload(customers: Any, customer_id: str) -> dict[str, Any]:
    row = customers.loc[customer_id, SCHEMA.feature_columns]
    return {
        "customer_id": customer_id,
        "features": {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()},
    }


def invoke(platform: LocalPlatform, function: str, event_name: str) -> tuple[int, dict[str, Any]]:
    response = platform.runtime.invoke(function, load_event(event_name))
    return response["statusCode"], json.loads(response["body"])


def test_a_customers_stored_features_are_the_ingested_values(
    platform: LocalPlatform, pilot: dict[str, Any], customers: Any
) -> None:
    # Given the pilot ingested the telecom file as of its snapshot time
    as_of = dt.datetime.fromisoformat(pilot["results"]["feature_store"]["as_of"])
    # When the lookup event (`sam local invoke FeaturesFunction -e events/features_get.json`) is sent
    status, record = invoke(platform, "FeaturesFunction", "features_get")
    # Then it returns every feature of the file's row, observed at the snapshot, and fresh
    assert status == 200, record
    assert record["customer_id"] == "C00011"
    assert (record["feature_group"], record["group_version"], record["status"]) == ("customer_behavior", 1, "fresh")
    assert dt.datetime.fromisoformat(record["event_time"]) == as_of.replace(
        microsecond=as_of.microsecond // 1000 * 1000
    )
    assert record["values"] == full_payload(customers, "C00011")["features"]
    # And a lookup can ask for only some features
    status, selected = invoke(platform, "FeaturesFunction", "features_get_selected")
    assert status == 200
    assert set(selected["values"]) == {"number_customer_service_calls", "international_plan"}


def test_an_unknown_or_malformed_customer_is_a_json_error_naming_the_field(
    platform: LocalPlatform, api: Client
) -> None:
    status, body = invoke(platform, "FeaturesFunction", "features_get_unknown")
    assert status == 404
    assert body["error"]["code"] == "entity_not_found"
    assert body["error"]["fields"][0]["field"] == "customer_id"
    response = api.get("/features/" + "x" * 200)
    assert response.status_code == 400
    assert response.get_json()["error"]["fields"][0]["field"] == "customer_id"
    response = api.get("/features/C00011?features=not_a_feature")
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"][0]["field"] == "features.not_a_feature"


def test_a_batch_lookup_keeps_the_request_order_and_lists_the_unknown_ids(platform: LocalPlatform, api: Client) -> None:
    status, batch = invoke(platform, "FeaturesFunction", "features_batch")
    assert status == 200, batch
    assert [r["customer_id"] for r in batch["records"]] == ["C00011", "C00012", "C00013"]
    assert batch["missing"] == ["C99999"]
    assert set(batch["records"][0]["values"]) == {
        "number_customer_service_calls",
        "total_day_minutes",
        "international_plan",
    }
    # More than 100 ids is refused, naming the field
    response = api.post("/features/batch", json={"customer_ids": [f"C{i:05d}" for i in range(101)]})
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"][0]["field"] == "customer_ids"


def test_predict_with_only_a_customer_id_scores_the_stored_features(
    platform: LocalPlatform, api: Client, customers: Any
) -> None:
    # Given the same customer sent with every feature, and with only its id
    status, by_id = invoke(platform, "ScoringFunction", "predict_customer_id_only")
    full = api.post("/predict", json=full_payload(customers, "C00011")).get_json()
    # Then both get the same probability, and each says where its features came from
    assert status == 200, by_id
    assert by_id["churn_probability"] == full["churn_probability"]
    assert set(by_id["feature_sources"].values()) == {"store"}
    assert set(full["feature_sources"].values()) == {"request"}
    assert by_id["feature_status"] == "fresh"
    assert by_id["feature_event_time"] is not None
    assert full["feature_event_time"] is None
    # And a feature sent with the id overrides the stored one
    override = {"customer_id": "C00011", "features": {"number_customer_service_calls": 0}}
    overridden = api.post("/predict", json=override).get_json()
    changed = full_payload(customers, "C00011")
    changed["features"]["number_customer_service_calls"] = 0
    assert overridden["churn_probability"] == api.post("/predict", json=changed).get_json()["churn_probability"]
    assert overridden["feature_sources"]["number_customer_service_calls"] == "request"
    assert overridden["feature_sources"]["total_day_minutes"] == "store"


def test_a_batch_of_ids_scores_like_the_full_payloads(api: Client, customers: Any) -> None:
    # Given 150 customers (more than one BatchGetItem) sent by id only, and with their features
    ids = list(customers.index[:150])
    by_id = api.post("/predict/batch", json={"records": [{"customer_id": i} for i in ids]}).get_json()
    full = api.post("/predict/batch", json={"records": [full_payload(customers, i) for i in ids]}).get_json()
    # Then every probability is the same
    assert [p["churn_probability"] for p in by_id["predictions"]] == [
        p["churn_probability"] for p in full["predictions"]
    ]
    # And an unknown id without features is refused, naming its record
    response = api.post("/predict/batch", json={"records": [{"customer_id": "C00011"}, {"customer_id": "NOPE"}]})
    assert response.status_code == 404
    assert response.get_json()["error"]["fields"][0]["field"] == "records[1].customer_id"


def test_an_unknown_customer_needs_its_features(api: Client) -> None:
    response = api.post("/predict", json={"customer_id": "C99999"})
    assert response.status_code == 404
    assert response.get_json()["error"]["fields"][0]["field"] == "customer_id"
    # With some features it is scored, the rest imputed
    partial = api.post("/predict", data=load_event("predict_missing_features")["body"]).get_json()
    assert partial["feature_sources"]["total_day_minutes"] == "request"
    assert partial["feature_sources"]["total_eve_minutes"] == "imputed"


def test_explain_with_only_a_customer_id_explains_the_stored_features(api: Client) -> None:
    explanation = api.post("/explain", json={"customer_id": "C00011"}).get_json()
    prediction = api.post("/predict", json={"customer_id": "C00011"}).get_json()
    assert explanation["churn_probability"] == prediction["churn_probability"]
    assert set(explanation["feature_sources"].values()) == {"store"}


def test_deleting_a_customer_removes_it_from_lookups_and_scoring_and_is_recorded(
    platform: LocalPlatform, api: Client
) -> None:
    # Given a stored customer, when the deletion event is sent
    status, deletion = invoke(platform, "FeaturesFunction", "features_delete")
    # Then it is deleted, and neither lookups nor id-only scoring find it any more
    assert status == 200, deletion
    assert deletion["deleted"] is True
    assert api.get("/features/C03999").status_code == 404
    assert api.post("/predict", json={"customer_id": "C03999"}).status_code == 404
    # And the deletion is on record for governance; a second request, by the operator over HTTP (signed: deleting
    # is an operator action a scoring client is refused), finds nothing to delete
    store = OnlineFeatureStore(platform.stack.physical_id("FeatureStoreTable"), platform.client("dynamodb"))
    recorded = [d for d in store.deletions("customer_behavior") if d.entity_id == "C03999"]
    assert [d.deletion_id for d in recorded] == [deletion["deletion_id"]]
    # (requested by the IAM principal that signed the event's request)
    assert recorded[0].requested_by == load_event("features_delete")["requestContext"]["identity"]["userArn"]
    assert api.delete("/features/C03999").status_code == 403
    assert operator_client(platform).delete("/features/C03999").status_code == 404


def test_re_ingesting_the_same_file_changes_nothing(platform: LocalPlatform, pilot: dict[str, Any]) -> None:
    # Given the ingestion step's input as the pilot gave it (same file, same snapshot time)
    ingested = pilot["results"]["feature_store"]
    group = feature_group_from_schema(SCHEMA)
    store = OnlineFeatureStore(platform.stack.physical_id("FeatureStoreTable"), platform.client("dynamodb"))
    before = store.get(group, "C00012")
    event = {
        "execution_id": "local-reingest",
        "execution_name": "reingest",
        "execution_start_time": ingested["as_of"],
        "pilot": {"data_key": ingested["source_key"], "schema_key": "datasets/telecom_churn.schema.json"},
    }
    # When the ingestion function runs again
    report = platform.runtime.invoke("IngestFeaturesFunction", event)
    # Then nothing is written online or offline, and the stored record is unchanged
    assert (report["rows"], report["written"], report["skipped_not_newer"]) == (4000, 0, 4000)
    assert report["offline_parts_written"] == 0
    assert store.get(group, "C00012") == before
