"""Model monitoring API: POST /outcomes and GET /monitoring/latest.

Outcomes (did the customer churn?) are logged to MONITORING_BUCKET, where the scheduled model monitor
(functions/model_monitor) joins them with the audited predictions: by the `prediction_id` an outcome names, or
else by its customer; its latest report is served here. A malformed outcome is refused (422) naming its field.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.api.rest import create_rest_app, request_id, resolve_json_api
from mlops.core.errors import EntityNotFoundError
from mlops.core.observability import instrumented_handler
from mlops.core.settings import MonitoringSettings
from mlops.monitoring.monitor import MonitoringReport, latest_report
from mlops.monitoring.outcomes import OutcomesAccepted, OutcomesRequest, accept_outcomes
from mlops.wiring import Wiring

app = create_rest_app()
wiring = Wiring(MonitoringSettings)


@app.post("/outcomes")
def log_outcomes(request: OutcomesRequest) -> OutcomesAccepted:
    return accept_outcomes(wiring.outcome_log, request.outcomes, request_id(app))


@app.get("/monitoring/latest")
def latest() -> MonitoringReport:
    settings = wiring.settings
    report = latest_report(wiring.s3, settings.monitoring_bucket, settings.model_name)
    if report is None:
        raise EntityNotFoundError(field="model_name", message=f"no monitoring report yet for {settings.model_name!r}")
    return report


def _resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_json_api(app, event, context)


handler = instrumented_handler(_resolve, api=True)
