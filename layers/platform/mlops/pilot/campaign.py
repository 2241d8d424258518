"""The pilot's simulated retention campaign, run through the A/B test (:mod:`mlops.pilot.experiment`).

The campaign takes the held-out customers of the run (the test split, never used in training), sends them
to the deployed scoring function, which assigns each to a variant with the real assignment code, logs the
exposure and serves that variant's decision: the baseline rule (more than 3 customer service calls) or the
model. Customers a variant flags get a retention offer. Outcomes come from the true labels: a customer who
was going to churn and got an offer stays with probability `offer_acceptance_rate` (seeded draws, one per
customer, made before and independently of the assignment); every other would-be churner leaves; everyone
else stays. The outcomes go to the experiment like any client's, and the experiment's own analysis gives
the results and, through the net value per customer, the projected business impact.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops.api.contracts import MAX_BATCH_RECORDS
from mlops.core.artifacts import ArtifactStore
from mlops.core.clock import utc_now
from mlops.core.observability import logger
from mlops.data.schema import DataSchema
from mlops.experiments.analysis import analyse
from mlops.experiments.models import Experiment, ExperimentResults
from mlops.experiments.statistics import compare_means
from mlops.experiments.store import ExperimentStore
from mlops.pilot.experiment import BASELINE, CHURN_RISK, CUSTOMER_VALUE, MODEL, OFFERED, RETAINED
from mlops.pilot.lambda_api import api_gateway_event
from mlops.pilot.payloads import (
    BusinessImpact,
    CampaignAssumptions,
    CampaignReport,
    MeasuredImpact,
    StepRequest,
    VariantOutcome,
)


@dataclass(frozen=True)
class HeldOutCustomers:
    ids: list[str]
    features: list[dict[str, float | str | None]]
    would_churn: np.ndarray


def read_held_out(csv_bytes: bytes, schema: DataSchema) -> HeldOutCustomers:
    """The test split (written by pandas) with the csv module: empty cells are missing values."""
    ids, features, labels = [], [], []
    for row in csv.DictReader(io.StringIO(csv_bytes.decode())):
        ids.append(row[schema.id_column])
        record: dict[str, float | str | None] = {}
        for name in schema.numerical:
            record[name] = float(row[name]) if row.get(name) not in (None, "") else None
        for name in schema.categorical:
            record[name] = row[name] if row.get(name) not in (None, "") else None
        features.append(record)
        labels.append(row[schema.target] == schema.positive_label)
    return HeldOutCustomers(ids=ids, features=features, would_churn=np.array(labels, bool))


def score_through_experiment(
    customers: HeldOutCustomers,
    invoke_scoring: Callable[[dict[str, Any]], dict[str, Any]],
    experiment_id: str,
    *,
    max_wait_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[dict[str, Any]]:
    """Every customer through /predict/batch; a chunk is resent until scoring serves the experiment (warm
    containers re-read the running experiment every ModelRefreshSeconds). Exposures are logged once anyway."""
    predictions: list[dict[str, Any]] = []
    deadline = clock() + max_wait_seconds
    for start in range(0, len(customers.ids), MAX_BATCH_RECORDS):
        records = [
            {"customer_id": customer_id, "features": features}
            for customer_id, features in zip(
                customers.ids[start : start + MAX_BATCH_RECORDS],
                customers.features[start : start + MAX_BATCH_RECORDS],
                strict=True,
            )
        ]
        while True:
            event = api_gateway_event("POST", "/predict/batch", {"records": records}, f"campaign-{start}")
            response = invoke_scoring(event)
            if response.get("statusCode") != 200:
                raise RuntimeError(f"scoring answered {response.get('statusCode')}: {response.get('body')}")
            chunk = response_predictions(response)
            if all(p.get("experiment_id") == experiment_id for p in chunk):
                break
            if clock() > deadline:
                raise RuntimeError(f"scoring did not serve experiment {experiment_id} within {max_wait_seconds} s")
            sleep(1.0)
        predictions += chunk
    return predictions


def response_predictions(response: dict[str, Any]) -> list[dict[str, Any]]:
    return json.loads(response["body"])["predictions"]


@dataclass(frozen=True)
class SimulatedOutcomes:
    variant: np.ndarray
    offered: np.ndarray
    saved: np.ndarray
    retained: np.ndarray
    customer_value: np.ndarray
    churn_risk: np.ndarray


def simulate_outcomes(
    predictions: list[dict[str, Any]], would_churn: np.ndarray, assumptions: CampaignAssumptions, seed: int
) -> SimulatedOutcomes:
    rng = np.random.default_rng(seed)
    # One draw per customer, in file order, before looking at variants: both arms face the same acceptance.
    accepts = rng.random(len(predictions)) < assumptions.offer_acceptance_rate
    offered = np.array([p["churn_prediction"] for p in predictions], bool)
    saved = would_churn & offered & accepts
    retained = ~would_churn | saved
    return SimulatedOutcomes(
        variant=np.array([p["variant"] for p in predictions]),
        offered=offered,
        saved=saved,
        retained=retained,
        customer_value=retained * assumptions.annual_value_per_customer_usd - offered * assumptions.offer_cost_usd,
        churn_risk=np.array([p["churn_probability"] for p in predictions], float),
    )


def variant_outcomes(
    outcomes: SimulatedOutcomes, would_churn: np.ndarray, assumptions: CampaignAssumptions
) -> dict[str, VariantOutcome]:
    summary = {}
    for name in (BASELINE, MODEL):
        members = outcomes.variant == name
        customers = int(members.sum())
        revenue = float(outcomes.saved[members].sum() * assumptions.annual_value_per_customer_usd)
        cost = float(outcomes.offered[members].sum() * assumptions.offer_cost_usd)
        summary[name] = VariantOutcome(
            customers=customers,
            offers=int(outcomes.offered[members].sum()),
            would_churn=int(would_churn[members].sum()),
            saved=int(outcomes.saved[members].sum()),
            churned=int((~outcomes.retained[members]).sum()),
            revenue_protected_usd=round(revenue, 2),
            offer_cost_usd=round(cost, 2),
            net_value_usd=round(revenue - cost, 2),
            net_value_per_customer_usd=round((revenue - cost) / customers, 4) if customers else 0.0,
        )
    return summary


def business_impact(
    results: ExperimentResults,
    outcomes: SimulatedOutcomes,
    variants: dict[str, VariantOutcome],
    assumptions: CampaignAssumptions,
) -> BusinessImpact:
    """Revenue protected - offer cost per customer of each arm (the simulation knows who was saved), model -
    baseline, x the customer base; beside it, the experiment's own (observable, noisier) estimate."""
    base = assumptions.customer_base

    def scaled(value: float | None, factor: float = base) -> float | None:
        return None if value is None or not math.isfinite(value) else round(value * factor, 2)

    value, cost = assumptions.annual_value_per_customer_usd, assumptions.offer_cost_usd
    net_value = outcomes.saved * value - outcomes.offered * cost
    accounted = compare_means(net_value[outcomes.variant == BASELINE], net_value[outcomes.variant == MODEL])
    difference, low, high = float(accounted.difference), float(accounted.ci_low), float(accounted.ci_high)

    def incremental(field: str) -> float:
        per_customer = {n: getattr(v, field) / v.customers if v.customers else 0.0 for n, v in variants.items()}
        return round((per_customer[MODEL] - per_customer[BASELINE]) * base, 2)

    metric = next(m for m in results.metrics if m.metric == CUSTOMER_VALUE)
    comparison = next(c for c in metric.comparisons if c.treatment == MODEL)
    unadjusted = (comparison.difference or 0.0, comparison.confidence_interval)
    estimate, (measured, interval) = "unadjusted", unadjusted
    if comparison.cuped is not None and comparison.cuped.difference is not None:
        estimate, (measured, interval) = "cuped", (comparison.cuped.difference, comparison.cuped.confidence_interval)

    return BusinessImpact(
        assumptions=assumptions,
        incremental_net_value_per_customer_usd=round(difference, 4),
        incremental_net_value_per_customer_ci_usd=(scaled(low, 1), scaled(high, 1)),
        projected_annual_impact_usd=round(difference * base, 2),
        projected_annual_impact_ci_usd=(scaled(low), scaled(high)),
        projected_revenue_protected_usd=incremental("revenue_protected_usd"),
        projected_offer_cost_usd=incremental("offer_cost_usd"),
        measured_by_experiment=MeasuredImpact(
            estimate=estimate,  # type: ignore[arg-type]
            projected_annual_impact_usd=round(measured * base, 2),
            projected_annual_impact_ci_usd=(scaled(interval.low), scaled(interval.high)),
            unadjusted_projected_annual_impact_usd=round(unadjusted[0] * base, 2),
            unadjusted_projected_annual_impact_ci_usd=(scaled(unadjusted[1].low), scaled(unadjusted[1].high)),
        ),
        method=f"per customer of each arm: annual value x would-be churners an offer kept - offer cost x offers; "
        f"'{MODEL}' - '{BASELINE}', x {base:,} customers for one year; 95% CI by Welch's t-test over the customers",
    )


def run_retention_campaign(
    request: StepRequest,
    artifacts: ArtifactStore,
    store: ExperimentStore,
    invoke_scoring: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    model_refresh_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> CampaignReport:
    """Score the held-out customers through the experiment, simulate their outcomes, record them and analyse."""
    pilot = request.pilot
    dataset = request.require(pilot.dataset, "dataset")
    started = request.require(pilot.experiment, "experiment")
    schema = DataSchema.from_json(artifacts.get_verified(dataset.schema_ref))
    customers = read_held_out(artifacts.get_verified(dataset.test), schema)

    # Warm scoring containers see a new experiment within one refresh interval; leave room for two.
    max_wait_seconds = 2 * model_refresh_seconds + 5
    predictions = score_through_experiment(
        customers, invoke_scoring, started.experiment_id, max_wait_seconds=max_wait_seconds, sleep=sleep
    )
    outcomes = simulate_outcomes(predictions, customers.would_churn, pilot.campaign_assumptions, pilot.seed)
    store.record_outcomes(started.experiment_id, _outcome_rows(customers.ids, outcomes))

    experiment: Experiment = store.get(started.experiment_id)
    results = analyse(
        experiment, store.exposures(started.experiment_id), store.outcomes(started.experiment_id), utc_now()
    )
    variants = variant_outcomes(outcomes, customers.would_churn, pilot.campaign_assumptions)
    impact = business_impact(results, outcomes, variants, pilot.campaign_assumptions)
    logger.info(
        "Retention campaign analysed",
        extra={"units": results.units, "projected_annual_impact_usd": impact.projected_annual_impact_usd},
    )
    return CampaignReport(
        experiment_id=started.experiment_id,
        customers=len(customers.ids),
        acceptance_seed=pilot.seed,
        variants=variants,
        results=results,
        business_impact=impact,
    )


def _outcome_rows(ids: list[str], outcomes: SimulatedOutcomes) -> list[tuple[str, str, float]]:
    rows: list[tuple[str, str, float]] = []
    for index, unit in enumerate(ids):
        rows += [
            (unit, RETAINED, float(outcomes.retained[index])),
            (unit, OFFERED, float(outcomes.offered[index])),
            (unit, CUSTOMER_VALUE, float(outcomes.customer_value[index])),
            (unit, CHURN_RISK, float(outcomes.churn_risk[index])),
        ]
    return rows
