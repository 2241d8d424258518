"""Pilot step MonitorModel: score a later window of customers, log their outcomes, monitor exactly that window.

A failure here leaves the validated model serving: the state machine catches it (`$.monitoring_error`) and the
final criteria step reports the criteria it affects as failed.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler, logger
from mlops.pilot.lambda_api import MONITOR_CALLS, lambda_api_invoker, lambda_monitor_invoker
from mlops.pilot.monitoring import monitor_pilot
from mlops.pilot.payloads import StepRequest
from mlops.pilot.settings import PilotMonitoringSettings
from mlops.wiring import Wiring

wiring = Wiring(PilotMonitoringSettings)


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
    )
    logger.info("Later window monitored", extra=summary.model_dump(exclude={"report"}))
    return summary.model_dump(mode="json")
