"""Fault injection on the local stack: the real handlers, template and state machine, with AWS failing on purpose.

Faults are raised where botocore hands a call's result back to the platform (`BaseClient._make_api_call`), for
one operation on one table or bucket: the error the platform sees once botocore's own retries have given up.
So the retries counted here are the platform's (audit trail, feature reads, exposure writes), and `time.sleep`
and the backoff jitter are patched to record the delays instead of waiting for them. A failing pilot step is
injected through the local Lambda runtime, the way the function itself would fail.

Every scenario counts the records before and after (audit records by event type, experiment exposures, online
feature records) and checks the exact expected change: nothing lost, nothing duplicated. The module writes
`out/faults/summary.json` (faults injected, requests, records lost and duplicated per scenario) and prints the total.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError, EndpointConnectionError
from werkzeug.test import Client, TestResponse

from helpers import PROJECT_ROOT, emitted_metrics, load_event, pilot_args
from local_cloud.cli import start_pilot
from local_cloud.platform import LocalPlatform
from mlops.core.artifacts import ArtifactRef
from mlops.experiments.store import ExperimentStore
from mlops.registry.store import ModelRegistry, ModelStatus

pytestmark = pytest.mark.slow

SUMMARY_PATH = PROJECT_ROOT / "out" / "faults" / "summary.json"
SUMMARY: dict[str, Counter[str]] = {}
"""scenario -> faults_injected, requests, records_lost, records_duplicated (filled as the tests run)."""

_REAL_API_CALL = BaseClient._make_api_call
PREDICT_BODY = json.loads(load_event("predict_valid")["body"])
MODEL = "churn"


# ---------------------------------------------------------------------------------------------- fault injection
@dataclass
class Fault:
    """Fail `operation` of `service` whenever `where(params)` holds: the first `times` matching calls (the next one
    goes through and the fault is spent), or all of them until `active` is cleared (`times=None`). With
    `after_call`, the call is made and then its answer is lost."""

    service: str
    operation: str
    where: Callable[[dict[str, Any]], bool]
    error: Callable[[], Exception]
    times: int | None = None
    after_call: bool = False
    active: bool = True
    calls: int = 0  # matching calls while active, the ones let through included
    injected: int = 0


class FaultInjector:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.faults: list[Fault] = []
        self.elsewhere = 0  # faults injected by other means (e.g. a Lambda function failing)
        faults = self.faults

        def make_api_call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            service = client.meta.service_model.service_name
            for fault in faults:
                if fault.active and (fault.service, fault.operation) == (service, operation) and fault.where(params):
                    fault.calls += 1
                    if fault.times is None or fault.injected < fault.times:
                        fault.injected += 1
                        if fault.after_call:
                            _REAL_API_CALL(client, operation, params)
                        raise fault.error()
                    fault.active = False  # spent: this call goes through, and later ones are not counted
                    break
            return _REAL_API_CALL(client, operation, params)

        monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)

    def add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    @property
    def injected(self) -> int:
        return sum(f.injected for f in self.faults) + self.elsewhere


def client_error(code: str, status: int, operation: str) -> Callable[[], ClientError]:
    return lambda: ClientError(
        {"Error": {"Code": code, "Message": f"{code} (injected)"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


def on_table(table: str) -> Callable[[dict[str, Any]], bool]:
    return lambda params: params.get("TableName") == table or table in params.get("RequestItems", {})


# ---------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Records:
    """What must be neither lost nor duplicated: audit records by event type, exposures, online feature records."""

    audit: Counter[str]
    exposures: int
    features: int

    def plus(self, audit: dict[str, int] | None = None, exposures: int = 0) -> Records:
        return Records(self.audit + Counter(audit or {}), self.exposures + exposures, self.features)


def scan_items(platform: LocalPlatform, table: str, **request: Any) -> list[dict[str, Any]]:
    paginator = platform.client("dynamodb").get_paginator("scan")
    pages = paginator.paginate(TableName=platform.stack.physical_id(table), **request)
    return [item for page in pages for item in page["Items"]]


def scan(platform: LocalPlatform, table: str, sk_prefix: str, projection: str) -> list[dict[str, Any]]:
    return scan_items(
        platform,
        table,
        FilterExpression="begins_with(sk, :prefix)",
        ExpressionAttributeValues={":prefix": {"S": sk_prefix}},
        ProjectionExpression=projection,
    )


def count_records(platform: LocalPlatform) -> Records:
    audit = Counter(item["event_type"]["S"] for item in scan(platform, "AuditTable", "SEQ#", "event_type"))
    exposures = len(scan(platform, "ExperimentsTable", "EXPOSURE#", "pk"))
    features = sum(
        item["pk"]["S"].startswith("FG#") for item in scan(platform, "FeatureStoreTable", "", "pk, deleted_by")
    )
    return Records(audit, exposures, features)


def audit_records_of(platform: LocalPlatform, prediction_id: str) -> int:
    found = scan_items(
        platform,
        "AuditTable",
        FilterExpression="contains(#doc, :id) AND begins_with(sk, :seq)",
        ExpressionAttributeNames={"#doc": "document"},
        ExpressionAttributeValues={":id": {"S": prediction_id}, ":seq": {"S": "SEQ#"}},
        ProjectionExpression="sk",
    )
    return len(found)


# ---------------------------------------------------------------------------------------------- scenarios
@dataclass
class Scenario:
    """One test's faults, requests and record counts, folded into SUMMARY when it ends."""

    name: str
    platform: LocalPlatform
    faults: FaultInjector
    requests: int = 0
    lost: int = 0
    duplicated: int = 0
    delays: list[float] = field(default_factory=list)
    _api: Client | None = None

    def post(self, path: str, body: dict[str, Any]) -> TestResponse:
        self.requests += 1
        return self.api.post(path, json=body)

    def get(self, path: str) -> TestResponse:
        self.requests += 1
        return self.api.get(path)

    @property
    def api(self) -> Client:
        if self._api is None:
            self._api = Client(self.platform.api_app())
        return self._api

    def check_records(self, expected: Records) -> None:
        """The tables hold exactly the expected records: counts what was lost or duplicated, then asserts."""
        actual = count_records(self.platform)
        pairs = [(expected.audit[k], actual.audit[k]) for k in expected.audit.keys() | actual.audit.keys()]
        pairs += [(expected.exposures, actual.exposures), (expected.features, actual.features)]
        self.lost += sum(max(0, want - got) for want, got in pairs)
        self.duplicated += sum(max(0, got - want) for want, got in pairs)
        assert actual == expected

    def record_delays(self, monkeypatch: pytest.MonkeyPatch) -> list[float]:
        """Backoff sleeps are recorded, not slept; jitter takes its upper bound, so delays are exact."""
        monkeypatch.setattr(time, "sleep", self.delays.append)
        monkeypatch.setattr(random, "uniform", lambda low, high: high)
        return self.delays


@pytest.fixture(scope="module", autouse=True)
def fault_summary(request: pytest.FixtureRequest) -> Iterator[None]:
    SUMMARY.clear()
    yield
    scenarios = {name: dict(counts) for name, counts in SUMMARY.items()}
    total = sum((Counter(c) for c in scenarios.values()), Counter())
    keys = ("faults_injected", "requests", "records_lost", "records_duplicated")
    summary = {"scenarios": scenarios, "total": {k: total[k] for k in keys}}
    SUMMARY_PATH.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY_PATH.write_text(json.dumps(summary, indent=2) + "\n")
    line = "Fault injection: " + ", ".join(f"{total[k]} {k.replace('_', ' ')}" for k in keys)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n{line} ({SUMMARY_PATH.relative_to(PROJECT_ROOT)})")


@pytest.fixture
def scenario(
    request: pytest.FixtureRequest, platform: LocalPlatform, pilot: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Scenario]:
    current = Scenario(request.node.originalname.removeprefix("test_"), platform, FaultInjector(monkeypatch))
    yield current
    counts = SUMMARY.setdefault(current.name, Counter())
    counts.update(
        faults_injected=current.faults.injected,
        requests=current.requests,
        records_lost=current.lost,
        records_duplicated=current.duplicated,
    )


def serving_version(pilot: dict[str, Any]) -> str:
    return str(pilot["results"]["model_version"])


def registry_of(platform: LocalPlatform) -> ModelRegistry:
    return ModelRegistry(platform.stack.physical_id("ModelRegistryTable"), platform.client("dynamodb"))


def experiments_of(platform: LocalPlatform) -> ExperimentStore:
    return ExperimentStore(platform.stack.physical_id("ExperimentsTable"), platform.client("dynamodb"))


def new_customer(label: str) -> dict[str, Any]:
    """A customer never seen before (so its first prediction under an experiment logs an exposure)."""
    return {**PREDICT_BODY, "customer_id": f"FAULT-{label}-{random.randrange(10**9):09d}"}


def assert_unavailable(response: TestResponse, code: str, *, retryable: bool = True) -> None:
    body = response.get_json()
    assert response.status_code == 503, body
    assert body["error"]["code"] == code
    assert body["error"]["retryable"] is retryable
    assert (response.headers.get("Retry-After") == "1") is retryable
    assert "churn_probability" not in json.dumps(body)


# ------------------------------------------------------------------------------ 1. artifact store at cold start
S3_OUTAGES = {
    "endpoint_unreachable": lambda: EndpointConnectionError(endpoint_url="https://s3.us-east-1.amazonaws.com"),
    "slow_down_503": client_error("SlowDown", 503, "GetObject"),
    "internal_error_500": client_error("InternalError", 500, "GetObject"),
}


@pytest.mark.parametrize("outage", list(S3_OUTAGES))
def test_artifact_store_unavailable_at_cold_start(
    scenario: Scenario, platform: LocalPlatform, pilot: dict[str, Any], outage: str
) -> None:
    # Given a new scoring execution environment, and an artifact bucket that does not answer
    platform.runtime.recycle("ScoringFunction")
    bucket = platform.stack.physical_id("ArtifactBucket")
    fault = scenario.faults.add(Fault("s3", "GetObject", lambda params: params["Bucket"] == bucket, S3_OUTAGES[outage]))
    before = count_records(platform)

    # When a prediction is requested
    refused = scenario.post("/predict", PREDICT_BODY)

    # Then a retryable 503 with Retry-After, and nothing scored, audited or exposed
    assert_unavailable(refused, "model_unavailable")
    assert fault.injected == 1
    first_invocation = platform.runtime.invocations[-1]
    assert (first_invocation.function, first_invocation.cold_start) == ("ScoringFunction", True)
    scenario.check_records(before)

    # And when S3 recovers, the same container's next request loads the model and answers: no redeploy
    fault.active = False
    served = scenario.post("/predict", PREDICT_BODY)
    assert served.status_code == 200, served.get_json()
    prediction = served.get_json()
    assert prediction["model_version"] == serving_version(pilot)
    assert platform.runtime.invocations[-1].cold_start is False
    assert registry_of(platform).get_production(MODEL).version == serving_version(pilot)
    assert audit_records_of(platform, prediction["prediction_id"]) == 1
    scenario.check_records(before.plus({"prediction": 1}))


# ------------------------------------------------------------------------------ 2. the audit queue and its writer
def on_queue(url: str) -> Callable[[dict[str, Any]], bool]:
    return lambda params: params.get("QueueUrl") == url


AUDIT_QUEUE_OUTAGES = {
    "throttled": client_error("RequestThrottled", 400, "SendMessageBatch"),
    "unreachable": lambda: EndpointConnectionError(endpoint_url="https://sqs.us-east-1.amazonaws.com"),
}


@pytest.mark.parametrize("outage", list(AUDIT_QUEUE_OUTAGES))
def test_audit_queue_unavailable(
    scenario: Scenario, platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch, outage: str
) -> None:
    # Given a warm scoring container (the customer already exposed, if an experiment runs)
    assert scenario.post("/predict", PREDICT_BODY).status_code == 200
    delays = scenario.record_delays(monkeypatch)
    queue = on_queue(platform.stack.physical_id("AuditQueue"))
    failing = scenario.faults.add(Fault("sqs", "SendMessageBatch", queue, AUDIT_QUEUE_OUTAGES[outage]))
    before = count_records(platform)

    # When the audit queue refuses every send
    refused = scenario.post("/predict", PREDICT_BODY)

    # Then the send was tried 5 times with exponential backoff, then a clear retryable 503: nothing served
    assert_unavailable(refused, "audit_unavailable")
    assert failing.calls == failing.injected == 5
    assert delays == [0.04, 0.08, 0.16, 0.32]
    scenario.check_records(before)

    # And when the queue answers within the retries (two failed sends), the prediction is served with exactly
    # one audit record
    failing.active = False
    delays.clear()
    transient = scenario.faults.add(Fault("sqs", "SendMessageBatch", queue, failing.error, times=2))
    served = scenario.post("/predict", PREDICT_BODY)
    assert served.status_code == 200, served.get_json()
    assert (transient.calls, transient.injected) == (3, 2)
    assert delays == [0.04, 0.08]
    assert audit_records_of(platform, served.get_json()["prediction_id"]) == 1
    scenario.check_records(before.plus({"prediction": 1}))


def test_audit_table_throttled_at_the_writer(scenario: Scenario, platform: LocalPlatform) -> None:
    # Given the audit table throttling every append of the audit writer (the only function that writes it)
    audit_table = platform.stack.physical_id("AuditTable")
    throttled = scenario.faults.add(
        Fault(
            "dynamodb",
            "TransactWriteItems",
            lambda params: any(item["Put"]["TableName"] == audit_table for item in params["TransactItems"]),
            client_error("ProvisionedThroughputExceededException", 400, "TransactWriteItems"),
        )
    )
    before = count_records(platform)

    # When a prediction is requested
    served = scenario.post("/predict", PREDICT_BODY)

    # Then it is served (its record is durably queued), the writer gave the batch back for redelivery, and the
    # record is not in the table yet
    assert served.status_code == 200, served.get_json()
    assert throttled.injected >= 5
    scenario.check_records(before)

    # And when the table recovers and the messages' visibility timeout ends, the record is written once
    throttled.active = False
    (source,) = platform.event_sources
    source.end_visibility_timeouts()
    assert source.drain() >= 1
    assert audit_records_of(platform, served.get_json()["prediction_id"]) == 1
    scenario.check_records(before.plus({"prediction": 1}))


def test_queued_audit_record_delivered_twice(scenario: Scenario, platform: LocalPlatform) -> None:
    # Given the queue failing the deletion of a batch the writer appended, so that the batch is delivered again
    # once its visibility timeout ends (as after a writer timing out between appending and answering)
    queue = on_queue(platform.stack.physical_id("AuditQueue"))
    lost = scenario.faults.add(
        Fault(
            "sqs",
            "DeleteMessageBatch",
            queue,
            lambda: EndpointConnectionError(endpoint_url="https://sqs.us-east-1.amazonaws.com"),
            times=1,
        )
    )
    before = count_records(platform)
    served = scenario.post("/predict", PREDICT_BODY)
    assert served.status_code == 200, served.get_json()
    assert lost.injected == 1
    assert audit_records_of(platform, served.get_json()["prediction_id"]) == 1

    # When the same messages are delivered a second time
    (source,) = platform.event_sources
    source.end_visibility_timeouts()
    redelivered = source.drain()

    # Then the writer recognises each event as recorded: the prediction keeps exactly one audit record
    assert redelivered >= 1
    assert audit_records_of(platform, served.get_json()["prediction_id"]) == 1
    scenario.check_records(before.plus({"prediction": 1}))


def test_feature_store_read_throttled(
    scenario: Scenario, platform: LocalPlatform, pilot: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a customer whose features are only in the online store
    by_id = {"customer_id": PREDICT_BODY["customer_id"]}
    assert scenario.post("/predict", by_id).status_code == 200
    delays = scenario.record_delays(monkeypatch)
    feature_table = platform.stack.physical_id("FeatureStoreTable")
    throttled = scenario.faults.add(
        Fault(
            "dynamodb",
            "BatchGetItem",
            on_table(feature_table),
            client_error("ThrottlingException", 400, "BatchGetItem"),
        )
    )
    before = count_records(platform)

    # When the feature table throttles every read
    refused = scenario.post("/predict", by_id)

    # Then the read was retried with backoff, then a retryable 503 naming the feature store; nothing recorded
    assert_unavailable(refused, "feature_store_unavailable")
    assert throttled.calls == throttled.injected == 5
    assert delays == [0.04, 0.08, 0.16, 0.32]
    scenario.check_records(before)

    # And a throttle that clears within the retries goes unnoticed by the caller
    throttled.active = False
    delays.clear()
    transient = scenario.faults.add(
        Fault("dynamodb", "BatchGetItem", on_table(feature_table), throttled.error, times=3)
    )
    served = scenario.post("/predict", by_id)
    assert served.status_code == 200, served.get_json()
    assert "request" not in served.get_json()["feature_sources"].values()
    assert (transient.calls, delays) == (4, [0.04, 0.08, 0.16])
    assert audit_records_of(platform, served.get_json()["prediction_id"]) == 1
    scenario.check_records(before.plus({"prediction": 1}))


def test_experiment_exposure_writes_throttled(
    scenario: Scenario, platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the experiment the pilot started, splitting /predict traffic
    running = experiments_of(platform).running_for_model(MODEL)
    assert running is not None, "the pilot leaves its experiment running"
    experiment_id = running.experiment_id
    delays = scenario.record_delays(monkeypatch)
    experiments_table = platform.stack.physical_id("ExperimentsTable")
    throttled = scenario.faults.add(
        Fault(
            "dynamodb",
            "BatchWriteItem",
            on_table(experiments_table),
            client_error("ProvisionedThroughputExceededException", 400, "BatchWriteItem"),
        )
    )
    before = count_records(platform)
    customer = new_customer("exposure")

    # When the exposure of a new customer cannot be written, whatever the retries
    refused = scenario.post("/predict", customer)

    # Then it was retried with backoff, and the request refused (retryable) rather than served without exposure;
    # the exposure is written only after the prediction's audit record, which stays (the trail is append-only)
    assert_unavailable(refused, "experiment_unavailable")
    assert throttled.calls == throttled.injected == 5
    assert delays == [0.04, 0.08, 0.16, 0.32]
    scenario.check_records(before.plus({"prediction": 1}))

    # And when the client retries after a throttle that clears within the retries, the exposure is logged once
    throttled.active = False
    transient = scenario.faults.add(
        Fault("dynamodb", "BatchWriteItem", on_table(experiments_table), throttled.error, times=2)
    )
    served = scenario.post("/predict", customer).get_json()
    assert (served["experiment_id"], transient.calls) == (experiment_id, 3)
    assert experiments_of(platform).exposure(experiment_id, customer["customer_id"]) == served["variant"]
    scenario.check_records(before.plus({"prediction": 2}, exposures=1))

    # And an exposure write whose answer is lost (applied, then a 500) is not duplicated by its retry
    lost_answer = scenario.faults.add(
        Fault(
            "dynamodb",
            "BatchWriteItem",
            on_table(experiments_table),
            client_error("InternalServerError", 500, "BatchWriteItem"),
            times=1,
            after_call=True,
        )
    )
    other = new_customer("lost-answer")
    served_other = scenario.post("/predict", other).get_json()
    assert served_other["experiment_id"] == experiment_id
    assert (lost_answer.calls, lost_answer.injected) == (2, 1)
    assert experiments_of(platform).exposure(experiment_id, other["customer_id"]) == served_other["variant"]
    scenario.check_records(before.plus({"prediction": 3}, exposures=2))


# ------------------------------------------------------------------------------ 3. corrupted model artifact
def register_corrupted_copy(platform: LocalPlatform, serving: str) -> str:
    """A new approved version whose model.onnx in S3 does not hash to its registered SHA-256."""
    registry, s3 = registry_of(platform), platform.client("s3")
    bucket = platform.stack.physical_id("ArtifactBucket")
    original = registry.get(MODEL, serving)
    onnx = original.artifacts["onnx"]
    body = bytearray(s3.get_object(Bucket=bucket, Key=onnx.key)["Body"].read())
    body[len(body) // 2] ^= 0xFF  # one flipped byte, same size
    version = f"{serving}-corrupt"
    key = onnx.key.replace(serving, version) if serving in onnx.key else f"models/{MODEL}/{version}/model.onnx"
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    artifacts = {**original.artifacts, "onnx": ArtifactRef(key=key, sha256=onnx.sha256, size_bytes=onnx.size_bytes)}
    registry.register(
        original.model_copy(
            update={"version": version, "status": ModelStatus.APPROVED, "artifacts": artifacts, "status_history": []}
        )
    )
    return version


def test_corrupted_model_artifact(
    scenario: Scenario,
    platform: LocalPlatform,
    pilot: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    serving = serving_version(pilot)
    # Given a warm container serving the pilot's version, and a new version whose model.onnx was corrupted in S3
    assert scenario.post("/predict", PREDICT_BODY).get_json()["model_version"] == serving
    corrupt = register_corrupted_copy(platform, serving)
    scenario.faults.elsewhere += 1
    before = count_records(platform)
    # When that version is promoted (through the deploy function, audited) and the containers re-read the alias
    deploy = {"action": "deploy", "model_version": corrupt, "deployment_id": "fault-injection"}
    platform.runtime.invoke("DeployModelFunction", {**deploy, "expected_current_version": serving})
    assert registry_of(platform).get_production(MODEL).version == corrupt
    time.sleep(1.1)  # ModelRefreshSeconds is 1 locally
    capsys.readouterr()
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        warm = scenario.post("/predict", PREDICT_BODY)
    output = capsys.readouterr().out

    # Then the warm container refuses it and keeps serving the previous version, saying why
    assert warm.status_code == 200, warm.get_json()
    assert warm.get_json()["model_version"] == serving
    (refusal,) = [r for r in caplog.records if r.getMessage() == "Refusing to load model version"]
    assert (refusal.model_version, refusal.still_serving) == (corrupt, serving)  # type: ignore[attr-defined]
    assert "SHA-256 mismatch" in refusal.error  # type: ignore[attr-defined]
    assert {m["name"]: m["value"] for m in emitted_metrics(output)}.get("ModelIntegrityFailures") == 1
    assert scenario.get("/health").get_json()["model_version"] == serving

    # And a cold container, with only the corrupted version to load, answers 503 artifact_integrity (not 500)
    platform.runtime.recycle("ScoringFunction")
    cold = scenario.post("/predict", PREDICT_BODY)
    assert_unavailable(cold, "artifact_integrity", retryable=False)
    assert scenario.get("/health").get_json() == {"status": "no_model", "model_name": MODEL, "model_version": None}
    scenario.check_records(before.plus({"model_deployed": 1, "prediction": 1}))

    # Finally production is rolled back (audited), and the cold container serves the previous version again
    rollback = {"action": "rollback", "model_version": serving, "deployment_id": "fault-injection"}
    platform.runtime.invoke("DeployModelFunction", {**rollback, "reason": "ArtifactIntegrityError"})
    time.sleep(1.1)
    assert scenario.post("/predict", PREDICT_BODY).get_json()["model_version"] == serving
    scenario.check_records(before.plus({"model_deployed": 1, "model_rolled_back": 1, "prediction": 2}))


# ------------------------------------------------------------------------------ 4. a pilot step failing mid-deployment
class InjectedSmokeTestFault(Exception):
    """The smoke test function failing (as an unhandled error, e.g. a crashed or timed-out container)."""


def test_step_failing_after_deployment(
    scenario: Scenario,
    platform: LocalPlatform,
    pilot: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    serving = serving_version(pilot)
    assert registry_of(platform).get_production(MODEL).version == serving
    before = count_records(platform)
    # Given the smoke test function failing in the Lambda runtime
    real_invoke = platform.runtime.invoke

    def invoke(function: str, event: Any) -> Any:
        if platform.stack.function(function).logical_id == "SmokeTestFunction":
            scenario.faults.elsewhere += 1
            raise InjectedSmokeTestFault("injected: the smoke test container crashed")
        return real_invoke(function, event)

    monkeypatch.setattr(platform.runtime, "invoke", invoke)

    # When a second pilot runs: it trains, registers, approves and deploys a new version, then the smoke test fails
    arn = start_pilot(platform, pilot_args(tmp_path, smoke_test_calls=20))
    result = platform.wait_for_execution(arn, timeout_s=600)
    monkeypatch.setattr(platform.runtime, "invoke", real_invoke)

    # Then the execution failed through its Catch path: SmokeTest -> RollBack -> RecordFailure
    assert result.status == "FAILED"
    assert scenario.faults.elsewhere == 1
    names = [s.name for s in result.states]
    path = ["DeployModel", "SmokeTest", "RollBack", "RecordFailure"]
    assert [names.index(name) for name in path] == sorted(names.index(name) for name in path)
    smoke = next(s for s in result.states if s.name == "SmokeTest")
    assert (smoke.status, smoke.error) == ("CAUGHT", "InjectedSmokeTestFault")
    assert next(s for s in result.states if s.name == "RollBack").status == "SUCCEEDED"
    run = platform.client("dynamodb").get_item(
        TableName=platform.stack.physical_id("ModelRegistryTable"),
        Key={"pk": {"S": f"MODEL#{MODEL}"}, "sk": {"S": f"RUN#{arn.rsplit(':', 1)[-1]}"}},
    )["Item"]
    assert run["error"]["S"] == "InjectedSmokeTestFault"

    # And the registry's production pointer is back on the previous version, the new one retired
    new_version = next(v for v in registry_of(platform).list_versions(MODEL) if v.execution_arn == arn)
    assert registry_of(platform).get_production(MODEL).version == serving
    assert new_version.status is ModelStatus.RETIRED

    # And the failure and both state changes are in the audit trail
    assert [r["event_type"]["S"] for r in audit_items_of(platform, f"model:{MODEL}/{serving}")][-1:] == [
        "model_rolled_back"
    ]
    rolled_back = json.loads(audit_items_of(platform, f"model:{MODEL}/{serving}")[-1]["document"]["S"])
    assert rolled_back["event"]["details"]["reason"] == "InjectedSmokeTestFault"
    assert rolled_back["event"]["details"]["previous_version"] == new_version.version
    changes = {"model_registered": 1, "model_approved": 1, "model_deployed": 1, "model_rolled_back": 1}
    scenario.check_records(before.plus(changes))

    # And the old model keeps serving
    time.sleep(1.1)  # ModelRefreshSeconds is 1 locally
    assert scenario.post("/predict", PREDICT_BODY).get_json()["model_version"] == serving
    assert scenario.get("/health").get_json()["model_version"] == serving
    scenario.check_records(before.plus({**changes, "prediction": 1}))


def audit_items_of(platform: LocalPlatform, entity: str) -> list[dict[str, Any]]:
    """The entity's audit records, oldest first."""
    items = scan_items(
        platform,
        "AuditTable",
        FilterExpression="entity = :entity AND begins_with(sk, :seq)",
        ExpressionAttributeValues={":entity": {"S": entity}, ":seq": {"S": "SEQ#"}},
    )
    return sorted(items, key=lambda item: (item["occurred_at"]["S"], int(item["sequence"]["N"])))
