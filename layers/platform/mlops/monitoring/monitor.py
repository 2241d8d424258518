"""The scheduled model monitor: drift of captured inputs against the training baseline, and accuracy on logged
outcomes joined with the audited predictions (`run_monitor`); its report is stored under `monitoring/<model>/`
and emitted as the metrics the alarms watch (`ModelMonitor`, what the scheduled function runs). Capture records
become the columns drift is measured on through `columns_from_records`, each prediction once.

The window is the last `window_hours` by default: the hourly alarm's, whose accuracy is that of the outcomes
logged in it. A caller that must judge exactly some traffic (the pilot's later window) names its
`window_start` (and `window_end`, default now): then the predictions made in it are judged, by the outcomes
logged from its start until the monitor runs (`AccuracyScope`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from botocore.exceptions import ClientError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from mlops.core.artifacts import ArtifactStore
from mlops.core.clock import utc
from mlops.core.observability import MetricUnit, logger, metrics
from mlops.data.feature_spec import FeatureSpec
from mlops.data.features import Columns
from mlops.data.schema import DataSchema
from mlops.monitoring.accuracy import AccuracyReport, AccuracyScope, AccuracyWindow, measure_accuracy
from mlops.monitoring.baseline import DriftBaseline
from mlops.monitoring.capture import InferenceCapture, distinct_predictions
from mlops.monitoring.drift import SCORE_KEY, DriftReport, DriftThresholds, detect_drift
from mlops.monitoring.outcomes import OutcomeLog
from mlops.registry.store import ModelRegistry

REPORTS_PREFIX = "monitoring"
MAX_WINDOW_HOURS = 24 * 31


class MonitorRequest(BaseModel):
    """The scheduled event (EventBridge: its fields are not the monitor's) or a direct invoke. The window ends at
    `window_end` (default now) and starts at `window_start`, or `window_hours` before its end (default: the
    function's MONITOR_WINDOW_HOURS). An explicit `window_start` judges the window's own predictions."""

    model_config = ConfigDict(extra="ignore")

    window_hours: float | None = Field(default=None, gt=0, le=MAX_WINDOW_HOURS)
    window_start: AwareDatetime | None = Field(
        default=None, description="The window's start (inclusive, with a time zone); wins over window_hours."
    )
    window_end: AwareDatetime | None = Field(
        default=None, description="The window's end (inclusive, with a time zone); default now."
    )

    @model_validator(mode="after")
    def _bounded(self) -> MonitorRequest:
        if self.window_start is not None:
            start, end = self.window(MAX_WINDOW_HOURS)
            if not start < end:
                raise ValueError("window_start must be before window_end")
            if end - start > dt.timedelta(hours=MAX_WINDOW_HOURS):
                raise ValueError(f"the window may span at most {MAX_WINDOW_HOURS} hours")
        return self

    def window(self, default_hours: float) -> tuple[dt.datetime, dt.datetime]:
        end = utc(self.window_end)
        if self.window_start is not None:
            return utc(self.window_start), end
        return end - dt.timedelta(hours=self.window_hours or default_hours), end

    @property
    def accuracy_scope(self) -> AccuracyScope:
        return AccuracyScope.RECENT_OUTCOMES if self.window_start is None else AccuracyScope.WINDOW_PREDICTIONS


class MonitoringReport(BaseModel):
    model_name: str
    model_version: str | None
    generated_at: dt.datetime
    window_start: dt.datetime = Field(description="Rows captured from here (inclusive)...")
    window_end: dt.datetime = Field(description="...to here (inclusive); accuracy.window says which outcomes.")
    captured_rows: int = Field(description="Distinct predictions captured in the window (what drift judged).")
    duplicate_captured_rows: int = Field(default=0, description="Rows of a prediction captured again, left out.")
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
    accuracy_scope: AccuracyScope = AccuracyScope.RECENT_OUTCOMES,
) -> MonitoringReport:
    """Drift of the production model's inputs captured in `window` (start, end), and its accuracy on the
    outcomes and predictions `accuracy_scope` gives (by default the outcomes logged in `window`, joined with the
    predictions made up to `outcome_lookback` before it)."""
    generated_at = utc()
    start, end = window
    alias = registry.get_production(model_name)
    version = alias.version if alias else None
    production = registry.get(model_name, version) if version else None
    rows, duplicates = distinct_predictions(capture.read(start, end, model_version=version) if version else [])
    drift = None
    if production is not None and "drift_baseline" in production.artifacts:
        baseline = DriftBaseline.model_validate_json(artifacts.get_verified(production.artifacts["drift_baseline"]))
        spec = FeatureSpec.model_validate_json(artifacts.get_verified(production.artifacts["feature_spec"]))
        columns, scores = columns_from_records(rows, spec.data_schema)
        drift = detect_drift(baseline, columns, scores, thresholds)
    joined = AccuracyWindow.of(accuracy_scope, window, outcome_lookback, generated_at)
    logged = outcomes.read(joined.outcomes_logged_from, joined.outcomes_logged_to)
    accuracy = (
        measure_accuracy(logged, predictions(joined.predictions_from, joined.predictions_to), version, window=joined)
        if logged
        else AccuracyReport(window=joined, outcomes=0, matched=0, sufficient_data=False)
    )
    return MonitoringReport(
        model_name=model_name,
        model_version=version,
        generated_at=generated_at,
        window_start=start,
        window_end=end,
        captured_rows=len(rows),
        duplicate_captured_rows=duplicates,
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
            accuracy_scope=request.accuracy_scope,
        )
        report = store_report(self._reports, self._reports_bucket, report)
        emit_metrics(report)
        logger.info(
            "Model monitored",
            extra={
                "model_version": report.model_version,
                "window_start": report.window_start.isoformat(),
                "window_end": report.window_end.isoformat(),
                "captured_rows": report.captured_rows,
                "duplicate_captured_rows": report.duplicate_captured_rows,
                "drift_detected": report.drift.drift_detected if report.drift else None,
                "accuracy_scope": report.accuracy.window.scope if report.accuracy.window else None,
                "outcomes_matched": report.accuracy.matched,
                "accuracy": report.accuracy.accuracy,
                "auc": report.accuracy.auc,
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
