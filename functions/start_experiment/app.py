"""Pilot step StartExperiment: start the A/B test of the deployed model against the baseline (audited).

A failure here leaves the validated model serving: the state machine catches it (`$.experiment_error`) and the
final criteria step reports the criteria it affects as failed.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler, logger
from mlops.experiments.service import ExperimentService
from mlops.pilot.experiment import start_pilot_experiment
from mlops.pilot.payloads import StepRequest
from mlops.pilot.settings import PilotExperimentSettings
from mlops.wiring import Wiring

wiring = Wiring(PilotExperimentSettings)


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = wiring.settings
    request = StepRequest.model_validate(event)
    experiments = ExperimentService(wiring.experiment_store, wiring.audit_log)
    report = start_pilot_experiment(request, wiring.artifacts, experiments, settings.model_name)
    logger.info("Experiment started", extra=report.model_dump(include={"experiment_id", "stopped_previous"}))
    return report.model_dump(mode="json")
