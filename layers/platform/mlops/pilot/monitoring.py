"""The pilot's MonitorModel step: a later window of real customers that no earlier step used (neither training,
nor the held-out evaluation, nor the campaign) goes through the deployed scoring function; their outcomes are
logged through POST /outcomes by the prediction id each was served, as the business would once it knows who
churned; then the scheduled monitor's code judges exactly that window: drift against the training baseline,
and accuracy and AUC from the outcomes joined to the predictions they judge."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from mlops.api.contracts import MAX_BATCH_RECORDS
from mlops.core.artifacts import ArtifactStore
from mlops.core.clock import utc
from mlops.core.errors import MonitoringError
from mlops.data.schema import DataSchema
from mlops.monitoring.monitor import MonitoringReport
from mlops.pilot.customers import read_customers, response_predictions
from mlops.pilot.lambda_api import api_gateway_event
from mlops.pilot.payloads import MonitoringSummary, StepRequest, run_prefix

OUTCOMES_PER_CALL = 1000
AUDIT_WAIT_SECONDS = 120.0
"""How long the step waits for the window's predictions to reach the audit trail (queued, then appended by the
audit writer: about a second on AWS) before monitoring; past it, the step fails and says how many are missing."""

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
AuditedIds = Callable[[], Iterable[str]]  # the prediction ids of the window found in the audit trail


def wait_until_audited(
    prediction_ids: set[str],
    audited_ids: AuditedIds,
    *,
    timeout_s: float = AUDIT_WAIT_SECONDS,
    interval_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once every prediction is in the audit trail: the monitor joins outcomes to audited predictions, and
    a prediction still in the audit queue would be counted as unmatched."""
    deadline = clock() + timeout_s
    while True:
        missing = prediction_ids - set(audited_ids())
        if not missing:
            return
        if clock() >= deadline:
            raise MonitoringError(
                field="audit_trail",
                message=f"{len(missing)} of the window's {len(prediction_ids)} predictions are still not in the audit "
                f"trail after {timeout_s:.0f} s (the audit queue lags: see the audit-queue-stalled alarm)",
            )
        sleep(interval_s)


def monitor_pilot(
    request: StepRequest,
    artifacts: ArtifactStore,
    invoke_scoring: Invoke,
    invoke_outcomes: Invoke,
    invoke_monitor: Invoke,
    audited_ids: Callable[[str, str], Iterable[str]],
) -> MonitoringSummary:
    """Score the later window once per customer, log its outcomes by prediction id, wait until the predictions
    are in the audit trail (`audited_ids(window_start, window_end)`), and monitor that window."""
    dataset = request.require(request.pilot.dataset, "dataset")
    schema = DataSchema.from_json(artifacts.get_verified(dataset.schema_ref))
    customers = read_customers(artifacts.get_verified(dataset.monitoring_window), schema)
    window_start = utc()
    served: list[dict[str, Any]] = []
    for start in range(0, len(customers.ids), MAX_BATCH_RECORDS):
        records = [
            {"customer_id": customer_id, "features": features}
            for customer_id, features in zip(
                customers.ids[start : start + MAX_BATCH_RECORDS],
                customers.features[start : start + MAX_BATCH_RECORDS],
                strict=True,
            )
        ]
        event = api_gateway_event(
            "POST", "/predict/batch", {"records": records}, f"{request.execution_name}-window-{start}"
        )
        served += response_predictions(_checked(invoke_scoring(event), "POST /predict/batch"))
    window_end = utc()

    churned = dict(zip(customers.ids, customers.would_churn.tolist(), strict=True))
    observed_at = window_end.isoformat()
    outcomes = [
        {
            "prediction_id": prediction["prediction_id"],
            "customer_id": prediction["customer_id"],
            "churned": bool(churned[prediction["customer_id"]]),
            "observed_at": observed_at,
        }
        for prediction in served
    ]
    for start in range(0, len(outcomes), OUTCOMES_PER_CALL):
        event = api_gateway_event(
            "POST",
            "/outcomes",
            {"outcomes": outcomes[start : start + OUTCOMES_PER_CALL]},
            request_id=f"{request.execution_name}-outcomes-{start // OUTCOMES_PER_CALL}",
        )
        _checked(invoke_outcomes(event), "POST /outcomes")

    wait_until_audited(
        {str(p["prediction_id"]) for p in served},
        lambda: audited_ids(window_start.isoformat(), window_end.isoformat()),
    )
    report = MonitoringReport.model_validate(
        invoke_monitor({"window_start": window_start.isoformat(), "window_end": window_end.isoformat()})
    )
    drift, accuracy = report.drift, report.accuracy
    verdict = drift is not None and drift.sufficient_data
    prefix = run_prefix(request.execution_name)
    return MonitoringSummary(
        model_version=report.model_version,
        window_start=window_start.isoformat(),
        window_end=window_end.isoformat(),
        window_customers=len(customers.ids),
        captured_rows=report.captured_rows,
        drift_detected=drift.drift_detected if verdict else None,
        drifted_features=drift.drifted_features if verdict else [],
        max_feature_psi=drift.max_feature_psi if drift else None,
        score_psi=drift.score_psi if drift else None,
        outcomes_logged=len(outcomes),
        outcomes_matched=accuracy.matched,
        accuracy=accuracy.accuracy,
        auc=accuracy.auc,
        recall=accuracy.recall,
        predictions=artifacts.put(
            f"{prefix}/monitoring_window_predictions.json",
            json.dumps([{k: p[k] for k in ("prediction_id", "customer_id")} for p in served]).encode(),
            "application/json",
        ),
        report=artifacts.put(
            f"{prefix}/monitoring_report.json", report.model_dump_json(indent=2).encode(), "application/json"
        ),
    )


def _checked(response: dict[str, Any], call: str) -> dict[str, Any]:
    if response.get("statusCode") != 200:
        raise MonitoringError(
            field="monitoring", message=f"{call} answered {response.get('statusCode')}: {response.get('body')}"
        )
    return response
