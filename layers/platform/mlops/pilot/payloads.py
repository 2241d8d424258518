"""The pilot's payloads and the logic of its light steps (no pandas or scikit-learn here).

Every Task of statemachines/pilot.asl.json receives `{"execution_id", "execution_name", "pilot": <state>}`
and its result is stored under its own key of the state (`$.dataset`, `$.training`, ...). The models below
are that contract; the heavy steps live in `mlops.pilot.training`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlops.api.contracts import SYNTHETIC_TRAFFIC_HEADER
from mlops.core.artifacts import ArtifactRef, ArtifactStore
from mlops.core.errors import SmokeTestError
from mlops.experiments.models import ExperimentResults, SampleSizePlan, VariantSpec
from mlops.feature_store.online import IngestionReport
from mlops.registry.approval import ApprovalDecision, ApprovalPolicy
from mlops.registry.store import ModelRegistry

RUNS_PREFIX = "runs"
MODELS_PREFIX = "models"
PARITY_TOLERANCE = 1e-4


# ---------------------------------------------------------------------------------------------- payloads
class PilotTargets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accuracy: float = Field(default=0.87, ge=0, le=1)
    auc_roc: float = Field(default=0.87, ge=0, le=1)
    latency_p95_ms: float = Field(default=80.0, gt=0)
    projected_annual_impact_usd: float = Field(
        default=500_000.0, description="Least projected yearly net value of the model's offers over the baseline's."
    )


class PilotExperimentInput(BaseModel):
    """The A/B test the pilot starts once the model is deployed: the baseline rule against the model."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="churn_model_v1_vs_baseline", pattern=r"^[A-Za-z0-9_.\-]{1,80}$")
    treatment_share: float = Field(default=0.5, gt=0, lt=1, description="Share of traffic served by the model.")
    baseline: Literal["service_calls_rule", "no_action"] = Field(
        default="service_calls_rule",
        description="What the control serves: the rule (> 3 customer service calls, needs that column) or nothing.",
    )
    minimum_detectable_effect: float = Field(
        default=0.02, gt=0, lt=1, description="Absolute change in the retention rate the plan is sized for."
    )
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0.5, lt=1)


class CampaignAssumptions(BaseModel):
    """The business assumptions of the simulated retention campaign and of its projected impact."""

    model_config = ConfigDict(extra="forbid")

    customer_base: int = Field(default=100_000, gt=0, description="Customers the impact is projected to.")
    annual_value_per_customer_usd: float = Field(
        default=700.0,
        gt=0,
        description="Revenue a retained customer brings in a year: about 12 x the data set's mean monthly "
        "charges ($59.39).",
    )
    offer_cost_usd: float = Field(
        default=50.0, ge=0, description="Cost of one retention offer (incentive and contact), paid for every offer."
    )
    offer_acceptance_rate: float = Field(
        default=0.30, ge=0, le=1, description="Share of customers about to churn whom an offer keeps for a year."
    )


class PilotInput(BaseModel):
    """The input of a pilot execution (events/pilot.json)."""

    model_config = ConfigDict(extra="forbid")

    data_key: str = Field(min_length=1, description="Key of the CSV data set in the data bucket.")
    schema_key: str = Field(min_length=1, description="Key of its schema JSON in the data bucket.")
    targets: PilotTargets = Field(default_factory=PilotTargets)
    seed: int = 42
    test_size: float = Field(default=0.2, gt=0, lt=1)
    cv_folds: int = Field(default=5, ge=2, le=10)
    features_as_of: dt.datetime | None = Field(
        default=None,
        description="When the data file's feature values were observed (its rows' event time, unless it has an "
        "event-time column); the training set is read from the feature store as of then. Default: the start "
        "of the execution.",
    )
    smoke_test_calls: int = Field(default=200, ge=1, le=5000)
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    experiment_design: PilotExperimentInput = Field(default_factory=PilotExperimentInput)
    campaign_assumptions: CampaignAssumptions = Field(default_factory=CampaignAssumptions)


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
    feature_source: str = Field(
        default="file", description="Where the features came from: the file, or the feature store as of when."
    )
    schema_ref: ArtifactRef
    train: ArtifactRef
    test: ArtifactRef


class TrainingReport(BaseModel):
    selected_algorithm: str
    cv_auc: dict[str, dict[str, float]]
    training_seconds: float
    model: ArtifactRef
    feature_spec: ArtifactRef
    # Defaults keep executions started before thresholds were chosen (e.g. waiting for approval) valid.
    decision_threshold: float = Field(
        default=0.5, description="Chosen on validation predictions for the campaign's net value."
    )
    threshold_choice: ArtifactRef | None = Field(
        default=None, description="The ThresholdChoice (mlops.training.threshold), with its curve."
    )


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
    latencies_ms: list[float] = Field(default_factory=list, description="Every call's latency, in call order.")


class ExperimentStartReport(BaseModel):
    experiment_id: str
    name: str
    model_name: str
    variants: list[VariantSpec]
    plan: SampleSizePlan
    stopped_previous: str | None = Field(description="The experiment this deployment superseded, if any.")


class VariantOutcome(BaseModel):
    """What one variant's offers did in the simulated campaign. `saved` and `revenue_protected_usd` use the
    labels (who was about to churn), which only a simulation knows: they are the ground truth the A/B
    estimate is checked against, not something the experiment measures."""

    customers: int
    offers: int
    would_churn: int
    saved: int
    churned: int
    revenue_protected_usd: float
    offer_cost_usd: float
    net_value_usd: float
    net_value_per_customer_usd: float


class MeasuredImpact(BaseModel):
    """What the A/B test itself measures, without knowing who was about to churn: the difference in
    `customer_value_usd` (annual value if retained - offer cost if offered) per customer, projected."""

    estimate: Literal["cuped", "unadjusted"]
    projected_annual_impact_usd: float
    projected_annual_impact_ci_usd: tuple[float | None, float | None]
    unadjusted_projected_annual_impact_usd: float
    unadjusted_projected_annual_impact_ci_usd: tuple[float | None, float | None]


class BusinessImpact(BaseModel):
    """The model's offers against the baseline's: revenue protected minus offer cost per customer, model arm -
    baseline arm, projected to the customer base for a year (with Welch's 95% interval over the customers)."""

    assumptions: CampaignAssumptions
    incremental_net_value_per_customer_usd: float
    incremental_net_value_per_customer_ci_usd: tuple[float | None, float | None]
    projected_annual_impact_usd: float
    projected_annual_impact_ci_usd: tuple[float | None, float | None]
    projected_revenue_protected_usd: float
    projected_offer_cost_usd: float
    measured_by_experiment: MeasuredImpact
    method: str


class CampaignReport(BaseModel):
    experiment_id: str
    customers: int
    acceptance_seed: int
    variants: dict[str, VariantOutcome]
    results: ExperimentResults
    business_impact: BusinessImpact


class MonitoringSummary(BaseModel):
    """What the monitor found on the pilot's own traffic; the whole MonitoringReport is the `report` artifact."""

    model_version: str | None
    captured_rows: int
    drift_detected: bool | None = Field(description="None: too few captured rows, or no baseline, for a verdict.")
    drifted_features: list[str]
    max_feature_psi: float | None
    score_psi: float | None
    outcomes_logged: int
    outcomes_matched: int
    accuracy: float | None
    recall: float | None
    report: ArtifactRef


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
    features: IngestionReport | None = None
    dataset: DatasetReport | None = None
    training: TrainingReport | None = None
    evaluation: EvaluationReport | None = None
    registration: RegistrationReport | None = None
    approval_decision: ApprovalDecision | None = None
    deployment: DeploymentReport | None = None
    smoke_test: SmokeTestReport | None = None
    criteria: CriteriaReport | None = None
    experiment: ExperimentStartReport | None = None
    campaign: CampaignReport | None = None
    experiment_error: dict[str, Any] | None = None
    monitoring: MonitoringSummary | None = None
    monitoring_error: dict[str, Any] | None = None
    report: ArtifactRef | None = Field(default=None, description="report.html, once PublishReport wrote it.")
    report_error: dict[str, Any] | None = None


class CriteriaRequest(BaseModel):
    """Input of the criteria step: "model" after the smoke test (a failure rolls back), "experiment" at the end
    (every criterion; a failure there leaves the validated model serving)."""

    model_config = ConfigDict(extra="ignore")

    pilot: PilotState
    stage: Literal["model", "experiment"] = "model"


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    execution_id: str
    execution_name: str
    execution_start_time: dt.datetime | None = None
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


def api_gateway_event(
    method: str, path: str, body: dict[str, Any] | None, request_id: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A REST API (v1) proxy event, as API Gateway sends it to the scoring function."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
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


def lambda_api_invoker(lambda_client: Any, function_name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Call an API function directly with an API Gateway event (Lambda Invoke), returning its proxy response."""

    def invoke(api_event: dict[str, Any]) -> dict[str, Any]:
        response = lambda_client.invoke(FunctionName=function_name, Payload=json.dumps(api_event))
        return json.loads(response["Payload"].read())

    return invoke


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
            headers={SYNTHETIC_TRAFFIC_HEADER: "smoke-test"},
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
        latencies_ms=[round(value, 3) for value in latencies],
    )


def evaluate_success_criteria(state: PilotState, stage: Literal["model", "experiment"] = "model") -> CriteriaReport:
    """The model's criteria; at the "experiment" stage also the A/B test's (ready, projected impact)."""
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
    if stage == "experiment":
        criteria |= _experiment_criteria(state)
    failed = [name for name, c in criteria.items() if not c.passed]
    return CriteriaReport(all_passed=not failed, criteria=criteria, failed=failed)


def _experiment_criteria(state: PilotState) -> dict[str, Criterion]:
    """Ready: the experiment runs on the model's traffic, every variant got units with a sane split, and its
    results were computed. The impact is the campaign's measured incremental net value, projected."""
    campaign = state.campaign
    ready = (
        state.experiment_error is None
        and state.experiment is not None
        and campaign is not None
        and campaign.experiment_id == state.experiment.experiment_id
        and all(n > 0 for n in campaign.results.sample_ratio.observed.values())
        and not campaign.results.sample_ratio.mismatch
    )
    impact = campaign.business_impact.projected_annual_impact_usd if campaign else None
    target = state.targets.projected_annual_impact_usd
    monitoring = state.monitoring
    accuracy = monitoring.accuracy if monitoring else None
    no_drift = monitoring is not None and monitoring.drift_detected is False
    return {
        # The monitoring path end to end: the accuracy measured from logged outcomes joined with the served
        # predictions meets the accuracy target the held-out evaluation had to meet; and the held-out traffic,
        # drawn like the training data, raises no drift.
        "monitored_accuracy": _at_least(accuracy, state.targets.accuracy),
        "no_drift_on_held_out_traffic": Criterion(value=no_drift, target=True, comparison="==", passed=no_drift),
        "ab_testing_ready": Criterion(value=ready, target=True, comparison="==", passed=ready),
        "projected_annual_impact_usd": Criterion(
            value=impact, target=target, comparison=">=", passed=impact is not None and impact >= target
        ),
    }


def _at_least(value: float | None, target: float) -> Criterion:
    if value is None:  # not measured: fails
        return Criterion(value=None, target=target, comparison=">=", passed=False)
    return Criterion(value=round(value, 6), target=target, comparison=">=", passed=value >= target)
