"""The pilot's A/B test domain: its experiment, the simulated outcomes and the business impact arithmetic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import TELECOM_SCHEMA, load_event
from mlops.data.schema import DataSchema, DecisionRule
from mlops.experiments.analysis import analyse
from mlops.experiments.service import new_experiment
from mlops.pilot import campaign
from mlops.pilot import experiment as pilot_experiment
from mlops.pilot.payloads import CampaignAssumptions, StepRequest
from mlops.pilot.use_case import CampaignAssumptionsInput, PilotTargetsInput, resolve_use_case

OTHER_SCHEMA = DataSchema(
    id_column="subscriber", target="churned", positive_label="Y", numerical=["tenure"], categorical=["plan"]
)


def step_request(baseline: str | None = None, schema: DataSchema | None = None) -> StepRequest:
    # Given the state the experiment step received in a captured pilot run, with this baseline (and schema)
    event = load_event("pilot_step_validate_success_criteria")
    request = StepRequest.model_validate(event)
    if schema is None and baseline is None:
        return request
    use_case = resolve_use_case(
        schema or DataSchema.from_file(TELECOM_SCHEMA),
        PilotTargetsInput(),
        CampaignAssumptionsInput(),
        baseline,  # type: ignore[arg-type]
    )
    request.pilot.dataset.use_case = use_case
    return request


def test_the_pilot_experiment_is_the_schemas_rule_against_the_model_planned_on_the_data_sets_churn_rate() -> None:
    request = step_request()
    create = pilot_experiment.pilot_experiment_request(request, "churn")
    assert create.name == "churn_model_v1_vs_baseline"
    assert [(v.name, v.weight, v.serves.value) for v in create.variants] == [
        ("baseline", 0.5, "rule"),
        ("model", 0.5, "model"),
    ]
    assert create.variants[0].rule == DecisionRule(
        column="number_customer_service_calls",
        operator=">",
        value=3,
        description="offer to every customer with more than 3 customer service calls",
    )
    assert create.baseline_value == pytest.approx(1 - request.pilot.dataset.positive_rate, abs=1e-6)
    assert create.experiment_id.endswith(request.execution_name)
    # The same seed gives the same salt, hence the same assignment, on a rerun
    assert create.salt == pilot_experiment.pilot_experiment_request(step_request(), "churn").salt


def test_a_schema_without_a_rule_gets_the_no_action_baseline_and_says_why() -> None:
    # Given a schema that declares no baseline rule
    request = step_request(schema=OTHER_SCHEMA)
    # When the experiment is made
    create = pilot_experiment.pilot_experiment_request(request, "churn")
    # Then its control serves no offers, and the use case says the schema declared no rule
    assert create.variants[0].serves.value == "no_action"
    assert create.variants[0].rule is None
    assert "no baseline_rule" in request.pilot.use_case.baseline.source
    with pytest.raises(ValueError, match="declares none"):
        resolve_use_case(OTHER_SCHEMA, PilotTargetsInput(), CampaignAssumptionsInput(), "rule")


def test_simulated_outcomes_follow_the_labels_and_the_acceptance_rate() -> None:
    # Given 20,000 customers half of whom were about to churn, every other one offered
    n = 20_000
    would_churn = np.arange(n) % 2 == 0
    predictions = [{"churn_prediction": i % 4 < 2, "variant": "model", "churn_probability": 0.5} for i in range(n)]
    assumptions = CampaignAssumptions(offer_acceptance_rate=0.3, annual_value_per_customer_usd=700, offer_cost_usd=50)
    outcomes = campaign.simulate_outcomes(predictions, would_churn, assumptions, seed=1)
    offered_churners = would_churn & outcomes.offered
    # Then loyal customers stay, unoffered churners leave, and about 30% of offered churners stay
    assert outcomes.retained[~would_churn].all()
    assert not outcomes.retained[would_churn & ~outcomes.offered].any()
    assert outcomes.saved[offered_churners].mean() == pytest.approx(0.3, abs=0.02)
    # And the observable value is 700 if retained - 50 if offered
    assert set(np.unique(outcomes.customer_value)) <= {-50.0, 0.0, 650.0, 700.0}
    # And the draws depend on the seed only, not on the variants
    relabelled = [{**p, "variant": "baseline"} for p in predictions]
    again = campaign.simulate_outcomes(relabelled, would_churn, assumptions, seed=1)
    assert np.array_equal(again.saved, outcomes.saved)


def test_the_business_impact_is_revenue_protected_minus_offer_cost_times_the_customer_base() -> None:
    # Given a campaign where the model's arm saved 3 of its 100 customers with 10 offers, the baseline's 1 with 5
    variant = np.array(["baseline"] * 100 + ["model"] * 100)
    offered = np.zeros(200, bool)
    offered[:5] = offered[100:110] = True
    saved = np.zeros(200, bool)
    saved[0] = saved[100:103] = True
    would_churn = saved.copy()
    would_churn[[10, 11, 150]] = True
    assumptions = CampaignAssumptions(customer_base=100_000)
    retained = ~would_churn | saved
    outcomes = campaign.SimulatedOutcomes(
        variant=variant,
        offered=offered,
        saved=saved,
        retained=retained,
        customer_value=retained * 700.0 - offered * 50.0,
        churn_risk=np.linspace(0, 1, 200),
    )
    experiment = new_experiment(
        pilot_experiment.pilot_experiment_request(step_request(), "churn"), "2026-11-24T00:00:00.000Z"
    )
    units = [f"u{i}" for i in range(200)]
    results = analyse(
        experiment,
        dict(zip(units, variant.tolist(), strict=True)),
        {
            name: dict(zip(units, values.tolist(), strict=True))
            for name, values in {
                pilot_experiment.RETAINED: retained.astype(float),
                pilot_experiment.OFFERED: offered.astype(float),
                pilot_experiment.CUSTOMER_VALUE: outcomes.customer_value,
                pilot_experiment.CHURN_RISK: outcomes.churn_risk,
            }.items()
        },
        "2026-11-24T00:00:00.000Z",
    )
    variants = campaign.variant_outcomes(outcomes, would_churn, assumptions)
    impact = campaign.business_impact(results, outcomes, variants, assumptions)
    # Then the impact is the experiment's measured difference in customer value per customer x 100,000
    measured = impact.measured_by_experiment
    comparison = next(c for m in results.metrics if m.metric == pilot_experiment.CUSTOMER_VALUE for c in m.comparisons)
    expected = comparison.cuped.difference if measured.estimate == "cuped" else comparison.difference
    assert measured.net_value_per_customer_usd == pytest.approx(expected, abs=1e-4)
    assert impact.projected_annual_impact_usd == measured.projected_annual_impact_usd
    assert impact.projected_annual_impact_usd == pytest.approx(expected * 100_000, abs=0.01)
    low, high = impact.projected_annual_impact_ci_usd
    assert low < impact.projected_annual_impact_usd < high
    # And the primary metric's effect that must back it is reported with the plan's size: far too few units here
    primary = impact.primary_effect
    assert primary.metric == pilot_experiment.RETAINED
    assert primary.units == 200
    assert primary.planned_units == experiment.plan.total_units > 200
    assert primary.significant_at_planned_size is False
    # And the simulation's truth, beside it: model (3 x 700 - 10 x 50) / 100 = 16, baseline (700 - 5 x 50) / 100
    # = 4.5 per customer; x 100,000
    truth = impact.simulated_truth
    assert truth.incremental_net_value_per_customer_usd == pytest.approx(11.5)
    assert truth.projected_annual_impact_usd == pytest.approx(1_150_000)
    assert truth.projected_revenue_protected_usd == pytest.approx((2100 - 700) / 100 * 100_000)
    assert truth.projected_offer_cost_usd == pytest.approx((500 - 250) / 100 * 100_000)
    assert json.loads(impact.model_dump_json())["assumptions"]["offer_acceptance_rate"] == 0.3
