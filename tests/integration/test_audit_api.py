"""The audit trail on the local stack (moto) after one pilot: every component's state changes and every
prediction are recorded, the chains verify, tampering is reported at its position, and no prediction is
returned when its audit record cannot be written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.dynamodb.exceptions import DynamodbException
from moto.dynamodb.models import DynamoDBBackend
from werkzeug.test import Client

from helpers import load_event
from local_cloud.platform import LocalPlatform

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(platform: LocalPlatform, pilot: dict[str, Any]) -> Client:
    return Client(platform.api_app())


def audit_records(api: Client, **query: Any) -> list[dict[str, Any]]:
    records, query = [], {"limit": 1000, **query}
    while True:
        page = api.get("/audit", query_string=query).get_json()
        records += page["records"]
        if not page.get("next_page_token"):
            return records
        query["page_token"] = page["next_page_token"]


def test_the_pilot_run_lists_every_state_change_in_order_and_verifies(pilot: dict[str, Any]) -> None:
    audit = pilot["results"]["audit"]
    # Then the chains verify against their digests
    assert audit["verification"]["valid"] is True
    assert audit["verification"]["digests_checked"] == audit["verification"]["chains"] >= 1
    # And the run's state changes are there, in the order they happened
    changes = audit["state_changes"]
    version = pilot["results"]["model_version"]
    assert [c["event_type"] for c in changes] == [
        "model_registered",
        "model_approved",
        "model_deployed",
        "experiment_created",
    ]
    assert {c["entity"] for c in changes[:3]} == {f"model:churn/{version}"}
    assert changes[1]["actor"] == "policy:auto-approval"
    assert [c["occurred_at"] for c in changes] == sorted(c["occurred_at"] for c in changes)
    # And every prediction the run made (smoke test and campaign; the campaign re-scores its customers once the
    # scoring function sees the experiment) is audited
    customers = pilot["results"]["experiment"]["campaign"]["customers"]
    assert audit["predictions_audited"] >= 200 + customers


def test_a_prediction_is_audited_with_its_input_hash_and_no_feature_values(api: Client) -> None:
    # Given a prediction through the API
    prediction = api.post("/predict", data=load_event("predict_valid")["body"]).get_json()
    # When the customer's audit records are read
    records = audit_records(api, entity="customer:C00011", event_type="prediction")
    # Then the prediction is there with its version, input hash and output, and no feature value
    (record,) = [r for r in records if r["event"]["details"]["prediction_id"] == prediction["prediction_id"]]
    details = record["event"]["details"]
    assert details["model_version"] == prediction["model_version"]
    assert details["input_sha256"] == prediction["input_sha256"]
    assert details["churn_probability"] == prediction["churn_probability"]
    assert "total_day_minutes" not in json.dumps(record)
    assert "129.1" not in json.dumps(record)


def test_a_feature_deletion_is_audited(api: Client) -> None:
    deletion = api.delete("/features/C00020").get_json()
    (record,) = audit_records(api, entity="customer:C00020", event_type="feature_deletion")
    assert record["event"]["details"]["deletion_id"] == deletion["deletion_id"]


@pytest.fixture
def failing_audit_table(platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write to the audit table is throttled, as DynamoDB does under a write storm."""
    audit_table = platform.stack.physical_id("AuditTable")
    real_put_item = DynamoDBBackend.put_item

    def throttled(self: DynamoDBBackend, table_name: str, *args: Any, **kwargs: Any) -> Any:
        if table_name == audit_table:
            raise DynamodbException("ProvisionedThroughputExceededException", "throttled (test)")
        return real_put_item(self, table_name, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "put_item", throttled)  # undone by monkeypatch after the test


def test_no_prediction_is_returned_without_its_audit_record(
    api: Client, platform: LocalPlatform, failing_audit_table: None
) -> None:
    before = platform.client("dynamodb").scan(TableName=platform.stack.physical_id("AuditTable"), Select="COUNT")
    # When the audit store fails for every retry
    response = api.post("/predict", data=load_event("predict_valid")["body"])
    batch = api.post("/predict/batch", data=load_event("predict_batch_valid")["body"])
    # Then no prediction is returned: a retryable 503 naming the audit trail
    for failed in (response, batch):
        assert failed.status_code == 503
        body = failed.get_json()
        assert body["error"]["code"] == "audit_unavailable"
        assert body["error"]["retryable"] is True
        assert "churn_probability" not in json.dumps(body)
    # And nothing was half-written
    after = platform.client("dynamodb").scan(TableName=platform.stack.physical_id("AuditTable"), Select="COUNT")
    assert after["Count"] == before["Count"]


def test_predictions_are_audited_again_once_the_store_recovers(api: Client) -> None:
    response = api.post("/predict", data=load_event("predict_valid")["body"])
    assert response.status_code == 200
    prediction_id = response.get_json()["prediction_id"]
    records = audit_records(api, entity="customer:C00011", event_type="prediction")
    assert prediction_id in {r["event"]["details"]["prediction_id"] for r in records}


def test_verify_reports_a_modified_record_at_its_position(api: Client, platform: LocalPlatform) -> None:
    # Given one audited prediction whose stored record is then changed (its output rewritten)
    dynamodb, table = platform.client("dynamodb"), platform.stack.physical_id("AuditTable")
    prediction = api.post("/predict", data=load_event("predict_valid")["body"]).get_json()
    (record,) = [
        r
        for r in audit_records(api, entity="customer:C00011", event_type="prediction")
        if r["event"]["details"]["prediction_id"] == prediction["prediction_id"]
    ]
    key = {"pk": {"S": f"AUDIT#{record['chain']}"}, "sk": {"S": f"SEQ#{record['sequence']:012d}"}}
    original = dynamodb.get_item(TableName=table, Key=key)["Item"]
    forged = original["document"]["S"].replace(
        json.dumps(prediction["churn_probability"]), json.dumps(round(1 - prediction["churn_probability"], 6))
    )
    assert forged != original["document"]["S"]
    dynamodb.put_item(TableName=table, Item={**original, "document": {"S": forged}})
    try:
        # When the chains are verified
        result = api.get("/audit/verify").get_json()
        # Then the break is reported at that record
        assert result["valid"] is False
        broken = result["first_broken"]
        assert (broken["chain"], broken["sequence"], broken["reason"]) == (
            record["chain"],
            record["sequence"],
            "modified",
        )
    finally:
        dynamodb.put_item(TableName=table, Item=original)
    assert api.get("/audit/verify").get_json()["valid"] is True


def test_the_audit_events_answer_through_the_function(platform: LocalPlatform) -> None:
    # `sam local invoke AuditFunction -e events/audit_verify.json` (and audit_list.json)
    verified = platform.runtime.invoke("AuditFunction", load_event("audit_verify"))
    assert verified["statusCode"] == 200
    assert json.loads(verified["body"])["valid"] is True
    listed = json.loads(platform.runtime.invoke("AuditFunction", load_event("audit_list"))["body"])
    assert [r["event"]["event_type"] for r in listed["records"]] == ["model_deployed"] * len(listed["records"])
    assert listed["records"]
