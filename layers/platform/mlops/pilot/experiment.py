"""The pilot's A/B test `churn_model_v1_vs_baseline`: retention offers chosen by the baseline or by the model,
started on the newly deployed model.

Its metrics are the campaign's observables (:mod:`mlops.pilot.campaign`): retained, offered and the customer value,
with the model's churn risk as the CUPED covariate.
"""

from __future__ import annotations

from mlops.core.artifacts import ArtifactStore
from mlops.core.errors import ExperimentNotFoundError
from mlops.experiments.models import (
    DecisionPolicy,
    Direction,
    ExperimentCreate,
    MetricKind,
    MetricSpec,
    VariantSpec,
)
from mlops.experiments.service import ExperimentService
from mlops.pilot.payloads import ExperimentStartReport, StepRequest

BASELINE = "baseline"
MODEL = "model"
RETAINED = "retained"
OFFERED = "offered"
CUSTOMER_VALUE = "customer_value_usd"
"""Observable per customer: annual value if retained - offer cost if offered."""
CHURN_RISK = "churn_risk"
"""CUPED covariate: the model's churn probability, computed from pre-experiment features for every unit."""


def pilot_experiment_request(request: StepRequest, model_name: str) -> ExperimentCreate:
    pilot = request.pilot
    dataset = request.require(pilot.dataset, "dataset")
    plan = pilot.experiment_design
    baseline = pilot.use_case.baseline
    return ExperimentCreate(
        experiment_id=f"{plan.name}-{request.execution_name}"[:128],
        name=plan.name,
        description=f"Retention offers chosen by the baseline ({baseline.describe()}) or by the model "
        f"({model_name}), split {1 - plan.treatment_share:g}/{plan.treatment_share:g}; started by pilot "
        f"{request.execution_name}.",
        model_name=model_name,
        variants=[
            VariantSpec(
                name=BASELINE,
                weight=1 - plan.treatment_share,
                serves=DecisionPolicy.RULE if baseline.rule else DecisionPolicy.NO_ACTION,
                rule=baseline.rule,
            ),
            VariantSpec(name=MODEL, weight=plan.treatment_share, serves=DecisionPolicy.MODEL),
        ],
        control=BASELINE,
        primary_metric=MetricSpec(name=RETAINED, kind=MetricKind.CONVERSION, direction=Direction.INCREASE),
        guardrail_metrics=[
            MetricSpec(name=CUSTOMER_VALUE, kind=MetricKind.CONTINUOUS, direction=Direction.INCREASE),
            MetricSpec(name=OFFERED, kind=MetricKind.CONVERSION, direction=Direction.DECREASE),
        ],
        minimum_detectable_effect=plan.minimum_detectable_effect,
        # Planned against the retention rate with no campaign at all: 1 - the data set's churn rate.
        baseline_value=round(1 - dataset.positive_rate, 6),
        alpha=plan.alpha,
        power=plan.power,
        cuped_covariate=CHURN_RISK,
        # Seeded like the rest of the pilot, so a rerun with the same seed assigns the same customers alike.
        salt=f"{plan.name}:seed-{pilot.seed}",
    )


def start_pilot_experiment(
    request: StepRequest, artifacts: ArtifactStore, experiments: ExperimentService, model_name: str
) -> ExperimentStartReport:
    """Start the experiment on the newly deployed model; one it replaces is stopped (its treatment changed).
    The experiment service audits both, with the execution as the actor.

    Idempotent: the id comes from the execution, so a retried step finds the experiment it already created.
    """
    create = pilot_experiment_request(request, model_name)
    assert create.experiment_id is not None
    actor = f"pilot:{request.execution_name}"
    stopped_previous = None
    try:
        experiment = experiments.get(create.experiment_id)
    except ExperimentNotFoundError:
        running = experiments.store.running_for_model(model_name)
        if running is not None:
            reason = f"superseded by the deployment of pilot {request.execution_name}"
            stopped_previous = experiments.stop(running.experiment_id, reason, actor).experiment_id
        experiment = experiments.create(create, actor)
    return ExperimentStartReport(
        experiment_id=experiment.experiment_id,
        name=experiment.name,
        model_name=model_name,
        variants=experiment.variants,
        plan=experiment.plan,
        stopped_previous=stopped_previous,
    )
