"""The pilot's A/B test domain: its experiment, the simulated outcomes and the business impact arithmetic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import load_event
from mlops.core.errors import InvalidRequestError
from mlops.data.schema import DataSchema
from mlops.experiments.analysis import analyse
from mlops.experiments.service import new_experiment
from mlops.pilot import campaign
from mlops.pilot import experiment as pilot_experiment
from mlops.pilot.payloads import CampaignAssumptions, StepRequest

TELECOM_SCHEMA = DataSchema(
    id_column="customer_id",
    target="churn",
    positive_label="yes",
    numerical=["number_customer_service_calls", "total_day_minutes"],
    categorical=["state"],
)
OTHER_SCHEMA = DataSchema(
    id_column="subscriber", target="churned", positive_label="Y", numerical=["tenure"], categorical=["plan"]
)


def step_request(**design: object) -> StepRequest:
    # Given the state the experiment step received in a captured pilot run, with this experiment design
    event = load_event("pilot_step_validate_success_criteria")
    event["pilot"]["experiment_design"] = design
    return StepRequest.model_validate(event)


def test_the_pilot_experiment_is_the_rule_against_the_model_planned_on_the_data_sets_churn_rate() -> None:
    request = step_request()
    create = pilot_experiment.pilot_experiment_request(request, "churn", TELECOM_SCHEMA)
    assert create.name == "churn_model_v1_vs_baseline"
    assert [(v.name, v.weight, v.serves.value) for v in create.variants] == [
        ("baseline", 0.5, "service_calls_rule"),
        ("model", 0.5, "model"),
    ]
    assert create.baseline_value == pytest.approx(1 - request.pilot.dataset.positive_rate, abs=1e-6)
    assert create.experiment_id.endswith(request.execution_name)
    # The same seed gives the same salt, hence the same assignment, on a rerun
    assert create.salt == pilot_experiment.pilot_experiment_request(step_request(), "churn", TELECOM_SCHEMA).salt


def test_the_service_calls_rule_is_refused_on_data_without_that_column_and_no_action_is_not() -> None:
    with pytest.raises(InvalidRequestError, match="number_customer_service_calls"):
        pilot_experiment.pilot_experiment_request(step_request(), "churn", OTHER_SCHEMA)
    create = pilot_experiment.pilot_experiment_request(step_request(baseline="no_action"), "churn", OTHER_SCHEMA)
    assert create.variants[0].serves.value == "no_action"


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
        pilot_experiment.pilot_experiment_request(step_request(), "churn", TELECOM_SCHEMA), "2026-11-24T00:00:00.000Z"
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
    # Then per customer: model (3 x 700 - 10 x 50) / 100 = 16, baseline (700 - 5 x 50) / 100 = 4.5; x 100,000
    assert impact.incremental_net_value_per_customer_usd == pytest.approx(11.5)
    assert impact.projected_annual_impact_usd == pytest.approx(1_150_000)
    assert impact.projected_revenue_protected_usd == pytest.approx((2100 - 700) / 100 * 100_000)
    assert impact.projected_offer_cost_usd == pytest.approx((500 - 250) / 100 * 100_000)
    low, high = impact.projected_annual_impact_ci_usd
    assert low < impact.projected_annual_impact_usd < high
    assert json.loads(impact.model_dump_json())["assumptions"]["offer_acceptance_rate"] == 0.3
