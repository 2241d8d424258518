"""Request, stored and response models of experiments (pydantic only: imported by the scoring path too)."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mlops.api.contracts import EntityId
from mlops.data.schema import DecisionRule

MetricName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
VariantName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
ExperimentName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,80}$")]
WEIGHT_TOLERANCE = 1e-6
MAX_VARIANTS = 10


class MetricKind(StrEnum):
    CONVERSION = "conversion"  # 0/1 per unit: two-proportion z-test, Beta-Binomial
    CONTINUOUS = "continuous"  # any number per unit: Welch's t-test


class Direction(StrEnum):
    INCREASE = "increase"  # higher is better
    DECREASE = "decrease"  # lower is better


class DecisionPolicy(StrEnum):
    """What POST /predict serves to a unit of a variant, when the experiment splits a model's traffic."""

    RULE = "rule"  # a transparent baseline: the variant's `rule` on one model input, e.g. service calls > 3
    NO_ACTION = "no_action"  # business as usual: nobody is flagged
    MODEL = "model"  # the deployed model's decision (probability >= threshold)


class ExperimentStatus(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class MetricSpec(BaseModel):
    """A metric measured per unit. Units exposed without an outcome count as 0 (no conversion, no value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: MetricName
    kind: MetricKind
    direction: Direction = Direction.INCREASE
    minimum_detectable_effect: float | None = Field(
        default=None,
        gt=0,
        description="Absolute change worth detecting; scales the sequential test (default: 0.1 standard deviations).",
    )


class VariantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: VariantName
    weight: float = Field(gt=0, le=1, description="Share of traffic; the weights of an experiment sum to 1.")
    serves: DecisionPolicy | None = Field(
        default=None, description="What /predict serves in this variant (required when model_name is set)."
    )
    rule: DecisionRule | None = Field(
        default=None, description="The decision rule of a variant that serves `rule` (a model input's column)."
    )

    @model_validator(mode="after")
    def _rule_when_serving_a_rule(self) -> Self:
        if (self.serves is DecisionPolicy.RULE) != (self.rule is not None):
            raise ValueError("a variant has a rule exactly when it serves 'rule'")
        return self


class ExperimentCreate(BaseModel):
    """POST /experiments."""

    model_config = ConfigDict(extra="forbid")

    experiment_id: EntityId | None = Field(
        default=None, description="Idempotency: a retried create with the same id is refused with 409."
    )
    name: ExperimentName
    description: str | None = Field(default=None, max_length=1000)
    model_name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,40}$")] | None = Field(
        default=None,
        description="The model whose /predict traffic the experiment splits (one running experiment per model).",
    )
    variants: list[VariantSpec] = Field(min_length=2, max_length=MAX_VARIANTS)
    control: VariantName | None = Field(
        default=None, description="The variant others are compared to (default: first)."
    )
    primary_metric: MetricSpec
    guardrail_metrics: list[MetricSpec] = Field(default_factory=list, max_length=10)
    minimum_detectable_effect: float = Field(gt=0, description="Absolute change of the primary metric to detect.")
    baseline_value: float = Field(
        description="Expected control value of the primary metric (a rate for conversion), for the sample size."
    )
    standard_deviation: float | None = Field(
        default=None,
        gt=0,
        validate_default=True,
        description="Per-unit standard deviation of a continuous primary metric (for the sample size).",
    )
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0.5, lt=1)
    cuped_covariate: MetricName | None = Field(
        default=None, description="A pre-experiment value per unit, posted as an outcome with this metric name."
    )
    salt: str | None = Field(
        default=None,
        min_length=8,
        max_length=200,
        description="Assignment salt (default: random, so experiments are independent); set it only to reproduce "
        "an assignment, e.g. a seeded simulation.",
    )

    # Cross-field rules are field validators (reading the fields declared before them), so that an invalid
    # request is refused naming the offending field rather than the whole body.
    @field_validator("variants")
    @classmethod
    def _weights_sum_to_one_names_unique(cls, variants: list[VariantSpec], info: ValidationInfo) -> list[VariantSpec]:
        total = math.fsum(v.weight for v in variants)
        if abs(total - 1) > WEIGHT_TOLERANCE:
            raise ValueError(f"variant weights must sum to 1, got {total:g}")
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        if info.data.get("model_name") is not None and any(v.serves is None for v in variants):
            raise ValueError("every variant must say what it serves when model_name is set")
        return variants

    @field_validator("control")
    @classmethod
    def _control_is_a_variant(cls, control: str | None, info: ValidationInfo) -> str | None:
        names = [v.name for v in info.data.get("variants", [])]
        if control is not None and names and control not in names:
            raise ValueError(f"{control!r} is not one of the variants {names}")
        return control

    @field_validator("guardrail_metrics")
    @classmethod
    def _unique_metrics(cls, metrics: list[MetricSpec], info: ValidationInfo) -> list[MetricSpec]:
        names = [m.name for m in metrics]
        primary = info.data.get("primary_metric")
        if primary is not None:
            names.append(primary.name)
        if len(set(names)) != len(names):
            raise ValueError(f"metric names must be unique (the primary metric included), got {names}")
        return metrics

    @field_validator("baseline_value")
    @classmethod
    def _baseline_in_range(cls, baseline: float, info: ValidationInfo) -> float:
        primary, effect = info.data.get("primary_metric"), info.data.get("minimum_detectable_effect")
        conversion = primary is not None and primary.kind is MetricKind.CONVERSION and effect is not None
        if conversion and not (0 < baseline < 1 and 0 < baseline + effect < 1):
            raise ValueError("a conversion baseline and baseline + minimum_detectable_effect must be in (0, 1)")
        return baseline

    @field_validator("standard_deviation")
    @classmethod
    def _needed_for_continuous(cls, deviation: float | None, info: ValidationInfo) -> float | None:
        primary = info.data.get("primary_metric")
        if deviation is None and primary is not None and primary.kind is MetricKind.CONTINUOUS:
            raise ValueError("required for a continuous primary metric")
        return deviation

    @field_validator("cuped_covariate")
    @classmethod
    def _covariate_is_not_a_metric(cls, covariate: str | None, info: ValidationInfo) -> str | None:
        metrics = [info.data.get("primary_metric"), *info.data.get("guardrail_metrics", [])]
        if covariate is not None and covariate in {m.name for m in metrics if m is not None}:
            raise ValueError("the covariate is measured before the experiment: it cannot be one of its metrics")
        return covariate

    @property
    def control_name(self) -> str:
        return self.control or self.variants[0].name


class SampleSizePlan(BaseModel):
    """Units per variant for the primary metric to reach `power` at `alpha` for the minimum detectable effect."""

    units_per_variant: dict[str, int]
    total_units: int
    method: str


class Experiment(ExperimentCreate):
    """An experiment as stored and returned."""

    experiment_id: EntityId
    control: VariantName
    status: ExperimentStatus
    salt: str
    created_at: str
    stopped_at: str | None = None
    stop_reason: str | None = None
    plan: SampleSizePlan

    def variant(self, name: str) -> VariantSpec:
        return next(v for v in self.variants if v.name == name)

    @property
    def metrics(self) -> list[tuple[MetricSpec, Literal["primary", "guardrail"]]]:
        return [(self.primary_metric, "primary"), *((m, "guardrail") for m in self.guardrail_metrics)]


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit_id: EntityId


class Assignment(BaseModel):
    experiment_id: str
    unit_id: str
    variant: str
    bucket: int
    first_exposure: bool = Field(description="True only the first time this unit was assigned (exposure logged).")


class OutcomeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit_id: EntityId
    metric: MetricName
    value: float = Field(allow_inf_nan=False)


class OutcomeRecorded(BaseModel):
    experiment_id: str
    unit_id: str
    metric: str
    value: float
    variant: str


class StopRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)


# ---------------------------------------------------------------------------------------------- results
class Interval(BaseModel):
    low: float | None
    high: float | None


class VariantMetric(BaseModel):
    units: int
    mean: float | None = Field(description="Conversion rate or mean value per exposed unit.")
    total: float


class SequentialSummary(BaseModel):
    """The always-valid (mSPRT) result over every look so far: each analysis of the experiment is a look."""

    always_valid_p_value: float | None = Field(description="The minimum over looks of each look's always-valid p.")
    confidence_sequence: Interval = Field(
        description="The intersection over looks of each look's confidence sequence; empty (low > high) only if "
        "some look missed the true effect, which happens with probability at most alpha."
    )
    significant: bool = Field(description="always_valid_p_value <= alpha; once true, true at every later look.")
    mixing_sd: float
    looks: int = Field(default=0, description="Analyses of this comparison so far, this one included.")
    estimate: Literal["unadjusted", "cuped"] = Field(
        default="unadjusted", description="The difference and variance this look tested (CUPED's when used)."
    )


class SequentialState(BaseModel):
    """What the store keeps of a comparison's sequential result between looks (per experiment, metric, treatment)."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    metric: MetricName
    treatment: VariantName
    always_valid_p_value: float = Field(ge=0, le=1)
    cs_low: float
    cs_high: float
    looks: int = Field(ge=1)
    last_look_at: str


class CupedSummary(BaseModel):
    covariate: str
    theta: float
    difference: float | None
    confidence_interval: Interval
    p_value: float | None
    variance_reduction: float | None = Field(description="1 - Var(adjusted) / Var(unadjusted) of the difference.")


class VariantComparison(BaseModel):
    control: str
    treatment: str
    difference: float | None
    confidence_interval: Interval
    relative_lift: float | None
    relative_lift_interval: Interval
    p_value: float | None
    significant: bool
    test: str
    sequential: SequentialSummary
    probability_treatment_better: float | None = Field(
        description="Posterior P(treatment beats control) in the metric's good direction (Beta-Binomial or normal)."
    )
    cuped: CupedSummary | None = None
    achieved_power: float | None = Field(
        default=None, description="Power of the test at these sample sizes for the planned effect (primary only)."
    )


class MetricResult(BaseModel):
    metric: str
    kind: MetricKind
    role: Literal["primary", "guardrail"]
    direction: Direction
    variants: dict[str, VariantMetric]
    comparisons: list[VariantComparison]
    guardrail_breached: bool = Field(
        default=False, description="A guardrail significantly worse (fixed-horizon test) in some treatment."
    )


class SampleRatioSummary(BaseModel):
    observed: dict[str, int]
    expected: dict[str, float]
    chi_square: float
    p_value: float
    threshold: float
    mismatch: bool


class ExperimentResults(BaseModel):
    experiment_id: str
    name: str
    status: ExperimentStatus
    analysed_at: str
    units: int
    alpha: float
    plan: SampleSizePlan
    plan_progress: float = Field(description="Exposed units / planned units.")
    sample_ratio: SampleRatioSummary
    metrics: list[MetricResult]
