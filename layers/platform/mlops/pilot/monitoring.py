"""The pilot's MonitorModel step: log the held-out customers' outcomes, run the model monitor on the pilot's own
traffic, keep its report as an artifact and summarise it into the pilot state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlops.core.artifacts import ArtifactStore
from mlops.core.clock import utc
from mlops.core.errors import MonitoringError
from mlops.data.schema import DataSchema
from mlops.monitoring.monitor import MonitoringReport
from mlops.pilot.campaign import read_held_out
from mlops.pilot.lambda_api import api_gateway_event
from mlops.pilot.payloads import MonitoringSummary, StepRequest, run_prefix

OUTCOMES_PER_CALL = 1000
# The pilot's traffic all falls within the last hour: a one-hour window keeps earlier runs out of its verdict.
PILOT_WINDOW_HOURS = 1


def monitor_pilot(
    request: StepRequest,
    artifacts: ArtifactStore,
    invoke_outcomes: Callable[[dict[str, Any]], dict[str, Any]],
    invoke_monitor: Callable[[dict[str, Any]], dict[str, Any]],
) -> MonitoringSummary:
    """POST the held-out customers' true labels to /outcomes (as the business would, once it knows who churned),
    then run the scheduled monitor's code over the pilot's traffic: the campaign's requests, not the smoke
    test's (synthetic traffic is not captured)."""
    dataset = request.require(request.pilot.dataset, "dataset")
    schema = DataSchema.from_json(artifacts.get_verified(dataset.schema_ref))
    customers = read_held_out(artifacts.get_verified(dataset.test), schema)
    observed_at = utc().isoformat()
    outcomes = [
        {"customer_id": customer_id, "churned": bool(churned), "observed_at": observed_at}
        for customer_id, churned in zip(customers.ids, customers.would_churn, strict=True)
    ]
    for start in range(0, len(outcomes), OUTCOMES_PER_CALL):
        event = api_gateway_event(
            "POST",
            "/outcomes",
            {"outcomes": outcomes[start : start + OUTCOMES_PER_CALL]},
            request_id=f"{request.execution_name}-outcomes-{start // OUTCOMES_PER_CALL}",
        )
        response = invoke_outcomes(event)
        if response.get("statusCode") != 200:
            raise MonitoringError(
                field="outcomes",
                message=f"POST /outcomes answered {response.get('statusCode')}: {response.get('body')}",
            )
    report = MonitoringReport.model_validate(invoke_monitor({"window_hours": PILOT_WINDOW_HOURS}))
    drift, accuracy = report.drift, report.accuracy
    verdict = drift is not None and drift.sufficient_data
    return MonitoringSummary(
        model_version=report.model_version,
        captured_rows=report.captured_rows,
        drift_detected=drift.drift_detected if verdict else None,
        drifted_features=drift.drifted_features if verdict else [],
        max_feature_psi=drift.max_feature_psi if drift else None,
        score_psi=drift.score_psi if drift else None,
        outcomes_logged=len(outcomes),
        outcomes_matched=accuracy.matched,
        accuracy=accuracy.accuracy,
        recall=accuracy.recall,
        report=artifacts.put(
            f"{run_prefix(request.execution_name)}/monitoring_report.json",
            report.model_dump_json(indent=2).encode(),
            "application/json",
        ),
    )
