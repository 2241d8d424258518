"""Pilot step MonitorModel: score a later window of customers, log their outcomes, monitor exactly that window.

A failure here leaves the validated model serving: the state machine catches it (`$.monitoring_error`) and the
final criteria step reports the criteria it affects as failed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler, logger
from mlops.monitoring.accuracy import audited_predictions
from mlops.pilot.lambda_api import MONITOR_CALLS, lambda_api_invoker, lambda_monitor_invoker
from mlops.pilot.monitoring import monitor_pilot
from mlops.pilot.payloads import StepRequest
from mlops.pilot.settings import PilotMonitoringSettings
from mlops.wiring import Wiring

wiring = Wiring(PilotMonitoringSettings)


def _audited_ids(window_start: str, window_end: str) -> list[str]:
    """The prediction ids the audit trail holds for the window."""
    since, until = dt.datetime.fromisoformat(window_start), dt.datetime.fromisoformat(window_end)
    predictions = audited_predictions(wiring.settings.audit_table, wiring.dynamodb, since, until)
    return [str(prediction.get("prediction_id")) for _, prediction in predictions]


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = wiring.settings
    lambda_client = wiring.client("lambda", MONITOR_CALLS)
    summary = monitor_pilot(
        StepRequest.model_validate(event),
        wiring.artifacts,
        lambda_api_invoker(lambda_client, settings.scoring_function_name),
        lambda_api_invoker(lambda_client, settings.monitoring_function_name),
        lambda_monitor_invoker(lambda_client, settings.model_monitor_function_name),
        _audited_ids,
    )
    logger.info("Later window monitored", extra=summary.model_dump(exclude={"report"}))
    return summary.model_dump(mode="json")
