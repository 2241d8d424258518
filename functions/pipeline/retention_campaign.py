"""Pilot step RunRetentionCampaign: as many customers as the experiment's plan asks through it (held-out ones, then
customers generated from the training split: pandas and scikit-learn, hence the pipeline image), their simulated
outcomes, and the experiment's results and business impact.

A failure here leaves the validated model serving: the state machine catches it (`$.experiment_error`) and the
final criteria step reports the criteria it affects as failed.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler
from mlops.pilot.campaign import run_retention_campaign
from mlops.pilot.lambda_api import lambda_api_invoker
from mlops.pilot.payloads import StepRequest
from mlops.pilot.settings import CampaignSettings
from mlops.wiring import Wiring

wiring = Wiring(CampaignSettings)


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = wiring.settings
    request = StepRequest.model_validate(event)
    report = run_retention_campaign(
        request,
        wiring.artifacts,
        wiring.experiment_store,
        lambda_api_invoker(wiring.client("lambda"), settings.scoring_function_name),
        model_refresh_seconds=settings.model_refresh_seconds,
    )
    return report.model_dump(mode="json")
