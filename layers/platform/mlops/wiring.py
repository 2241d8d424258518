"""The one place where a function's settings become AWS clients, stores and the services built on them.

A handler module creates one `Wiring` for its settings model at import time and asks it for what it needs
(`wiring.registry`, `wiring.audit_log`, `wiring.prediction_service`). Nothing is built and no
environment variable is read until the first invocation asks, and everything is then built once per execution
environment: the module's lifetime, which is exactly Lambda's (a new environment imports the module afresh).

Each function ships only the layers it needs (no onnxruntime beside scipy), so what needs numpy, onnxruntime,
scipy, pandas or shap is imported by the property that builds it, not by this module.
"""

from __future__ import annotations

import datetime as dt
import functools
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from mlops.audit.events import audit_trail
from mlops.audit.queue import AuditQueue
from mlops.audit.trail import AuditTrail
from mlops.core.artifacts import ArtifactStore
from mlops.core.settings import FunctionSettings, load_settings
from mlops.experiments.serving import RunningExperimentProvider
from mlops.experiments.store import ExperimentStore
from mlops.feature_store.online import FeatureGroupCatalog, OnlineFeatureLookup, OnlineFeatureStore, online_lookup
from mlops.feature_store.service import FeatureStoreService
from mlops.registry.store import ModelRegistry

if TYPE_CHECKING:
    from mlops.experiments.service import ExperimentService
    from mlops.feature_store.offline import OfflineFeatureStore
    from mlops.monitoring.capture import InferenceCapture
    from mlops.monitoring.monitor import ModelMonitor
    from mlops.monitoring.outcomes import OutcomeLog
    from mlops.serving.batch import PlannedModels
    from mlops.serving.explain import ExplainableModel, ExplanationService
    from mlops.serving.prediction import PredictionService
    from mlops.serving.scoring import LoadedModel, ModelProvider

# The platform's stores retry throttling themselves (with backoff, then a retryable 503): botocore's legacy
# mode would add up to 10 attempts under each of theirs, past API Gateway's 29 s timeout.
_STANDARD_RETRIES = Config(retries={"mode": "standard", "max_attempts": 3})
# Short timeouts and one attempt: a lost drift sample is acceptable, a stalled prediction is not.
_CAPTURE = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1})


class Wiring[SettingsT: FunctionSettings]:
    """Settings, clients, stores and services of one function, each built on first use and kept."""

    def __init__(self, settings_type: type[SettingsT]) -> None:
        self._settings_type = settings_type
        self._clients: dict[tuple[str, int], Any] = {}

    @cached_property
    def settings(self) -> SettingsT:
        """Validated once per execution environment: a missing variable fails the first invocation loudly."""
        return load_settings(self._settings_type)

    def client(self, service_name: str, config: Config | None = None) -> Any:
        """One boto3 client per service (and configuration) for this environment."""
        key = (service_name, id(config))
        if key not in self._clients:
            self._clients[key] = boto3.client(service_name, config=config)
        return self._clients[key]

    @property
    def dynamodb(self) -> Any:
        return self.client("dynamodb", _STANDARD_RETRIES)

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @cached_property
    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.settings.registry_table, self.dynamodb)  # type: ignore[attr-defined]

    @cached_property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.settings.artifact_bucket, self.s3)  # type: ignore[attr-defined]

    @cached_property
    def experiment_store(self) -> ExperimentStore:
        return ExperimentStore(self.settings.experiments_table, self.dynamodb)  # type: ignore[attr-defined]

    @cached_property
    def feature_lookup(self) -> OnlineFeatureLookup | None:
        """None when the function has no feature table (callers then send every feature)."""
        return online_lookup(self.settings, self.dynamodb)  # type: ignore[arg-type]

    @cached_property
    def online_feature_store(self) -> OnlineFeatureStore:
        return OnlineFeatureStore(self.settings.feature_store_table, self.dynamodb)  # type: ignore[attr-defined]

    @cached_property
    def feature_catalog(self) -> FeatureGroupCatalog:
        return FeatureGroupCatalog(self.settings.feature_store_table, self.dynamodb)  # type: ignore[attr-defined]

    @cached_property
    def offline_feature_store(self) -> OfflineFeatureStore | None:
        """None when the function has no feature store bucket."""
        from mlops.feature_store.offline import OfflineFeatureStore

        bucket = getattr(self.settings, "feature_store_bucket", None)
        return OfflineFeatureStore(bucket, self.s3) if bucket else None

    @cached_property
    def audit_log(self) -> AuditQueue:
        """Where this function's audit records go: the audit queue, which the audit writer drains."""
        return AuditQueue(self.settings.audit_queue_url, self.client("sqs", _STANDARD_RETRIES))  # type: ignore[attr-defined]

    @cached_property
    def audit_chain(self) -> AuditTrail:
        """The audit writer's own chain of the audit table (one chain per execution environment)."""
        return audit_trail(self.settings.audit_table, self.dynamodb, writer="audit-writer")  # type: ignore[attr-defined]

    @cached_property
    def outcome_log(self) -> OutcomeLog:
        from mlops.monitoring.outcomes import OutcomeLog

        settings: Any = self.settings
        return OutcomeLog(settings.monitoring_bucket, self.s3, settings.model_name)

    @cached_property
    def inference_capture(self) -> InferenceCapture | None:
        """The scoring function's sample of what it scored; None without a bucket or with a zero sample rate."""
        from mlops.monitoring.capture import InferenceCapture

        settings: Any = self.settings
        if settings.monitoring_bucket is None or settings.capture_sample_rate == 0:
            return None
        s3 = self.client("s3", _CAPTURE)
        return InferenceCapture(settings.monitoring_bucket, s3, settings.model_name, settings.capture_sample_rate)

    @cached_property
    def model_provider(self) -> ModelProvider[LoadedModel]:
        """The production model (ONNX), loaded once and refreshed when the alias moves."""
        from mlops.serving.scoring import ModelProvider

        settings: Any = self.settings
        return ModelProvider(self.registry, self.artifacts, settings.model_name, settings.model_refresh_seconds)

    @cached_property
    def explainable_model_provider(self) -> ModelProvider[ExplainableModel]:
        """The production model with its scikit-learn model and TreeSHAP explainer (the explain function)."""
        from mlops.serving.explain import load_explainable_version
        from mlops.serving.scoring import ModelProvider

        settings: Any = self.settings
        return ModelProvider(
            self.registry,
            self.artifacts,
            settings.model_name,
            settings.model_refresh_seconds,
            loader=load_explainable_version,
        )

    @cached_property
    def experiment_provider(self) -> RunningExperimentProvider | None:
        """The model's running experiment; None when the function is not told where experiments are."""
        settings: Any = self.settings
        if settings.experiments_table is None:
            return None
        return RunningExperimentProvider(self.experiment_store, settings.model_name, settings.model_refresh_seconds)

    @cached_property
    def planned_models(self) -> PlannedModels:
        """The versions batch plans name (the batch-scoring state machine's chunks)."""
        from mlops.serving.batch import PlannedModels

        return PlannedModels(self.registry, self.artifacts, self.settings.model_name)  # type: ignore[attr-defined]

    @cached_property
    def prediction_service(self) -> PredictionService:
        from mlops.serving.prediction import PredictionService

        return PredictionService(
            models=self.model_provider,
            registry=self.registry,
            lookup=self.feature_lookup,
            experiments=self.experiment_provider,
            audit=self.audit_log,
            capture=self.inference_capture,
        )

    @cached_property
    def explanation_service(self) -> ExplanationService:
        from mlops.serving.explain import ExplanationService

        return ExplanationService(self.explainable_model_provider, self.feature_lookup, self.audit_log)

    @cached_property
    def feature_service(self) -> FeatureStoreService:
        lookup = self.feature_lookup
        if lookup is None:  # unreachable for FeaturesApiSettings, which requires FEATURE_STORE_TABLE
            raise RuntimeError("FEATURE_STORE_TABLE is not set")
        return FeatureStoreService(lookup, self.audit_log)

    @cached_property
    def experiment_service(self) -> ExperimentService:
        from mlops.experiments.service import ExperimentService

        return ExperimentService(self.experiment_store, self.audit_log)

    @cached_property
    def model_monitor(self) -> ModelMonitor:
        from mlops.monitoring.accuracy import audited_predictions
        from mlops.monitoring.capture import InferenceCapture
        from mlops.monitoring.drift import DriftThresholds
        from mlops.monitoring.monitor import ModelMonitor

        settings: Any = self.settings
        return ModelMonitor(
            model_name=settings.model_name,
            registry=self.registry,
            artifacts=self.artifacts,
            capture=InferenceCapture(settings.monitoring_bucket, self.s3, settings.model_name, sample_rate=0),
            outcomes=self.outcome_log,
            predictions=functools.partial(audited_predictions, settings.audit_table, self.dynamodb),
            reports=self.s3,
            reports_bucket=settings.monitoring_bucket,
            window_hours=settings.monitor_window_hours,
            outcome_lookback=dt.timedelta(days=settings.outcome_lookback_days),
            thresholds=DriftThresholds(
                psi=settings.drift_psi_threshold,
                chi_square_p_value=settings.drift_chi_square_p_value,
                min_rows=settings.drift_min_rows,
            ),
        )
