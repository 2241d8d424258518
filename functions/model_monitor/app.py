"""The scheduled model monitor (hourly, EventBridge; the pilot invokes it too).

It compares the inputs the scoring function captured in its window (each prediction once) with the drift
baseline stored beside the production model, measures accuracy on outcomes joined with the audited predictions,
stores its report in MONITORING_BUCKET and emits the metrics the alarms of template.yaml watch (DriftDetected,
ModelAccuracy, ...): `mlops.monitoring.monitor.ModelMonitor`. The schedule judges the last MONITOR_WINDOW_HOURS
(the outcomes logged in them); an invoke may name `window_hours`, or an explicit `window_start` and
`window_end` whose own predictions are judged (`MonitorRequest`).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler
from mlops.core.settings import MonitoringSettings
from mlops.monitoring.monitor import MonitorRequest
from mlops.wiring import Wiring

wiring = Wiring(MonitoringSettings)


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Scheduled (EventBridge) or invoked by the pilot: one monitoring report, stored and emitted as metrics."""
    request = MonitorRequest.model_validate(event if isinstance(event, dict) else {})
    report = wiring.model_monitor.run(request)
    return report.model_dump(mode="json")
