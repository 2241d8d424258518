"""Online and batch scoring: the production model, loaded once per container and refreshed on deployment."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from mlops.api.contracts import FeatureSource, Prediction, PredictRequest
from mlops.audit.events import input_sha256
from mlops.core.artifacts import ArtifactStore
from mlops.core.errors import (
    ArtifactIntegrityError,
    EntityNotFoundError,
    FeatureValidationError,
    ModelNotFoundError,
    ModelUnavailableError,
)
from mlops.core.observability import MetricUnit, logger, metrics
from mlops.data.feature_spec import FeatureSpec
from mlops.data.features import Columns, PreparedFeatures, imputed_features, records_to_columns
from mlops.feature_store.online import FeatureRecord, OnlineFeatureLookup
from mlops.registry.store import ModelRegistry, ModelVersion
from mlops.serving.onnx_model import OnnxChurnModel


@dataclass(frozen=True)
class LoadedModel:
    version: ModelVersion
    spec: FeatureSpec
    model: OnnxChurnModel


def load_model_version(version: ModelVersion, store: ArtifactStore) -> LoadedModel:
    """Fetch a version's ONNX graph and feature spec, each verified against its recorded SHA-256."""
    spec = FeatureSpec.model_validate_json(store.get_verified(version.artifacts["feature_spec"]))
    model = OnnxChurnModel(store.get_verified(version.artifacts["onnx"]), spec)
    return LoadedModel(version=version, spec=spec, model=model)


class VersionedModel(Protocol):
    """Whatever a provider serves: a model loaded from one registered version."""

    @property
    def version(self) -> ModelVersion: ...


class ModelProvider[ModelT: VersionedModel = LoadedModel]:
    """The production model of one model name, as this execution environment currently serves it.

    The production alias is re-read at most every `refresh_seconds`, so a deployment reaches warm containers
    without redeploying the function. A version that fails to load (artifact missing or tampered with) is
    refused and the model already loaded keeps serving. `loader` turns a version into what the function
    serves: the ONNX graph for scoring (the default), the scikit-learn model and its explainer for
    explanations (`mlops.serving.explain.load_explainable_version`), so both follow the same alias the same way.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        store: ArtifactStore,
        model_name: str,
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        loader: Callable[[ModelVersion, ArtifactStore], ModelT] = load_model_version,  # type: ignore[assignment]
    ) -> None:
        self._registry = registry
        self._store = store
        self._model_name = model_name
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._loader = loader
        self._loaded: ModelT | None = None
        self._checked_at = float("-inf")

    @property
    def model_name(self) -> str:
        return self._model_name

    def current(self, *, recheck: bool = False) -> ModelT:
        """The served model; `recheck` re-reads the alias now instead of waiting for the refresh interval."""
        now = self._clock()
        if recheck or self._loaded is None or now - self._checked_at >= self._refresh_seconds:
            self._refresh(now)
        if self._loaded is None:
            raise ModelUnavailableError(field="model", message=f"no version of {self._model_name} is deployed")
        return self._loaded

    def current_version(self) -> str | None:
        try:
            return self.current().version.version
        except (ModelUnavailableError, ArtifactIntegrityError):
            return None

    def _refresh(self, now: float) -> None:
        try:
            alias = self._registry.get_production(self._model_name)
        except (ClientError, BotoCoreError) as error:
            if self._loaded is not None:
                logger.warning("Registry unreachable; serving the loaded model", extra={"error": str(error)})
                return
            raise ModelUnavailableError(
                field="model", message="the model registry is unreachable", retryable=True
            ) from error
        self._checked_at = now
        if alias is None:
            self._loaded = None
            return
        if self._loaded is not None and self._loaded.version.version == alias.version:
            return
        try:
            self._loaded = self._loader(self._registry.get(self._model_name, alias.version), self._store)
            logger.info("Loaded model version", extra={"model_version": alias.version})
        except (ArtifactIntegrityError, ModelNotFoundError, ClientError, BotoCoreError) as error:
            tampered = isinstance(error, ArtifactIntegrityError)
            serving = self._loaded.version.version if self._loaded is not None else None
            logger.error(
                "Refusing to load model version",
                extra={"model_version": alias.version, "still_serving": serving, "error": str(error)},
            )
            metrics.add_metric(
                name="ModelIntegrityFailures" if tampered else "ModelLoadFailures", unit=MetricUnit.Count, value=1
            )
            if self._loaded is not None:
                return
            if tampered:  # waiting does not mend an artifact: not retryable, unlike a store that did not answer
                raise ArtifactIntegrityError(
                    field="model", message=f"model version {alias.version} failed its integrity check"
                ) from error
            raise ModelUnavailableError(
                field="model", message=f"model version {alias.version} could not be loaded", retryable=True
            ) from error


@dataclass(frozen=True)
class ResolvedRequest:
    """A request with its stored features merged in: the request's own values win over stored ones."""

    request: PredictRequest
    sources: dict[str, FeatureSource]
    record: FeatureRecord | None


def with_stored_features(
    requests: Sequence[PredictRequest], spec: FeatureSpec, lookup: OnlineFeatureLookup | None, *, batch: bool = False
) -> list[ResolvedRequest]:
    """Fill in each request's missing model inputs from the online feature store (`batch`: the requests are the
    `records` of a batch body, so a refusal names `records[i].customer_id`, even in a batch of one).

    Only customers whose request lacks an input are looked up (one BatchGetItem per 100 of them). A request
    with no features at all needs a stored record: without one it is refused (404), not scored on imputed
    values. A request that names some features is scored on them plus whatever the store has.
    """
    inputs = spec.data_schema.feature_columns
    incomplete = [r.customer_id for r in requests if any(name not in r.features for name in inputs)]
    records: dict[str, FeatureRecord] = {}
    if lookup is not None and incomplete:
        try:
            records = lookup.records(incomplete, inputs)
        except EntityNotFoundError:
            records = {}  # the group was never ingested: nothing is stored for anyone
    resolved = []
    for index, request in enumerate(requests):
        record = records.get(request.customer_id)
        if record is None and not request.features and lookup is not None:
            field = f"records[{index}].customer_id" if batch or len(requests) > 1 else "customer_id"
            raise EntityNotFoundError(
                field=field, message=f"no stored features for {request.customer_id!r}; send its features instead"
            )
        stored = {k: v for k, v in record.values.items() if v is not None} if record else {}
        sources: dict[str, FeatureSource] = {
            name: "request" if name in request.features else "store" if name in stored else "imputed" for name in inputs
        }
        merged = request.model_copy(update={"features": {**stored, **request.features}}) if stored else request
        resolved.append(ResolvedRequest(request=merged, sources=sources, record=record if stored else None))
    return resolved


class ScoredRequests(NamedTuple):
    predictions: list[Prediction]
    prepared: PreparedFeatures
    """The model inputs (explanations reuse them, so they explain exactly what /predict scored)."""
    columns: Columns
    """The raw inputs scored, stored features merged in, before imputation (what drift monitoring captures)."""


def score_and_prepare(
    requests: Sequence[PredictRequest],
    loaded: LoadedModel,
    lookup: OnlineFeatureLookup | None = None,
    *,
    batch: bool = False,
) -> ScoredRequests:
    """Score validated API requests with one vectorised pass through feature preparation and ONNX, after
    filling in stored features (`with_stored_features`). `batch`: the requests are a batch body's `records`, so
    a refused value is named `records[i].…` even in a batch of one."""
    resolved = with_stored_features(requests, loaded.spec, lookup, batch=batch)
    columns = _columns_naming_the_bad_record([r.request for r in resolved], loaded.spec, batch=batch)
    probabilities, prepared = loaded.model.score_columns(columns)
    threshold = loaded.version.threshold
    decisions = probabilities >= threshold
    predictions = []
    for row, item in enumerate(resolved):
        imputed = imputed_features(prepared, row)
        # a value the model had never seen (e.g. a new category) is imputed whatever its source
        sources: dict[str, FeatureSource] = {**item.sources, **dict.fromkeys(imputed, "imputed")}
        predictions.append(
            Prediction(
                prediction_id=str(uuid.uuid4()),
                customer_id=item.request.customer_id,
                churn_probability=round(float(probabilities[row]), 6),
                churn_prediction=bool(decisions[row]),
                threshold=threshold,
                model_version=loaded.version.version,
                imputed_features=imputed,
                input_sha256=input_sha256(item.request.features),
                feature_sources=sources,
                feature_event_time=item.record.event_time.isoformat() if item.record else None,
                feature_status=item.record.status if item.record else None,
            )
        )
    return ScoredRequests(predictions, prepared, columns)


def _columns_naming_the_bad_record(
    requests: Sequence[PredictRequest], spec: FeatureSpec, *, batch: bool
) -> dict[str, np.ndarray]:
    try:
        return records_to_columns([r.features for r in requests], spec)
    except FeatureValidationError as error:
        if (len(requests) == 1 and not batch) or error.record_index is None:
            raise
        raise FeatureValidationError(
            field=f"records[{error.record_index}].{error.field}", message=error.message
        ) from None


__all__ = [
    "LoadedModel",
    "ModelProvider",
    "ScoredRequests",
    "VersionedModel",
    "load_model_version",
    "score_and_prepare",
    "with_stored_features",
]
