"""The scheduled model monitor: drift of captured inputs against the training baseline, and accuracy on logged
outcomes joined with the audited predictions (`run_monitor`); its report is stored under `monitoring/<model>/`
and emitted as the metrics the alarms watch (`ModelMonitor`, what the scheduled function runs). Capture records
become the columns drift is measured on through `columns_from_records`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops.core.artifacts import ArtifactStore
from mlops.core.clock import utc
from mlops.core.observability import MetricUnit, logger, metrics
from mlops.data.feature_spec import FeatureSpec
from mlops.data.features import Columns
from mlops.data.schema import DataSchema
from mlops.monitoring.accuracy import AccuracyReport, measure_accuracy
from mlops.monitoring.baseline import DriftBaseline
from mlops.monitoring.capture import InferenceCapture
from mlops.monitoring.drift import SCORE_KEY, DriftReport, DriftThresholds, detect_drift
from mlops.monitoring.outcomes import OutcomeLog
from mlops.registry.store import ModelRegistry

REPORTS_PREFIX = "monitoring"
MAX_WINDOW_HOURS = 24 * 31


class MonitorRequest(BaseModel):
    """The scheduled event (EventBridge: no fields) or a direct invoke. The window ends at `until` (default now)
    and starts at `since`, or `window_hours` before its end (default: the function's MONITOR_WINDOW_HOURS)."""

    model_config = ConfigDict(extra="ignore")

    window_hours: float | None = Field(default=None, gt=0, le=MAX_WINDOW_HOURS)
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    @model_validator(mode="after")
    def _bounded(self) -> MonitorRequest:
        if self.since is not None:
            end = utc(self.until)
            if not utc(self.since) < end:
                raise ValueError("since must be before until")
            if end - utc(self.since) > dt.timedelta(hours=MAX_WINDOW_HOURS):
                raise ValueError(f"the window may span at most {MAX_WINDOW_HOURS} hours")
        return self

    def window(self, default_hours: float) -> tuple[dt.datetime, dt.datetime]:
        end = utc(self.until)
        start = utc(self.since) if self.since else end - dt.timedelta(hours=self.window_hours or default_hours)
        return start, end


class MonitoringReport(BaseModel):
    model_name: str
    model_version: str | None
    generated_at: dt.datetime
    window_start: dt.datetime
    window_end: dt.datetime
    captured_rows: int
    drift: DriftReport | None = Field(description="None: no production model or no baseline stored with it.")
    accuracy: AccuracyReport
    report_key: str | None = None


def run_monitor(
    *,
    model_name: str,
    registry: ModelRegistry,
    artifacts: ArtifactStore,
    capture: InferenceCapture,
    outcomes: OutcomeLog,
    predictions: Callable[[dt.datetime, dt.datetime], Iterator[tuple[str, dict[str, Any]]]],
    window: tuple[dt.datetime, dt.datetime],
    outcome_lookback: dt.timedelta,
    thresholds: DriftThresholds,
) -> MonitoringReport:
    """Drift of the production model's inputs captured in `window` (start, end), and its accuracy on the
    outcomes logged in `window`, joined with the predictions made up to `outcome_lookback` before it."""
    start, end = window
    alias = registry.get_production(model_name)
    version = alias.version if alias else None
    production = registry.get(model_name, version) if version else None
    rows = capture.read(start, end, model_version=version) if version else []
    drift = None
    if production is not None and "drift_baseline" in production.artifacts:
        baseline = DriftBaseline.model_validate_json(artifacts.get_verified(production.artifacts["drift_baseline"]))
        spec = FeatureSpec.model_validate_json(artifacts.get_verified(production.artifacts["feature_spec"]))
        columns, scores = columns_from_records(rows, spec.data_schema)
        drift = detect_drift(baseline, columns, scores, thresholds)
    logged = outcomes.read(start, end)
    accuracy = (
        measure_accuracy(logged, predictions(start - outcome_lookback, end), version)
        if logged
        else AccuracyReport(outcomes=0, matched=0, sufficient_data=False)
    )
    return MonitoringReport(
        model_name=model_name,
        model_version=version,
        generated_at=utc(),
        window_start=start,
        window_end=end,
        captured_rows=len(rows),
        drift=drift,
        accuracy=accuracy,
    )


def columns_from_records(records: Sequence[Mapping[str, Any]], schema: DataSchema) -> tuple[Columns, np.ndarray]:
    """Capture records (``{"features": {...}, "churn_probability": p}``) as :data:`Columns` and scores.

    A missing key or ``None`` is missing (NaN / ``None``); integer categories become ``str`` as in
    :func:`mlops.data.features.records_to_columns`. The records were validated when scored, so any other
    unexpected value is counted as missing rather than failing the whole drift check.
    """
    features = [record.get("features") or {} for record in records]
    columns: Columns = {
        name: np.array([_number(row.get(name)) for row in features], dtype=np.float64) for name in schema.numerical
    }
    for name in schema.categorical:
        columns[name] = np.array([_text(row.get(name)) for row in features], dtype=object)
    scores = np.array([_number(record.get(SCORE_KEY)) for record in records], dtype=np.float64)
    return columns, scores


def _number(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return np.nan


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def store_report(reports: Any, bucket: str, report: MonitoringReport) -> MonitoringReport:
    """Keep every report (by time) and the latest one at a fixed key."""
    prefix = f"{REPORTS_PREFIX}/{report.model_name}"
    key = f"{prefix}/reports/{report.generated_at:%Y/%m/%d/%H%M%S}.json"
    stored = report.model_copy(update={"report_key": key})
    body = stored.model_dump_json(indent=2).encode()
    for target in (key, f"{prefix}/latest.json"):
        reports.put_object(Bucket=bucket, Key=target, Body=body, ContentType="application/json")
    return stored


def latest_report(s3_client: Any, bucket: str, model_name: str) -> MonitoringReport | None:
    try:
        body = s3_client.get_object(Bucket=bucket, Key=f"{REPORTS_PREFIX}/{model_name}/latest.json")["Body"].read()
    except ClientError as error:
        if error.response["Error"]["Code"] in {"NoSuchKey", "404"}:
            return None
        raise
    return MonitoringReport.model_validate_json(body)


class ModelMonitor:
    """One model's monitor as a function runs it: the report of a window, stored, then emitted as metrics."""

    def __init__(
        self,
        *,
        model_name: str,
        registry: ModelRegistry,
        artifacts: ArtifactStore,
        capture: InferenceCapture,
        outcomes: OutcomeLog,
        predictions: Callable[[dt.datetime, dt.datetime], Iterator[tuple[str, dict[str, Any]]]],
        reports: Any,
        reports_bucket: str,
        window_hours: float,
        outcome_lookback: dt.timedelta,
        thresholds: DriftThresholds,
    ) -> None:
        self._model_name = model_name
        self._registry = registry
        self._artifacts = artifacts
        self._capture = capture
        self._outcomes = outcomes
        self._predictions = predictions
        self._reports = reports
        self._reports_bucket = reports_bucket
        self._window_hours = window_hours
        self._outcome_lookback = outcome_lookback
        self._thresholds = thresholds

    def run(self, request: MonitorRequest) -> MonitoringReport:
        """The report of the request's window (default: the last `window_hours`), stored and emitted."""
        report = run_monitor(
            model_name=self._model_name,
            registry=self._registry,
            artifacts=self._artifacts,
            capture=self._capture,
            outcomes=self._outcomes,
            predictions=self._predictions,
            window=request.window(self._window_hours),
            outcome_lookback=self._outcome_lookback,
            thresholds=self._thresholds,
        )
        report = store_report(self._reports, self._reports_bucket, report)
        emit_metrics(report)
        logger.info(
            "Model monitored",
            extra={
                "model_version": report.model_version,
                "captured_rows": report.captured_rows,
                "drift_detected": report.drift.drift_detected if report.drift else None,
                "accuracy": report.accuracy.accuracy,
            },
        )
        return report


def emit_metrics(report: MonitoringReport) -> None:
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
