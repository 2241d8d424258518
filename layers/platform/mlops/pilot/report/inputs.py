"""What the pilot report shows, gathered in one validated model (the pilot's PublishReport step builds it)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, model_validator

from mlops.monitoring.drift import DriftReport
from mlops.pilot.payloads import CampaignReport, CriteriaReport, LatencySummary
from mlops.training.threshold import ThresholdChoice


class ReportInputs(BaseModel):
    """Everything the report shows; the pilot collects it from its state, its artifacts and the model card."""

    model_name: str
    model_version: str
    execution_name: str
    generated_at: dt.datetime
    criteria: CriteriaReport
    test_labels: list[int]
    test_probabilities: list[float]
    threshold: ThresholdChoice
    explainability: dict[str, Any]
    example_explanation: dict[str, Any]
    campaign: CampaignReport | None
    drift: DriftReport | None
    monitoring: dict[str, Any] | None
    latencies_ms: list[float]
    latency_summary: LatencySummary
    model_card_markdown: str
    lineage: dict[str, Any]

    @model_validator(mode="after")
    def _held_out_split_is_consistent(self) -> ReportInputs:
        if len(self.test_labels) != len(self.test_probabilities):
            raise ValueError(
                f"test_labels ({len(self.test_labels)}) and test_probabilities ({len(self.test_probabilities)}) "
                "must have the same length"
            )
        if not set(self.test_labels) <= {0, 1}:
            raise ValueError("test_labels must be 0 or 1")
        return self
