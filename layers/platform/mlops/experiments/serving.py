"""Experiments on the scoring path: find the model's running experiment, assign units, serve the variant.

No numpy or scipy import here: the scoring function ships without the StatsLayer. A failure to read the
running experiment never fails a prediction (the last one known keeps serving). Exposures are logged by the
prediction service once the predictions are audited (`mlops.serving.prediction`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mlops.api.contracts import Prediction
from mlops.core.observability import logger
from mlops.experiments.assignment import Assigner
from mlops.experiments.models import DecisionPolicy, Experiment, ExperimentStatus
from mlops.experiments.store import ExperimentStore


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


def rule_decisions(experiment: Experiment, model_inputs: Mapping[str, Any]) -> dict[str, list[bool]]:
    """Per variant that serves a rule, its decision per row, on the inputs as the model saw them (missing
    numbers imputed). Raises `ValueError` when the rule's column is not an input of the served model."""
    decisions = {}
    for variant in experiment.variants:
        if variant.rule is None:
            continue
        column = model_inputs.get(variant.rule.column)
        if column is None:
            raise ValueError(f"the rule {variant.rule} needs {variant.rule.column}, which this model does not use")
        decisions[variant.name] = variant.rule.applies(column.reshape(-1).tolist())
    return decisions


def serve_experiment(
    predictions: Sequence[Prediction], model_inputs: Mapping[str, Any], running: tuple[Experiment, Assigner]
) -> tuple[list[Prediction], dict[str, str]]:
    """Each prediction with its unit's variant and that variant's decision, and the exposures to log (unit ->
    variant; a customer twice in a batch is one exposure). The caller logs them once the predictions are
    audited (`ExperimentStore.log_exposures`), so that no unit counts as exposed without a served prediction."""
    experiment, assigner = running
    rules = rule_decisions(experiment, model_inputs)
    served, exposures = [], {}
    for row, prediction in enumerate(predictions):
        variant = assigner.assign(prediction.customer_id)
        policy = experiment.variant(variant).serves
        decision = prediction.churn_prediction
        if policy is DecisionPolicy.RULE:
            decision = rules[variant][row]
        elif policy is DecisionPolicy.NO_ACTION:
            decision = False
        exposures[prediction.customer_id] = variant
        served.append(
            prediction.model_copy(
                update={"churn_prediction": decision, "variant": variant, "experiment_id": experiment.experiment_id}
            )
        )
    return served, exposures
