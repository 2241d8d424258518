"""Experiments on the scoring path: find the model's running experiment, assign units, serve the variant.

No numpy or scipy import here: the scoring function ships without the StatsLayer. A failure to read the
running experiment never fails a prediction (the last one known keeps serving). An exposure is never lost:
its write is retried, and if the table still refuses it the request fails (503, retryable) rather than serve
a variant the analysis would not count; exposures already written stay, and a retried request finds them
(the write is conditional, so none is duplicated).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mlops.api.contracts import Prediction
from mlops.core.errors import ExperimentUnavailableError
from mlops.core.observability import logger
from mlops.experiments.assignment import Assigner
from mlops.experiments.models import DecisionPolicy, Experiment, ExperimentStatus
from mlops.experiments.store import ExperimentStore

SERVICE_CALLS = "number_customer_service_calls"
SERVICE_CALLS_LIMIT = 3
"""The baseline rule: more than 3 customer service calls -> churn (the feature `high_service_calls`)."""


def assigner_of(experiment: Experiment) -> Assigner:
    return Assigner(experiment.salt, [v.name for v in experiment.variants], [v.weight for v in experiment.variants])


class RunningExperimentProvider:
    """The experiment splitting a model's traffic, re-read at most every `refresh_seconds` (like the model alias)."""

    def __init__(
        self,
        store: ExperimentStore,
        model_name: str,
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._model_name = model_name
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._experiment: Experiment | None = None
        self._assigner: Assigner | None = None
        self._checked_at = float("-inf")

    @property
    def store(self) -> ExperimentStore:
        return self._store

    def current(self) -> tuple[Experiment, Assigner] | None:
        now = self._clock()
        if now - self._checked_at >= self._refresh_seconds:
            self._checked_at = now
            try:
                experiment = self._store.running_for_model(self._model_name)
            except (ClientError, BotoCoreError) as error:
                logger.error("Cannot read the running experiment; keeping the last one", extra={"error": str(error)})
            else:
                if experiment is None or experiment.status is not ExperimentStatus.RUNNING:
                    self._experiment, self._assigner = None, None
                elif self._experiment is None or experiment.experiment_id != self._experiment.experiment_id:
                    self._experiment, self._assigner = experiment, assigner_of(experiment)
                    logger.info("Serving experiment", extra={"experiment_id": experiment.experiment_id})
        if self._experiment is None or self._assigner is None:
            return None
        return self._experiment, self._assigner


def service_calls_of(prepared_inputs: dict[str, Any]) -> list[float] | None:
    """Customer service calls per row, as the model saw them (imputed when missing); None if not a model input."""
    column = prepared_inputs.get(SERVICE_CALLS)
    return None if column is None else [float(value) for value in column.reshape(-1)]


def serve_experiment(
    predictions: Sequence[Prediction],
    service_calls: Sequence[float] | None,
    running: tuple[Experiment, Assigner],
    store: ExperimentStore,
) -> tuple[list[Prediction], int]:
    """Each prediction with its unit's variant and that variant's decision; logs first exposures.

    Returns the served predictions and the number of first exposures logged by this call.
    Raises `ExperimentUnavailableError` when an exposure cannot be logged (after retries).
    """
    experiment, assigner = running
    served, first_exposures, logged = [], 0, set()
    for row, prediction in enumerate(predictions):
        variant = assigner.assign(prediction.customer_id)
        policy = experiment.variant(variant).serves
        decision = prediction.churn_prediction
        if policy is DecisionPolicy.SERVICE_CALLS_RULE:
            if service_calls is None:
                raise ValueError(f"the baseline rule needs {SERVICE_CALLS}, which this model does not use")
            decision = service_calls[row] > SERVICE_CALLS_LIMIT
        elif policy is DecisionPolicy.NO_ACTION:
            decision = False
        if prediction.customer_id not in logged:  # a batch may hold a customer twice: one exposure
            logged.add(prediction.customer_id)
            try:
                first_exposures += store.log_exposure(experiment.experiment_id, prediction.customer_id, variant)
            except (ClientError, BotoCoreError) as error:
                logger.error("Exposure not logged; request refused", extra={"error": str(error)})
                raise ExperimentUnavailableError(
                    field="experiment",
                    message=f"the exposure to experiment {experiment.experiment_id} could not be logged",
                ) from error
        served.append(
            prediction.model_copy(
                update={"churn_prediction": decision, "variant": variant, "experiment_id": experiment.experiment_id}
            )
        )
    return served, first_exposures
