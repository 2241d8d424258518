"""What the experiments API does: create, read, assign, record outcomes, analyse and stop experiments.

Creating and stopping an experiment are written to the audit trail, and every first exposure is counted
(the `Exposures` metric). Every analysis is a look of the sequential test, kept in the store
(`experiment_results`, which clients holding only a store, such as the pilot's campaign, call too).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from mlops.audit.events import experiment_event
from mlops.audit.queue import AuditLog
from mlops.audit.records import AuditEventType
from mlops.core.clock import utc_now
from mlops.core.errors import ExperimentConflictError, ExperimentUnavailableError, InvalidRequestError
from mlops.core.observability import MetricUnit, metrics
from mlops.experiments.analysis import analyse, plan_sample_size, sequential_states
from mlops.experiments.models import (
    Assignment,
    Experiment,
    ExperimentCreate,
    ExperimentResults,
    ExperimentStatus,
    MetricKind,
    OutcomeRecorded,
    OutcomeRequest,
)
from mlops.experiments.serving import assigner_of
from mlops.experiments.store import ExperimentStore, SequentialStateConflictError

MAX_LOOK_ATTEMPTS = 5
"""Analyses of one look repeated when concurrent analyses of the same experiment keep saving first."""


def new_experiment(request: ExperimentCreate, now: str, make_id: Callable[[], str] | None = None) -> Experiment:
    experiment_id = request.experiment_id or (make_id or _random_id)()
    return Experiment.model_validate(
        {
            **request.model_dump(),
            "experiment_id": experiment_id,
            "control": request.control_name,
            "status": ExperimentStatus.RUNNING,
            # A salt of its own per experiment keeps assignments independent across experiments.
            "salt": request.salt or f"{experiment_id}:{secrets.token_hex(8)}",
            "created_at": now,
            "plan": plan_sample_size(request),
        }
    )


def _random_id() -> str:
    return f"exp-{secrets.token_hex(8)}"


def experiment_results(store: ExperimentStore, experiment_id: str, analysed_at: str) -> ExperimentResults:
    """The experiment's results as one more look: the sequential summaries are the running ones over every
    look so far (minimum always-valid p-value, intersected confidence sequences), and this look is saved, so a
    sequential result once significant stays significant. Read-merge-write is optimistic: a look that
    another analysis overtook is repeated on the newer state (the running results only tighten)."""
    experiment = store.get(experiment_id)
    exposures, outcomes = store.exposures(experiment_id), store.outcomes(experiment_id)
    for _ in range(MAX_LOOK_ATTEMPTS):
        previous = store.sequential_states(experiment_id)
        results = analyse(experiment, exposures, outcomes, analysed_at, previous)
        try:
            store.save_sequential_states(experiment_id, sequential_states(results, previous), previous)
        except SequentialStateConflictError:
            continue
        return results
    raise ExperimentUnavailableError(
        field="experiment_id", message=f"experiment {experiment_id} is being analysed concurrently; try again"
    )


class ExperimentService:
    def __init__(self, store: ExperimentStore, audit: AuditLog, clock: Callable[[], str] = utc_now) -> None:
        self.store = store
        self._audit = audit
        self._clock = clock

    def create(self, request: ExperimentCreate, actor: str) -> Experiment:
        """Store the new experiment (running from now on), then audit its creation by `actor`."""
        experiment = new_experiment(request, self._clock())
        self.store.create(experiment)
        self._audit.append(
            experiment_event(
                AuditEventType.EXPERIMENT_CREATED,
                experiment.experiment_id,
                actor,
                model_name=experiment.model_name,
                variants={v.name: v.weight for v in experiment.variants},
            )
        )
        return experiment

    def get(self, experiment_id: str) -> Experiment:
        return self.store.get(experiment_id)

    def assign(self, experiment_id: str, unit_id: str) -> Assignment:
        """The unit's variant; its first assignment is logged as an exposure (once, however often it asks)."""
        experiment = self.store.get(experiment_id)
        if experiment.status is not ExperimentStatus.RUNNING:
            raise ExperimentConflictError(
                field="experiment_id", message=f"experiment {experiment_id} is {experiment.status.value}"
            )
        assigner = assigner_of(experiment)
        bucket = assigner.bucket(unit_id)
        variant = assigner.variant_of_bucket(bucket)
        first = self.store.log_exposures(experiment_id, {unit_id: variant}) == 1
        metrics.add_metric(name="Exposures", unit=MetricUnit.Count, value=int(first))
        return Assignment(
            experiment_id=experiment_id, unit_id=unit_id, variant=variant, bucket=bucket, first_exposure=first
        )

    def record_outcome(self, experiment_id: str, outcome: OutcomeRequest) -> OutcomeRecorded:
        """Accepted while running and after stopping (late outcomes are normal), only for exposed units."""
        experiment = self.store.get(experiment_id)
        kinds = {spec.name: spec.kind for spec, _ in experiment.metrics}
        if experiment.cuped_covariate is not None:
            kinds[experiment.cuped_covariate] = MetricKind.CONTINUOUS
        if outcome.metric not in kinds:
            raise InvalidRequestError(
                field="metric", message=f"{outcome.metric!r} is not a metric of this experiment: {sorted(kinds)}"
            )
        if kinds[outcome.metric] is MetricKind.CONVERSION and outcome.value not in (0.0, 1.0):
            raise InvalidRequestError(field="value", message="a conversion metric takes 0 or 1")
        variant = self.store.exposure(experiment_id, outcome.unit_id)
        if variant is None:
            raise ExperimentConflictError(
                field="unit_id", message=f"unit {outcome.unit_id} was never assigned in experiment {experiment_id}"
            )
        self.store.record_outcomes(experiment_id, [(outcome.unit_id, outcome.metric, outcome.value)])
        return OutcomeRecorded(
            experiment_id=experiment_id,
            unit_id=outcome.unit_id,
            metric=outcome.metric,
            value=outcome.value,
            variant=variant,
        )

    def results(self, experiment_id: str) -> ExperimentResults:
        """The results now; each call is a look of the sequential test (see `experiment_results`)."""
        return experiment_results(self.store, experiment_id, self._clock())

    def stop(self, experiment_id: str, reason: str | None, actor: str) -> Experiment:
        """Stop it (idempotent: stopping a stopped experiment returns it unchanged); every stop request is
        audited, a repeated one too."""
        experiment = self.store.get(experiment_id)
        if experiment.status is not ExperimentStatus.STOPPED:
            experiment = self.store.stop(experiment, reason)
        self._audit.append(experiment_event(AuditEventType.EXPERIMENT_STOPPED, experiment_id, actor, reason=reason))
        return experiment
