"""The pilot's payloads: the contract between statemachines/pilot.asl.json and the pilot's steps.

Every Task receives `{"execution_id", "execution_name", "pilot": <state>}` and its result is stored under its
own key of the state (`$.dataset`, `$.training`, ...). The models below are that contract; the steps live in
their own modules (`mlops.pilot.training` for the heavy ones, `smoke_test`, `criteria`, `deployment`, ...).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlops.core.artifacts import ArtifactRef
from mlops.experiments.models import ExperimentResults, SampleSizePlan, VariantSpec
from mlops.feature_store.online import IngestionReport
from mlops.pilot.use_case import (
    CampaignAssumptions,
    CampaignAssumptionsInput,
    PilotTargetsInput,
    UseCase,
)
from mlops.registry.approval import ApprovalDecision, ApprovalPolicy

RUNS_PREFIX = "runs"
MODELS_PREFIX = "models"
PARITY_TOLERANCE = 1e-4


class PilotExperimentInput(BaseModel):
    """The A/B test the pilot starts once the model is deployed: the baseline rule against the model."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="churn_model_v1_vs_baseline", pattern=r"^[A-Za-z0-9_.\-]{1,80}$")
    treatment_share: float = Field(default=0.5, gt=0, lt=1, description="Share of traffic served by the model.")
    baseline: Literal["rule", "no_action"] | None = Field(
        default=None,
        description="What the control serves: the schema's baseline_rule, or no offers. Default: the rule when "
        "the schema declares one, else no_action.",
    )
    minimum_detectable_effect: float = Field(
        default=0.02, gt=0, lt=1, description="Absolute change in the retention rate the plan is sized for."
    )
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0.5, lt=1)


class PilotInput(BaseModel):
    """The input of a pilot execution (events/pilot.json)."""

    model_config = ConfigDict(extra="forbid")

    data_key: str = Field(min_length=1, description="Key of the CSV data set in the data bucket.")
    schema_key: str = Field(min_length=1, description="Key of its schema JSON in the data bucket.")
    targets: PilotTargetsInput = Field(default_factory=PilotTargetsInput)
    seed: int = 42
    test_size: float = Field(default=0.2, gt=0, lt=1)
    monitoring_size: float = Field(
        default=0.1,
        gt=0,
        lt=0.5,
        description="Share of the rows kept apart as the later window the monitoring judges: customers neither "
        "training nor the held-out evaluation saw.",
    )
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
    campaign_assumptions: CampaignAssumptionsInput = Field(default_factory=CampaignAssumptionsInput)


class EnvironmentReport(BaseModel):
    checked: list[str]
    production_version: str | None


class DatasetReport(BaseModel):
    data_key: str
    dataset_sha256: str
    rows: int
    train_rows: int
    test_rows: int
    monitoring_rows: int = 0
    positive_rate: float
    missing_values: dict[str, int]
    dropped_rows: int
    feature_source: str = Field(
        default="file", description="Where the features came from: the file, or the feature store as of when."
    )
    use_case: UseCase
    schema_ref: ArtifactRef
    train: ArtifactRef
    test: ArtifactRef
    monitoring_window: ArtifactRef


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
    validation_scores: ArtifactRef | None = Field(
        default=None,
        description="The out-of-fold scores of the training split: the score baseline the monitoring compares "
        "served scores with (never traffic it will judge).",
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
    net_value_per_customer_usd: float
    net_value_per_customer_ci_usd: tuple[float | None, float | None]
    projected_annual_impact_usd: float
    projected_annual_impact_ci_usd: tuple[float | None, float | None]
    unadjusted_projected_annual_impact_usd: float
    unadjusted_projected_annual_impact_ci_usd: tuple[float | None, float | None]


class PrimaryEffect(BaseModel):
    """The primary metric's effect (model - baseline) that the impact needs: significant at the plan's alpha
    at the planned size, with the always-valid p-value (running minimum over the looks) beside it."""

    metric: str
    estimate: Literal["cuped", "unadjusted"] = Field(
        description="CUPED's (the covariate removes variance the assignment did not cause) when it was used."
    )
    difference: float | None
    confidence_interval: tuple[float | None, float | None]
    p_value: float | None
    always_valid_p_value: float | None
    alpha: float
    units: int
    planned_units: int
    significant_at_planned_size: bool


class SimulatedTruth(BaseModel):
    """Simulated: the incremental net value computed from who would have churned and who accepted, which only the
    simulation knows. A check of the experiment's estimator, never the result."""

    incremental_net_value_per_customer_usd: float
    incremental_net_value_per_customer_ci_usd: tuple[float | None, float | None]
    projected_annual_impact_usd: float
    projected_annual_impact_ci_usd: tuple[float | None, float | None]
    projected_revenue_protected_usd: float
    projected_offer_cost_usd: float


class BusinessImpact(BaseModel):
    """The model's offers against the baseline's, as the experiment measured them, projected to the customer
    base for a year; the criterion reads `projected_annual_impact_usd` (= the measured one)."""

    assumptions: CampaignAssumptions
    projected_annual_impact_usd: float
    projected_annual_impact_ci_usd: tuple[float | None, float | None]
    measured_by_experiment: MeasuredImpact
    primary_effect: PrimaryEffect
    simulated_truth: SimulatedTruth
    method: str


class CampaignReport(BaseModel):
    experiment_id: str
    customers: int
    held_out_customers: int = Field(description="Real customers of the held-out split.")
    simulated_customers: int = Field(description="Generated customers (simulated) added to reach the plan's size.")
    generator: str = Field(description="How the simulated customers and their churn were drawn.")
    acceptance_seed: int
    variants: dict[str, VariantOutcome]
    results: ExperimentResults
    business_impact: BusinessImpact


class MonitoringSummary(BaseModel):
    """What the monitor found on the later window (real customers no earlier step used); the whole
    MonitoringReport is the `report` artifact, the window's prediction ids the `predictions` artifact."""

    model_version: str | None
    window_start: str
    window_end: str
    window_customers: int
    captured_rows: int
    drift_detected: bool | None = Field(description="None: too few captured rows, or no baseline, for a verdict.")
    drifted_features: list[str]
    max_feature_psi: float | None
    score_psi: float | None
    outcomes_logged: int
    outcomes_matched: int
    accuracy: float | None
    auc: float | None
    recall: float | None
    predictions: ArtifactRef
    report: ArtifactRef


class Criterion(BaseModel):
    value: float | bool | str | None
    target: float | bool | str | None
    comparison: str
    passed: bool
    detail: str | None = Field(default=None, description="Why there is no value: the step was not reached, or failed.")


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

    @property
    def use_case(self) -> UseCase:
        """The run's resolved targets, economics and baseline (PrepareData resolves them from the schema)."""
        if self.dataset is None:
            raise ValueError("pilot state has no 'dataset' section: the targets are resolved by PrepareData")
        return self.dataset.use_case


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
