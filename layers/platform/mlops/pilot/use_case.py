"""The pilot's use case on a data set: its targets, its campaign economics and the baseline the model must beat.

Each comes, per field, from the execution's input if given there, else from the data set's schema (the keys
`targets`, `campaign` and `baseline_rule` of the schema JSON), else from the defaults below; where each value
came from is kept beside it, so that the results and the report can say which figures were assumed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlops.data.schema import DataSchema, DecisionRule

Source = Literal["input", "schema", "default"]


class PilotTargets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accuracy: float = Field(default=0.87, ge=0, le=1)
    auc_roc: float = Field(default=0.87, ge=0, le=1)
    latency_p95_ms: float = Field(default=80.0, gt=0)
    projected_annual_impact_usd: float = Field(
        default=500_000.0, description="Least projected yearly net value of the model's offers over the baseline's."
    )


class CampaignAssumptions(BaseModel):
    """The business assumptions of the simulated retention campaign and of its projected impact."""

    model_config = ConfigDict(extra="forbid")

    customer_base: int = Field(default=100_000, gt=0, description="Customers the impact is projected to.")
    annual_value_per_customer_usd: float = Field(
        default=700.0,
        gt=0,
        description="Revenue a retained customer brings in a year (the telecom file: about 12 x its mean monthly "
        "charges, $59.39).",
    )
    offer_cost_usd: float = Field(
        default=50.0, ge=0, description="Cost of one retention offer (incentive and contact), paid for every offer."
    )
    offer_acceptance_rate: float = Field(
        default=0.30, ge=0, le=1, description="Share of customers about to churn whom an offer keeps for a year."
    )


class PilotTargetsInput(BaseModel):
    """Targets given with the execution; a missing one comes from the schema's `targets`, else the default."""

    model_config = ConfigDict(extra="forbid")

    accuracy: float | None = Field(default=None, ge=0, le=1)
    auc_roc: float | None = Field(default=None, ge=0, le=1)
    latency_p95_ms: float | None = Field(default=None, gt=0)
    projected_annual_impact_usd: float | None = None


class CampaignAssumptionsInput(BaseModel):
    """Economics given with the execution; a missing one comes from the schema's `campaign`, else the default."""

    model_config = ConfigDict(extra="forbid")

    customer_base: int | None = Field(default=None, gt=0)
    annual_value_per_customer_usd: float | None = Field(default=None, gt=0)
    offer_cost_usd: float | None = Field(default=None, ge=0)
    offer_acceptance_rate: float | None = Field(default=None, ge=0, le=1)


class Baseline(BaseModel):
    """What the A/B test's control serves: the schema's decision rule, or no offers at all."""

    policy: Literal["rule", "no_action"]
    rule: DecisionRule | None = None
    source: str = Field(description="Why this baseline: the schema's rule, the input's choice, or no rule declared.")

    def describe(self) -> str:
        return f"the rule {self.rule}" if self.rule is not None else "no offers (no_action)"


class UseCase(BaseModel):
    """The resolved targets, economics and baseline of a run, with the source of every value."""

    targets: PilotTargets
    campaign: CampaignAssumptions
    baseline: Baseline
    sources: dict[str, Source] = Field(description="'targets.auc_roc' -> where its value came from, and so on.")

    def defaults_used(self) -> list[str]:
        return [name for name, source in self.sources.items() if source == "default"]


def resolve_use_case(
    schema: DataSchema,
    targets: PilotTargetsInput,
    campaign: CampaignAssumptionsInput,
    baseline: Literal["rule", "no_action"] | None,
) -> UseCase:
    """Input over schema over defaults, field by field. Raises ValueError for a `rule` baseline on a schema
    that declares none, or a schema whose `targets`/`campaign` keys are malformed (pydantic's message)."""
    declared: dict[str, Any] = schema.model_extra or {}
    sources: dict[str, Source] = {}
    resolved_targets = _resolve(PilotTargets, targets, declared.get("targets"), "targets", sources)
    resolved_campaign = _resolve(CampaignAssumptions, campaign, declared.get("campaign"), "campaign", sources)
    if baseline == "rule" and schema.baseline_rule is None:
        raise ValueError("the rule baseline needs a baseline_rule in the schema, which declares none")
    if baseline == "no_action":
        chosen = Baseline(policy="no_action", source="input")
    elif schema.baseline_rule is not None:
        chosen = Baseline(policy="rule", rule=schema.baseline_rule, source="schema")
    else:
        chosen = Baseline(policy="no_action", source="default: the schema declares no baseline_rule")
    sources["baseline"] = "input" if baseline is not None else ("schema" if chosen.rule else "default")
    return UseCase(targets=resolved_targets, campaign=resolved_campaign, baseline=chosen, sources=sources)


def _resolve[M: BaseModel](
    model: type[M], given: BaseModel, declared: Any, prefix: str, sources: dict[str, Source]
) -> M:
    from_schema = model.model_validate(declared or {}).model_dump(exclude_unset=True)
    from_input = given.model_dump(exclude_none=True)
    for name in model.model_fields:
        sources[f"{prefix}.{name}"] = "input" if name in from_input else "schema" if name in from_schema else "default"
    return model.model_validate(from_schema | from_input)
