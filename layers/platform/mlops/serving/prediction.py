"""What the scoring API does: predictions from the served model, with the running experiment applied, every one
audited before it is returned, counted in metrics and sampled for drift monitoring.

The duties around a prediction, in order:

1. score the requests (stored features filled in, `score_and_prepare`);
2. when an experiment splits the model's traffic, give each customer its variant and that variant's decision
   (the exposures are held back, see 4);
3. append the predictions to the audit trail: if that fails after its retries, the request fails (503,
   retryable), nothing is returned and no exposure is logged;
4. log the first exposures, only now: a unit never counts as exposed to a variant without an audited
   prediction of it. An exposure that cannot be logged fails the request (503, retryable): no variant is served
   uncounted. Its audit records stay (the trail is append-only), and the client's retry gets the same variant
   (assignment is deterministic) and logs the exposure (a unit already exposed is never rewritten);
5. emit the prediction metrics;
6. capture a sample of the inputs for drift monitoring, best effort: a failure is counted (`CaptureFailures`)
   and the answer still goes out. Synthetic traffic (the pilot's smoke test) is not captured.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from mlops.api.contracts import HealthResponse, ModelListResponse, ModelSummary, Prediction, PredictRequest
from mlops.audit.events import prediction_events
from mlops.audit.queue import AuditLog
from mlops.core.errors import ExperimentUnavailableError
from mlops.core.observability import MetricUnit, logger, metrics, record_dimensioned
from mlops.data.features import Columns
from mlops.experiments.serving import RunningExperimentProvider, serve_experiment
from mlops.experiments.store import ExperimentStore
from mlops.feature_store.online import OnlineFeatureLookup
from mlops.monitoring.capture import InferenceCapture, score_bucket
from mlops.registry.store import ModelRegistry
from mlops.serving.scoring import LoadedModel, ModelProvider, score_and_prepare


class ServedPredictions(NamedTuple):
    model_version: str
    """The version that scored the requests."""
    predictions: list[Prediction]


class PredictionService:
    """The scoring function's predictions, health and model list, for one model name."""

    def __init__(
        self,
        *,
        models: ModelProvider[LoadedModel],
        registry: ModelRegistry,
        lookup: OnlineFeatureLookup | None,
        experiments: RunningExperimentProvider | None,
        audit: AuditLog,
        capture: InferenceCapture | None,
    ) -> None:
        self._models = models
        self._registry = registry
        self._lookup = lookup
        self._experiments = experiments
        self._audit = audit
        self._capture = capture

    def predict(
        self,
        requests: Sequence[PredictRequest],
        *,
        caller: str,
        request_id: str,
        synthetic: bool = False,
        batch: bool = False,
    ) -> ServedPredictions:
        """Score, serve the running experiment, audit, log exposures, count and capture (module docstring).

        `caller` and `request_id` go into the audit records; `synthetic`: the traffic is not captured;
        `batch`: the requests are a batch body's `records` (a refusal names `records[i].…`)."""
        loaded = self._models.current()
        predictions, prepared, columns = score_and_prepare(requests, loaded, self._lookup, batch=batch)
        experiments = self._experiments
        running = experiments.current() if experiments else None
        exposures: dict[str, str] = {}  # logged only once the predictions are audited (4. in the module's docstring)
        if running is not None and experiments is not None:
            predictions, exposures = serve_experiment(predictions, prepared.inputs, running)
        self._audit.append_many(prediction_events(predictions, caller, request_id))
        if running is not None and experiments is not None:
            first = self._log_exposures(experiments.store, running[0].experiment_id, exposures)
            metrics.add_metric(name="ExperimentExposures", unit=MetricUnit.Count, value=first)
        _record_predictions(predictions)
        if not synthetic:
            self._capture_inputs(predictions, columns)
        return ServedPredictions(loaded.version.version, predictions)

    def health(self) -> HealthResponse:
        version = self._models.current_version()
        return HealthResponse(
            status="ok" if version else "no_model", model_name=self._models.model_name, model_version=version
        )

    def models(self) -> ModelListResponse:
        """Every registered version of the model, and which one production serves."""
        model_name = self._models.model_name
        production = self._registry.get_production(model_name)
        serving = production.version if production else None
        summaries = [
            ModelSummary(
                version=v.version,
                status=v.status.value,
                algorithm=v.algorithm,
                created_at=v.created_at,
                threshold=v.threshold,
                metrics={k: float(m) for k, m in v.metrics.items() if isinstance(m, int | float)},
                serving=v.version == serving,
            )
            for v in self._registry.list_versions(model_name)
        ]
        return ModelListResponse(model_name=model_name, production_version=serving, models=summaries)

    @staticmethod
    def _log_exposures(store: ExperimentStore, experiment_id: str, exposures: dict[str, str]) -> int:
        """Raises `ExperimentUnavailableError` (503, retryable) when the exposures cannot be logged."""
        try:
            return store.log_exposures(experiment_id, exposures)
        except (ClientError, BotoCoreError) as error:
            logger.error("Exposures not logged; request refused", extra={"error": type(error).__name__})
            raise ExperimentUnavailableError(
                field="experiment", message=f"the exposures to experiment {experiment_id} could not be logged"
            ) from error

    def _capture_inputs(self, predictions: list[Prediction], columns: Columns) -> None:
        """Best effort, unlike the audit record: a lost drift sample is counted, the answer still goes out."""
        if self._capture is None:
            return
        try:
            self._capture.write(predictions, columns)
        except (BotoCoreError, ClientError) as error:
            logger.warning("Inference capture failed", extra={"error": type(error).__name__})
            metrics.add_metric(name="CaptureFailures", unit=MetricUnit.Count, value=1)


def _record_predictions(predictions: list[Prediction]) -> None:
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=len(predictions))
    metrics.add_metric(name="PredictedChurn", unit=MetricUnit.Count, value=sum(p.churn_prediction for p in predictions))
    record_dimensioned(
        "PredictionsByVariant", MetricUnit.Count, Counter(p.variant or "none" for p in predictions), "variant"
    )
    record_dimensioned(
        "PredictionsByModelVersion", MetricUnit.Count, Counter(p.model_version for p in predictions), "model_version"
    )
    record_dimensioned(
        "ChurnScoreBucket", MetricUnit.Count, Counter(score_bucket(p.churn_probability) for p in predictions), "bucket"
    )
