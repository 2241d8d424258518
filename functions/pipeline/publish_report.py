"""Pilot steps that need pandas and scikit-learn (container-image function, one handler per step)."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.audit.events import audit_trail, model_event
from mlops.audit.trail import AuditEventType
from mlops.core.artifacts import ArtifactStore
from mlops.core.observability import instrumented_handler, logger
from mlops.core.settings import AuditedModelStoreSettings, ModelStoreSettings, load_settings
from mlops.feature_store.offline import OfflineFeatureStore
from mlops.feature_store.online import FeatureGroupCatalog, OnlineFeatureStore
from mlops.pilot import training as pilot_training
from mlops.pilot.payloads import StepRequest
from mlops.pilot.report import publish as pilot_report
from mlops.pilot.settings import DataSettings, IngestionSettings
from mlops.registry.store import ModelRegistry, ModelStatus
from mlops.serving import batch as batch_scoring
from mlops.serving.batch_plan import BatchPlan, ChunkPlan
from mlops.serving.scoring import LoadedModel, load_model_version


def _artifacts(settings: ModelStoreSettings) -> ArtifactStore:
    return ArtifactStore(settings.artifact_bucket, boto3.client("s3"))


@instrumented_handler
def ingest_features(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(IngestionSettings)
    request = StepRequest.model_validate(event)
    dynamodb = boto3.client("dynamodb")
    report = pilot_training.ingest_features(
        request,
        ArtifactStore(settings.data_bucket, boto3.client("s3")),
        settings.feature_group,
        settings.feature_ttl_seconds,
        OnlineFeatureStore(settings.feature_store_table, dynamodb),
        OfflineFeatureStore(settings.feature_store_bucket, boto3.client("s3")),
        FeatureGroupCatalog(settings.feature_store_table, dynamodb),
        workers=settings.ingest_write_concurrency,
    )
    logger.info("Features ingested", extra={"rows": report.rows, "written": report.written})
    return report.model_dump(mode="json")


@instrumented_handler
def prepare_data(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(DataSettings)
    request = StepRequest.model_validate(event)
    s3 = boto3.client("s3")
    offline = OfflineFeatureStore(settings.feature_store_bucket, s3) if settings.feature_store_bucket else None
    report = pilot_training.prepare_data(
        request, ArtifactStore(settings.data_bucket, s3), _artifacts(settings), offline
    )
    logger.info("Data prepared", extra={"rows": report.rows, "positive_rate": report.positive_rate})
    return report.model_dump(mode="json")


@instrumented_handler
def train(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = StepRequest.model_validate(event)
    report = pilot_training.train(request, _artifacts(load_settings(ModelStoreSettings)))
    logger.info("Model trained", extra={"selected": report.selected_algorithm, "cv_auc": report.cv_auc})
    return report.model_dump(mode="json")


@instrumented_handler
def evaluate(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = StepRequest.model_validate(event)
    report = pilot_training.evaluate_model(request, _artifacts(load_settings(ModelStoreSettings)))
    logger.info("Model evaluated", extra={"meets_targets": report.meets_targets})
    return report.model_dump(mode="json")


@instrumented_handler
def register_model(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(AuditedModelStoreSettings)
    request = StepRequest.model_validate(event)
    dynamodb = boto3.client("dynamodb")
    registry = ModelRegistry(settings.registry_table, dynamodb)
    report = pilot_training.register_model(request, _artifacts(settings), registry, settings.model_name)
    dataset = request.require(request.pilot.dataset, "dataset")
    audit_trail(settings.audit_table, dynamodb, writer="register").append(
        model_event(
            AuditEventType.MODEL_REGISTERED,
            settings.model_name,
            report.model_version,
            actor=f"pilot:{request.execution_name}",
            status=ModelStatus.PENDING_APPROVAL.value,  # every version is registered awaiting approval
            execution_arn=request.execution_id,
            dataset_sha256=dataset.dataset_sha256,
            artifacts={name: ref.sha256 for name, ref in report.artifacts.items()},
        )
    )
    logger.info("Model registered", extra={"model_version": report.model_version})
    return report.model_dump(mode="json")


@instrumented_handler
def publish_report(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The pilot report (report.html, self-contained) beside the run's other artifacts."""
    settings = load_settings(ModelStoreSettings)
    ref = pilot_report.publish_report(StepRequest.model_validate(event), _artifacts(settings), settings.model_name)
    logger.info("Pilot report published", extra={"key": ref.key, "bytes": ref.size_bytes})
    return ref.model_dump(mode="json")


@cache
def _chunk_model(version: str) -> LoadedModel:
    """The version a batch plan named, loaded once per container (verified by SHA-256)."""
    settings = load_settings(ModelStoreSettings)
    registry = ModelRegistry(settings.registry_table, boto3.client("dynamodb"))
    return load_model_version(registry.get(settings.model_name, version), _artifacts(settings))


@instrumented_handler
def score_chunk(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One item of the batch-scoring Distributed Map: score a byte range of the input into its part."""
    batch, chunk = BatchPlan.model_validate(event["plan"]), ChunkPlan.model_validate(event["chunk"])
    rows = batch_scoring.score_chunk(_chunk_model(batch.model_version), boto3.client("s3"), batch, chunk)
    return {"index": chunk.index, "rows": rows}


handler = publish_report
