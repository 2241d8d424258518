"""Model monitoring: POST /outcomes and GET /monitoring/latest, and the scheduled monitor.

Outcomes (did the customer churn?) are logged to MONITORING_BUCKET. The hourly monitor compares the inputs the
scoring function captured in its window with the drift baseline stored beside the production model, measures
accuracy on the outcomes of its window joined with the audited predictions, stores its report and emits the
metrics the alarms of template.yaml watch (DriftDetected, ModelAccuracy, ...).
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.api.rest import create_rest_app, request_id, resolve_json_api
from mlops.core.artifacts import ArtifactStore
from mlops.core.errors import EntityNotFoundError
from mlops.core.observability import MetricUnit, instrumented_handler, logger, metrics
from mlops.core.settings import MonitoringSettings, load_settings
from mlops.monitoring.capture import InferenceCapture, OutcomeLog, OutcomesAccepted, OutcomesRequest
from mlops.monitoring.drift import DriftThresholds
from mlops.monitoring.monitor import (
    MonitoringReport,
    MonitorRequest,
    audited_predictions,
    latest_report,
    run_monitor,
    store_report,
)
from mlops.registry.store import ModelRegistry

app = create_rest_app()


@cache
def _settings() -> MonitoringSettings:
    return load_settings(MonitoringSettings)


@app.post("/outcomes")
def log_outcomes(request: OutcomesRequest) -> OutcomesAccepted:
    settings = _settings()
    log = OutcomeLog(settings.monitoring_bucket, boto3.client("s3"), settings.model_name)
    key = log.write(request.outcomes, request_id(app))
    metrics.add_metric(name="OutcomesLogged", unit=MetricUnit.Count, value=len(request.outcomes))
    return OutcomesAccepted(accepted=len(request.outcomes), key=key)


@app.get("/monitoring/latest")
def latest() -> MonitoringReport:
    settings = _settings()
    report = latest_report(boto3.client("s3"), settings.monitoring_bucket, settings.model_name)
    if report is None:
        raise EntityNotFoundError(field="model_name", message=f"no monitoring report yet for {settings.model_name!r}")
    return report


def _resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_json_api(app, event, context)


handler = instrumented_handler(_resolve, api=True)


@instrumented_handler
def monitor(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Scheduled (EventBridge) or invoked by the pilot: one monitoring report, stored and emitted as metrics."""
    request = MonitorRequest.model_validate(event if isinstance(event, dict) else {})
    settings = _settings()
    s3, dynamodb = boto3.client("s3"), boto3.client("dynamodb")
    report = run_monitor(
        model_name=settings.model_name,
        registry=ModelRegistry(settings.registry_table, dynamodb),
        artifacts=ArtifactStore(settings.artifact_bucket, s3),
        capture=InferenceCapture(settings.monitoring_bucket, s3, settings.model_name, sample_rate=0),
        outcomes=OutcomeLog(settings.monitoring_bucket, s3, settings.model_name),
        predictions=lambda since, until: audited_predictions(settings.audit_table, dynamodb, since, until),
        window=request.window(settings.monitor_window_hours),
        outcome_lookback=dt.timedelta(days=settings.outcome_lookback_days),
        thresholds=DriftThresholds(
            psi=settings.drift_psi_threshold,
            chi_square_p_value=settings.drift_chi_square_p_value,
            min_rows=settings.drift_min_rows,
        ),
    )
    report = store_report(s3, settings.monitoring_bucket, report)
    _emit(report)
    logger.info(
        "Model monitored",
        extra={
            "model_version": report.model_version,
            "captured_rows": report.captured_rows,
            "drift_detected": report.drift.drift_detected if report.drift else None,
            "accuracy": report.accuracy.accuracy,
        },
    )
    return report.model_dump(mode="json")


def _emit(report: MonitoringReport) -> None:
    """Metrics only where there is a verdict, so an alarm on a quiet hour sees missing data, not a zero."""
    metrics.add_metric(name="MonitoredRows", unit=MetricUnit.Count, value=report.captured_rows)
    drift = report.drift
    if drift is not None and drift.sufficient_data:
        metrics.add_metric(name="DriftDetected", unit=MetricUnit.Count, value=int(drift.drift_detected))
        metrics.add_metric(name="DriftedFeatures", unit=MetricUnit.Count, value=len(drift.drifted_features))
        metrics.add_metric(name="MaxFeaturePSI", unit=MetricUnit.NoUnit, value=drift.max_feature_psi)
        if drift.score_psi is not None:
            metrics.add_metric(name="ScorePSI", unit=MetricUnit.NoUnit, value=drift.score_psi)
    accuracy = report.accuracy
    metrics.add_metric(name="OutcomesMatched", unit=MetricUnit.Count, value=accuracy.matched)
    if accuracy.sufficient_data and accuracy.accuracy is not None:
        metrics.add_metric(name="ModelAccuracy", unit=MetricUnit.NoUnit, value=accuracy.accuracy)
        metrics.add_metric(name="ModelRecall", unit=MetricUnit.NoUnit, value=accuracy.recall or 0.0)


handler = monitor
