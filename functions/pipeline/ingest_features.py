"""Pilot step IngestFeatures: the data file into the feature store (online and offline), as observed at the run's
snapshot time."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.core.observability import instrumented_handler, logger
from mlops.pilot import training as pilot_training
from mlops.pilot.payloads import StepRequest
from mlops.pilot.settings import IngestionSettings
from mlops.pilot.wiring import PilotWiring

wiring = PilotWiring(IngestionSettings)


@instrumented_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = wiring.settings
    request = StepRequest.model_validate(event)
    report = pilot_training.ingest_features(
        request,
        wiring.data,
        settings.feature_group,
        settings.feature_ttl_seconds,
        wiring.online_feature_store,
        wiring.offline_feature_store,
        wiring.feature_catalog,
        workers=settings.ingest_write_concurrency,
    )
    logger.info("Features ingested", extra={"rows": report.rows, "written": report.written})
    return report.model_dump(mode="json")
