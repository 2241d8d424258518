"""The pilot's simulated retention campaign, run through the A/B test (:mod:`mlops.pilot.experiment`).

The campaign exposes as many customers as the experiment's own power plan asks for: first the held-out
customers of the run (the test split, never used in training), then, where they are too few, customers drawn
from a generator fitted on the training split only (:mod:`mlops.pilot.synthetic`), whose churn comes from the
generator's own outcome model, not from the model under test. Generated customers are sent as synthetic
traffic (audited, not captured for monitoring). Each customer is sent once to the deployed scoring function,
which assigns it to a variant with the real assignment code, logs the exposure and serves that variant's
decision: the baseline (the schema's rule, or no offers) or the model. Customers a variant flags get a
retention offer.

Outcomes are simulated: a customer who was going to churn and got an offer stays with probability
`offer_acceptance_rate` (seeded draws, one per customer, made before and independently of the assignment);
every other would-be churner leaves; everyone else stays. The outcomes go to the experiment like any client's,
and the experiment's own analysis gives the results and the measured impact: the difference in net value per
customer between the arms, with its interval, times the customer base. The simulation's ground truth (who was
saved) is reported beside it as a check of that estimator, never as the result.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops.api.contracts import MAX_BATCH_RECORDS, SYNTHETIC_TRAFFIC_HEADER
from mlops.core.artifacts import ArtifactStore
from mlops.core.clock import utc_now
from mlops.core.errors import ExperimentUnavailableError
from mlops.core.observability import logger
from mlops.data.dataset import read_dataset
from mlops.data.schema import DataSchema
from mlops.experiments.models import ExperimentResults
from mlops.experiments.service import experiment_results
from mlops.experiments.statistics import compare_means
from mlops.experiments.store import ExperimentStore
from mlops.pilot.customers import Customers, read_customers, response_predictions
from mlops.pilot.experiment import BASELINE, CHURN_RISK, CUSTOMER_VALUE, MODEL, OFFERED, RETAINED
from mlops.pilot.lambda_api import api_gateway_event
from mlops.pilot.payloads import (
    BusinessImpact,
    CampaignAssumptions,
    CampaignReport,
    MeasuredImpact,
    PrimaryEffect,
    SimulatedTruth,
    StepRequest,
    VariantOutcome,
)
from mlops.pilot.synthetic import CustomerGenerator

GENERATED_ID_PREFIX = "SIM-"


def generated_customers(training_csv: bytes, schema: DataSchema, rows: int, seed: int) -> Customers:
    """`rows` customers from a generator fitted on the training split only; whether each would churn is drawn
    from the generator's outcome model (seeded)."""
    if rows <= 0:
        return Customers([], [], np.zeros(0, bool), np.zeros(0, bool))
    training = read_dataset(io.BytesIO(training_csv), schema, require_target=True)
    generator = CustomerGenerator.fit(training, schema, seed=seed)
    rng = np.random.default_rng(seed)
    frame = generator.generate(rows, rng, id_prefix=GENERATED_ID_PREFIX)
    would_churn = rng.random(rows) < generator.churn_probability(frame)
    features: list[dict[str, float | str | None]] = []
    numerical = frame[schema.numerical].astype(float).to_numpy() if schema.numerical else np.zeros((rows, 0))
    categorical = frame[schema.categorical].to_numpy(dtype=object) if schema.categorical else np.zeros((rows, 0))
    for index in range(rows):
        record: dict[str, float | str | None] = {
            name: None if math.isnan(value) else float(value)
            for name, value in zip(schema.numerical, numerical[index], strict=True)
        }
        for name, value in zip(schema.categorical, categorical[index], strict=True):
            record[name] = None if value is None or value != value or value == "" else str(value)
        features.append(record)
    return Customers(
        ids=[str(v) for v in frame[schema.id_column]],
        features=features,
        would_churn=would_churn,
        simulated=np.ones(rows, bool),
    )


def combined(first: Customers, second: Customers) -> Customers:
    return Customers(
        ids=first.ids + second.ids,
        features=first.features + second.features,
        would_churn=np.concatenate([first.would_churn, second.would_churn]),
        simulated=np.concatenate([first.simulated, second.simulated]),
    )


def score_through_experiment(
    customers: Customers,
    invoke_scoring: Callable[[dict[str, Any]], dict[str, Any]],
    experiment_id: str,
    request_prefix: str,
) -> list[dict[str, Any]]:
    """Every customer once through /predict/batch (generated ones as synthetic traffic). A prediction served
    without the experiment fails the campaign: the caller waits for scoring to see the experiment first."""
    predictions: list[dict[str, Any]] = []
    for simulated in (False, True):
        rows = [i for i in range(len(customers.ids)) if bool(customers.simulated[i]) is simulated]
        headers = {SYNTHETIC_TRAFFIC_HEADER: "pilot-campaign"} if simulated else None
        for start in range(0, len(rows), MAX_BATCH_RECORDS):
            chunk = rows[start : start + MAX_BATCH_RECORDS]
            records = [{"customer_id": customers.ids[i], "features": customers.features[i]} for i in chunk]
            event = api_gateway_event(
                "POST",
                "/predict/batch",
                {"records": records},
                f"{request_prefix}-{'simulated' if simulated else 'held-out'}-{start}",
                headers=headers,
            )
            response = invoke_scoring(event)
            if response.get("statusCode") != 200:
                raise RuntimeError(f"scoring answered {response.get('statusCode')}: {response.get('body')}")
            served = response_predictions(response)
            if any(p.get("experiment_id") != experiment_id for p in served):
                raise ExperimentUnavailableError(
                    field="experiment", message=f"scoring served predictions outside experiment {experiment_id}"
                )
            predictions += served
    order = {customer_id: index for index, customer_id in enumerate(customers.ids)}
    return sorted(predictions, key=lambda p: order[p["customer_id"]])


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
    """The impact as the experiment measures it (the difference in `customer_value_usd` per customer between
    the arms, CUPED-adjusted when the covariate helps, with its 95% interval, x the customer base), the primary
    metric's effect that must back it, and the simulation's ground truth beside it as a check."""
    base = assumptions.customer_base

    def scaled(value: float | None, factor: float = base) -> float | None:
        return None if value is None or not math.isfinite(value) else round(value * factor, 2)

    metric = next(m for m in results.metrics if m.metric == CUSTOMER_VALUE)
    comparison = next(c for c in metric.comparisons if c.treatment == MODEL)
    unadjusted = (comparison.difference or 0.0, comparison.confidence_interval)
    estimate, (measured, interval) = "unadjusted", unadjusted
    if comparison.cuped is not None and comparison.cuped.difference is not None:
        estimate, (measured, interval) = "cuped", (comparison.cuped.difference, comparison.cuped.confidence_interval)
    measured_impact = MeasuredImpact(
        estimate=estimate,  # type: ignore[arg-type]
        net_value_per_customer_usd=round(measured, 4),
        net_value_per_customer_ci_usd=(scaled(interval.low, 1), scaled(interval.high, 1)),
        projected_annual_impact_usd=round(measured * base, 2),
        projected_annual_impact_ci_usd=(scaled(interval.low), scaled(interval.high)),
        unadjusted_projected_annual_impact_usd=round(unadjusted[0] * base, 2),
        unadjusted_projected_annual_impact_ci_usd=(scaled(unadjusted[1].low), scaled(unadjusted[1].high)),
    )
    primary = next(m for m in results.metrics if m.role == "primary")
    effect = next(c for c in primary.comparisons if c.treatment == MODEL)
    # The estimate the sequential test used (CUPED's when the covariate was used), for the p-value too.
    adjusted = effect.cuped is not None and effect.cuped.p_value is not None and effect.cuped.difference is not None
    difference, interval, p_value = (
        (effect.cuped.difference, effect.cuped.confidence_interval, effect.cuped.p_value)  # type: ignore[union-attr]
        if adjusted
        else (effect.difference, effect.confidence_interval, effect.p_value)
    )
    planned = results.plan.total_units
    significant = p_value is not None and p_value < results.alpha
    primary_effect = PrimaryEffect(
        metric=primary.metric,
        estimate="cuped" if adjusted else "unadjusted",
        difference=difference,
        confidence_interval=(interval.low, interval.high),
        p_value=p_value,
        always_valid_p_value=effect.sequential.always_valid_p_value,
        alpha=results.alpha,
        units=results.units,
        planned_units=planned,
        significant_at_planned_size=significant and results.units >= planned,
    )

    value, cost = assumptions.annual_value_per_customer_usd, assumptions.offer_cost_usd
    net_value = outcomes.saved * value - outcomes.offered * cost
    truth = compare_means(net_value[outcomes.variant == BASELINE], net_value[outcomes.variant == MODEL])
    difference, low, high = float(truth.difference), float(truth.ci_low), float(truth.ci_high)

    def incremental(field: str) -> float:
        per_customer = {n: getattr(v, field) / v.customers if v.customers else 0.0 for n, v in variants.items()}
        return round((per_customer[MODEL] - per_customer[BASELINE]) * base, 2)

    return BusinessImpact(
        assumptions=assumptions,
        projected_annual_impact_usd=measured_impact.projected_annual_impact_usd,
        projected_annual_impact_ci_usd=measured_impact.projected_annual_impact_ci_usd,
        measured_by_experiment=measured_impact,
        primary_effect=primary_effect,
        simulated_truth=SimulatedTruth(
            incremental_net_value_per_customer_usd=round(difference, 4),
            incremental_net_value_per_customer_ci_usd=(scaled(low, 1), scaled(high, 1)),
            projected_annual_impact_usd=round(difference * base, 2),
            projected_annual_impact_ci_usd=(scaled(low), scaled(high)),
            projected_revenue_protected_usd=incremental("revenue_protected_usd"),
            projected_offer_cost_usd=incremental("offer_cost_usd"),
        ),
        method=f"the experiment's {estimate} difference in {CUSTOMER_VALUE} per customer ('{MODEL}' - "
        f"'{BASELINE}'), x {base:,} customers for one year, 95% CI; the simulated truth uses who was saved, which "
        "only the simulation knows",
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
    """Expose the planned number of customers once each, simulate their outcomes, record them and analyse."""
    pilot = request.pilot
    dataset = request.require(pilot.dataset, "dataset")
    started = request.require(pilot.experiment, "experiment")
    schema = DataSchema.from_json(artifacts.get_verified(dataset.schema_ref))
    assumptions = pilot.use_case.campaign
    held_out = read_customers(artifacts.get_verified(dataset.test), schema)
    planned = started.plan.total_units
    generated = generated_customers(
        artifacts.get_verified(dataset.train), schema, planned - len(held_out.ids), pilot.seed
    )
    customers = combined(held_out, generated)

    # Warm scoring containers re-read the running experiment every ModelRefreshSeconds: once that much time
    # has passed since the experiment started, every request is served within it.
    sleep(model_refresh_seconds + 0.5)
    predictions = score_through_experiment(customers, invoke_scoring, started.experiment_id, request.execution_name)
    outcomes = simulate_outcomes(predictions, customers.would_churn, assumptions, pilot.seed)
    store.record_outcomes(started.experiment_id, _outcome_rows(customers.ids, outcomes))

    results = experiment_results(store, started.experiment_id, utc_now())
    variants = variant_outcomes(outcomes, customers.would_churn, assumptions)
    impact = business_impact(results, outcomes, variants, assumptions)
    logger.info(
        "Retention campaign analysed",
        extra={"units": results.units, "projected_annual_impact_usd": impact.projected_annual_impact_usd},
    )
    return CampaignReport(
        experiment_id=started.experiment_id,
        customers=len(customers.ids),
        held_out_customers=len(held_out.ids),
        simulated_customers=len(generated.ids),
        generator=CustomerGenerator.DESCRIPTION,
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
