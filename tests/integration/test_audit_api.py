"""The audit trail on the local stack (moto) after one pilot: every component's state changes, every prediction
and explanation and every batch-scoring run are recorded, the chains verify, tampering is reported at its
position, and no prediction or explanation is returned (and no experiment exposure logged) when its audit record
cannot be written."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from werkzeug.test import Client

from api_clients import client, operator_client
from helpers import load_event
from local_cloud.platform import LocalPlatform
from mlops.experiments.store import ExperimentStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(platform: LocalPlatform, pilot: dict[str, Any]) -> Client:
    """A scoring client: API key routes (no key is enforced here)."""
    return client(platform)


@pytest.fixture(scope="module")
def operator(platform: LocalPlatform, pilot: dict[str, Any]) -> Client:
    """The local operator: GET /audit, /audit/verify and DELETE /features are AWS_IAM routes (SigV4)."""
    return operator_client(platform)


def audit_records(operator: Client, **query: Any) -> list[dict[str, Any]]:
    records, query = [], {"limit": 1000, **query}
    while True:
        page = operator.get("/audit", query_string=query).get_json()
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


def test_a_prediction_is_audited_with_its_input_hash_and_no_feature_values(api: Client, operator: Client) -> None:
    # Given a prediction through the API
    prediction = api.post("/predict", data=load_event("predict_valid")["body"]).get_json()
    # When the customer's audit records are read
    records = audit_records(operator, entity="customer:C00011", event_type="prediction")
    # Then the prediction is there with its version, input hash and output, and no feature value
    (record,) = [r for r in records if r["event"]["details"]["prediction_id"] == prediction["prediction_id"]]
    details = record["event"]["details"]
    assert details["model_version"] == prediction["model_version"]
    assert details["input_sha256"] == prediction["input_sha256"]
    assert details["churn_probability"] == prediction["churn_probability"]
    assert "total_day_minutes" not in json.dumps(record)
    assert "129.1" not in json.dumps(record)


def test_explanations_and_batch_scoring_runs_are_listed_by_get_audit(
    api: Client, operator: Client, platform: LocalPlatform, pilot: dict[str, Any]
) -> None:
    # Given an explanation, a batch of explanations and a prediction by the same client
    explanation = api.post("/explain", data=load_event("explain_valid")["body"]).get_json()
    explained = api.post("/explain/batch", data=load_event("explain_batch_valid")["body"]).get_json()
    prediction = api.post("/predict", data=load_event("predict_valid")["body"]).get_json()
    # And a batch-scoring run of the telecom file the pilot put in the data bucket
    s3, bucket = platform.client("s3"), platform.stack.physical_id("DataBucket")
    request = {
        "input_key": "datasets/telecom_churn.csv",
        "output_key": "batch-scores/audited.csv",
        "chunk_bytes": 100_000,
    }
    execution = platform.start_execution("BatchScoringStateMachine", request)
    run = platform.wait_for_execution(execution, timeout_s=300)
    assert run.status == "SUCCEEDED", (run.error, run.cause)

    # When GET /audit is read by event type
    explanations = audit_records(operator, event_type="explanation")
    batch_runs = audit_records(operator, event_type="batch_scoring")

    # Then the explanation is there under its customer, with its answer and the caller /predict records
    (single,) = [
        r for r in explanations if r["event"]["details"].get("explanation_id") == explanation["explanation_id"]
    ]
    details = single["event"]["details"]
    assert single["event"]["entity"] == "customer:C00011"
    assert (details["churn_probability"], details["model_version"]) == (
        explanation["churn_probability"],
        explanation["model_version"],
    )
    assert details["input_sha256"] == prediction["input_sha256"]  # the same body, the same inputs
    predicted = audit_records(operator, entity="customer:C00011", event_type="prediction")
    (predict_record,) = [r for r in predicted if r["event"]["details"]["prediction_id"] == prediction["prediction_id"]]
    assert single["event"]["actor"] == predict_record["event"]["actor"]
    assert "129.1" not in json.dumps(single)
    # And the batch of explanations in one record of its request, one entry per explanation
    (batch,) = [
        r
        for r in explanations
        if [e["explanation_id"] for e in r["event"]["details"].get("explanations", [])]
        == [e["explanation_id"] for e in explained["explanations"]]
    ]
    assert batch["event"]["entity"].startswith("request:")
    # And the batch-scoring run left exactly one record: the execution, the input's and the output's SHA-256
    # (as S3 holds them), the rows and the model version
    run_id = execution.rsplit(":", 1)[1]
    (record,) = [r for r in batch_runs if r["event"]["entity"] == f"batch:{run_id}"]
    details = record["event"]["details"]
    assert record["event"]["actor"] == execution
    assert (details["rows"], details["model_version"]) == (4000, pilot["results"]["model_version"])
    stored_input = s3.get_object(Bucket=bucket, Key="datasets/telecom_churn.csv")["Body"].read()
    stored_output = s3.get_object(Bucket=bucket, Key="batch-scores/audited.csv")["Body"].read()
    assert details["input"]["sha256"] == hashlib.sha256(stored_input).hexdigest()
    assert details["output"]["sha256"] == hashlib.sha256(stored_output).hexdigest()
    assert run.output["result"]["output_sha256"] == details["output"]["sha256"]


def test_a_feature_deletion_is_audited_in_the_operators_name(
    api: Client, operator: Client, platform: LocalPlatform
) -> None:
    # Given a scoring client, which cannot delete a customer's features (an operator action, signed)
    assert api.delete("/features/C00020").status_code == 403
    # When the operator deletes them
    deletion = operator.delete("/features/C00020").get_json()
    # Then the deletion is audited, with the operator's IAM principal as the actor
    (record,) = audit_records(operator, entity="customer:C00020", event_type="feature_deletion")
    assert record["event"]["details"]["deletion_id"] == deletion["deletion_id"]
    assert record["event"]["actor"] == platform.operator.arn


@pytest.fixture
def failing_audit_queue(platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every send to the audit queue is throttled, as SQS does past its limits."""
    queue_url = platform.stack.physical_id("AuditQueue")
    real_call = BaseClient._make_api_call

    def throttled(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation == "SendMessageBatch" and params.get("QueueUrl") == queue_url:
            error = {"Error": {"Code": "RequestThrottled", "Message": "throttled (test)"}}
            raise ClientError({**error, "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
        return real_call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", throttled)  # undone by monkeypatch after the test


def test_no_prediction_is_returned_without_its_audit_record(
    api: Client, platform: LocalPlatform, failing_audit_queue: None
) -> None:
    before = platform.client("dynamodb").scan(TableName=platform.stack.physical_id("AuditTable"), Select="COUNT")
    # When the audit queue refuses every send, whatever the retries
    response = api.post("/predict", data=load_event("predict_valid")["body"])
    batch = api.post("/predict/batch", data=load_event("predict_batch_valid")["body"])
    explanation = api.post("/explain", data=load_event("explain_valid")["body"])
    explanations = api.post("/explain/batch", data=load_event("explain_batch_valid")["body"])
    # Then no prediction (nor explanation, which answers with one) is returned: a retryable 503 naming the audit
    # trail
    for failed in (response, batch, explanation, explanations):
        assert failed.status_code == 503
        body = failed.get_json()
        assert body["error"]["code"] == "audit_unavailable"
        assert body["error"]["retryable"] is True
        assert "churn_probability" not in json.dumps(body)
    # And nothing was half-written
    after = platform.client("dynamodb").scan(TableName=platform.stack.physical_id("AuditTable"), Select="COUNT")
    assert after["Count"] == before["Count"]


def new_customer_body() -> dict[str, Any]:
    """predict_valid's features for a customer no test has scored: not yet exposed to the running experiment."""
    return {**json.loads(load_event("predict_valid")["body"]), "customer_id": f"AUDIT-{uuid.uuid4().hex[:12]}"}


def test_no_unit_counts_as_exposed_without_an_audited_prediction(
    api: Client, platform: LocalPlatform, pilot: dict[str, Any], failing_audit_queue: None
) -> None:
    # Given the pilot's running experiment, and new customers who were never scored
    experiment_id = pilot["results"]["experiment"]["experiment_id"]
    store = ExperimentStore(platform.stack.physical_id("ExperimentsTable"), platform.client("dynamodb"))
    single, batch = new_customer_body(), [new_customer_body() for _ in range(3)]
    # When they are scored while the audit queue refuses every send
    refused = [api.post("/predict", json=single), api.post("/predict/batch", json={"records": batch})]
    # Then nothing is served, and none of them counts as exposed to the experiment
    assert [r.status_code for r in refused] == [503, 503]
    assert {b["customer_id"]: store.exposure(experiment_id, b["customer_id"]) for b in [single, *batch]} == {
        b["customer_id"]: None for b in [single, *batch]
    }


def test_a_served_prediction_is_audited_and_its_exposure_logged(
    api: Client, operator: Client, platform: LocalPlatform, pilot: dict[str, Any]
) -> None:
    # Given the pilot's running experiment and a new customer
    experiment_id = pilot["results"]["experiment"]["experiment_id"]
    store = ExperimentStore(platform.stack.physical_id("ExperimentsTable"), platform.client("dynamodb"))
    body = new_customer_body()
    # When the customer is scored, the audit store working
    response = api.post("/predict", json=body)
    # Then the prediction is served with its variant, audited, and the exposure logged with that variant
    assert response.status_code == 200
    prediction = response.get_json()
    assert prediction["experiment_id"] == experiment_id
    records = audit_records(operator, entity=f"customer:{body['customer_id']}", event_type="prediction")
    assert [r["event"]["details"]["prediction_id"] for r in records] == [prediction["prediction_id"]]
    assert records[0]["event"]["details"]["variant"] == prediction["variant"]
    assert store.exposure(experiment_id, body["customer_id"]) == prediction["variant"]


def test_predictions_are_audited_again_once_the_store_recovers(api: Client, operator: Client) -> None:
    response = api.post("/predict", data=load_event("predict_valid")["body"])
    assert response.status_code == 200
    prediction_id = response.get_json()["prediction_id"]
    records = audit_records(operator, entity="customer:C00011", event_type="prediction")
    assert prediction_id in {r["event"]["details"]["prediction_id"] for r in records}


def test_verify_reports_a_modified_record_at_its_position(
    api: Client, operator: Client, platform: LocalPlatform
) -> None:
    # Given one audited prediction whose stored record is then changed (its output rewritten)
    dynamodb, table = platform.client("dynamodb"), platform.stack.physical_id("AuditTable")
    prediction = api.post("/predict", data=load_event("predict_valid")["body"]).get_json()
    (record,) = [
        r
        for r in audit_records(operator, entity="customer:C00011", event_type="prediction")
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
        result = operator.get("/audit/verify").get_json()
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
    assert operator.get("/audit/verify").get_json()["valid"] is True


def test_the_audit_events_answer_through_the_function(platform: LocalPlatform) -> None:
    # `sam local invoke AuditFunction -e events/audit_verify.json` (and audit_list.json)
    verified = platform.runtime.invoke("AuditFunction", load_event("audit_verify"))
    assert verified["statusCode"] == 200
    assert json.loads(verified["body"])["valid"] is True
    listed = json.loads(platform.runtime.invoke("AuditFunction", load_event("audit_list"))["body"])
    assert [r["event"]["event_type"] for r in listed["records"]] == ["model_deployed"] * len(listed["records"])
    assert listed["records"]
