"""The pilot's payloads and the logic of its light steps (no pandas or scikit-learn here).

Every Task of statemachines/pilot.asl.json receives `{"execution_id", "execution_name", "pilot": <state>}`
and its result is stored under its own key of the state (`$.dataset`, `$.training`, ...). The models below
are that contract; the heavy steps live in `mlops.pilot_training`.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlops.artifacts import ArtifactRef, ArtifactStore
from mlops.errors import SmokeTestError
from mlops.registry import ModelRegistry

RUNS_PREFIX = "runs"
MODELS_PREFIX = "models"
PARITY_TOLERANCE = 1e-4


# ---------------------------------------------------------------------------------------------- payloads
class PilotTargets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accuracy: float = Field(default=0.87, ge=0, le=1)
    auc_roc: float = Field(default=0.87, ge=0, le=1)
    latency_p95_ms: float = Field(default=80.0, gt=0)


class PilotInput(BaseModel):
    """The input of a pilot execution (events/pilot.json)."""

    model_config = ConfigDict(extra="forbid")

    data_key: str = Field(min_length=1, description="Key of the CSV data set in the data bucket.")
    schema_key: str = Field(min_length=1, description="Key of its schema JSON in the data bucket.")
    targets: PilotTargets = Field(default_factory=PilotTargets)
    seed: int = 42
    test_size: float = Field(default=0.2, gt=0, lt=1)
    cv_folds: int = Field(default=5, ge=2, le=10)
    smoke_test_calls: int = Field(default=200, ge=1, le=5000)


class EnvironmentReport(BaseModel):
    checked: list[str]
    production_version: str | None


class DatasetReport(BaseModel):
    data_key: str
    dataset_sha256: str
    rows: int
    train_rows: int
    test_rows: int
    positive_rate: float
    missing_values: dict[str, int]
    dropped_rows: int
    schema_ref: ArtifactRef
    train: ArtifactRef
    test: ArtifactRef


class TrainingReport(BaseModel):
    selected_algorithm: str
    cv_auc: dict[str, dict[str, float]]
    training_seconds: float
    model: ArtifactRef
    feature_spec: ArtifactRef


class EvaluationReport(BaseModel):
    metrics: dict[str, Any]
    meets_targets: bool
    failed_targets: list[str]


class RegistrationReport(BaseModel):
    model_version: str
    artifacts: dict[str, ArtifactRef]
    parity_max_abs_diff: float
    smoke_test_rows: ArtifactRef


class DeploymentReport(BaseModel):
    action: str
    deployment_id: str
    model_version: str | None
    previous_version: str | None
    changed: bool


class LatencySummary(BaseModel):
    p50: float
    p95: float
    p99: float
    mean: float
    max: float


class SmokeTestReport(BaseModel):
    calls: int
    errors: int
    served_version: str
    max_reference_difference: float
    latency_ms: LatencySummary


class Criterion(BaseModel):
    value: float | bool | str | None
    target: float | bool | str | None
    comparison: str
    passed: bool


class CriteriaReport(BaseModel):
    all_passed: bool
    criteria: dict[str, Criterion]
    failed: list[str]


class PilotState(PilotInput):
    """The state as it flows through the state machine: the input plus each finished step's report."""

    model_config = ConfigDict(extra="allow")

    environment: EnvironmentReport | None = None
    dataset: DatasetReport | None = None
    training: TrainingReport | None = None
    evaluation: EvaluationReport | None = None
    registration: RegistrationReport | None = None
    deployment: DeploymentReport | None = None
    smoke_test: SmokeTestReport | None = None
    criteria: CriteriaReport | None = None


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    execution_id: str
    execution_name: str
    pilot: PilotState

    def require[T](self, section: T | None, name: str) -> T:
        if section is None:
            raise ValueError(f"pilot state has no '{name}' section: the state machine skipped a step")
        return section


class DeployRequest(BaseModel):
    """Input of the deploy function: deploy a version, or roll production back to one (None: no model)."""

    model_config = ConfigDict(extra="ignore")

    action: str = Field(pattern="^(deploy|rollback)$")
    model_version: str | None
    deployment_id: str
    expected_current_version: str | None = None
    reason: str | None = None


def run_prefix(execution_name: str) -> str:
    return f"{RUNS_PREFIX}/{execution_name}"


# ---------------------------------------------------------------------------------------------- steps
def deploy_or_roll_back(request: DeployRequest, registry: ModelRegistry, model_name: str) -> DeploymentReport:
    current = registry.get_production(model_name)
    current_version = current.version if current else None
    if request.action == "deploy":
        if request.model_version is None:
            raise ValueError("a deployment needs a model_version")
        alias = registry.deploy(
            model_name,
            request.model_version,
            deployment_id=request.deployment_id,
            expected_current=request.expected_current_version,
            changed_by=f"pilot:{request.deployment_id}",
            reason="passed the pilot's quality gate",
        )
        return DeploymentReport(
            action="deploy",
            deployment_id=alias.deployment_id,
            model_version=alias.version,
            previous_version=alias.previous_version,
            changed=True,
        )

    # Roll back to the version that served before this run started.
    reason = f"rollback after {request.reason or 'a failed step'}"
    by = f"pilot:{request.deployment_id}"
    if current_version == request.model_version:
        changed = False
    elif request.model_version is None:
        assert current_version is not None
        registry.undeploy(model_name, expected_current=current_version, changed_by=by, reason=reason)
        changed = True
    else:
        registry.deploy(
            model_name,
            request.model_version,
            deployment_id=request.deployment_id,
            expected_current=current_version,
            changed_by=by,
            reason=reason,
        )
        changed = True
    return DeploymentReport(
        action="rollback",
        deployment_id=request.deployment_id,
        model_version=request.model_version,
        previous_version=current_version,
        changed=changed,
    )


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarise_latency(latencies_ms: list[float]) -> LatencySummary:
    ordered = sorted(latencies_ms)
    return LatencySummary(
        p50=round(percentile(ordered, 50), 3),
        p95=round(percentile(ordered, 95), 3),
        p99=round(percentile(ordered, 99), 3),
        mean=round(statistics.fmean(ordered), 3),
        max=round(ordered[-1], 3),
    )


def api_gateway_event(method: str, path: str, body: dict[str, Any] | None, request_id: str) -> dict[str, Any]:
    """A REST API (v1) proxy event, as API Gateway sends it to the scoring function."""
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/v1{path}",
            "stage": "v1",
            "requestId": request_id,
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def run_smoke_test(
    request: StepRequest, store: ArtifactStore, invoke_scoring: Any, clock: Any = time.perf_counter
) -> SmokeTestReport:
    """Score reference rows through the deployed scoring function; check version, values and latency.

    `invoke_scoring(event) -> response dict` calls the scoring function (Lambda Invoke on AWS).
    """
    registration = request.require(request.pilot.registration, "registration")
    rows = json.loads(store.get_verified(registration.smoke_test_rows))
    latencies: list[float] = []
    errors = 0
    max_difference = 0.0
    served = set()
    for call in range(request.pilot.smoke_test_calls):
        row = rows[call % len(rows)]
        event = api_gateway_event(
            "POST",
            "/predict",
            {"customer_id": row["customer_id"], "features": row["features"]},
            request_id=f"{request.execution_name}-smoke-{call}",
        )
        started = clock()
        response = invoke_scoring(event)
        latencies.append((clock() - started) * 1000)
        if response.get("statusCode") != 200:
            errors += 1
            continue
        body = json.loads(response["body"])
        served.add(body["model_version"])
        max_difference = max(max_difference, abs(body["churn_probability"] - row["churn_probability"]))
    if served != {registration.model_version}:
        raise SmokeTestError(
            field="model_version",
            message=f"endpoint served {sorted(served)}, expected {registration.model_version}",
        )
    return SmokeTestReport(
        calls=len(latencies),
        errors=errors,
        served_version=registration.model_version,
        max_reference_difference=max_difference,
        latency_ms=summarise_latency(latencies),
    )


def evaluate_success_criteria(state: PilotState) -> CriteriaReport:
    if state.evaluation is None or state.smoke_test is None or state.registration is None:
        raise ValueError("success criteria need the evaluation, registration and smoke_test sections")
    metrics = state.evaluation.metrics
    targets = state.targets
    smoke = state.smoke_test
    criteria = {
        "accuracy": _at_least(metrics["accuracy"], targets.accuracy),
        "auc_roc": _at_least(metrics["roc_auc"], targets.auc_roc),
        "latency_p95_ms": Criterion(
            value=smoke.latency_ms.p95,
            target=targets.latency_p95_ms,
            comparison="<=",
            passed=smoke.latency_ms.p95 <= targets.latency_p95_ms,
        ),
        "smoke_test_errors": Criterion(value=smoke.errors, target=0, comparison="==", passed=smoke.errors == 0),
        "onnx_parity": Criterion(
            value=state.registration.parity_max_abs_diff,
            target=PARITY_TOLERANCE,
            comparison="<=",
            passed=state.registration.parity_max_abs_diff <= PARITY_TOLERANCE,
        ),
        "served_matches_registered": Criterion(
            value=smoke.max_reference_difference,
            target=1e-6,
            comparison="<=",
            passed=smoke.max_reference_difference <= 1e-6,
        ),
        "model_deployed": Criterion(
            value=smoke.served_version,
            target=state.registration.model_version,
            comparison="==",
            passed=smoke.served_version == state.registration.model_version,
        ),
    }
    failed = [name for name, c in criteria.items() if not c.passed]
    return CriteriaReport(all_passed=not failed, criteria=criteria, failed=failed)


def _at_least(value: float, target: float) -> Criterion:
    return Criterion(value=round(value, 6), target=target, comparison=">=", passed=value >= target)
