"""What the explanation API does: TreeSHAP explanations of the version /predict serves, counted in metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from mlops.api.contracts import Explanation, PredictRequest
from mlops.core.observability import MetricUnit, metrics
from mlops.feature_store.online import OnlineFeatureLookup
from mlops.serving.explain import ExplainableModel, explain_requests, served_model
from mlops.serving.scoring import ModelProvider


class ServedExplanations(NamedTuple):
    model_version: str
    """The version explained: the one production serves."""
    explanations: list[Explanation]


class ExplanationService:
    def __init__(self, models: ModelProvider[ExplainableModel], lookup: OnlineFeatureLookup | None) -> None:
        self._models = models
        self._lookup = lookup

    def explain(
        self,
        requests: Sequence[PredictRequest],
        *,
        model_version: str | None = None,
        top: int | None = None,
        batch: bool = False,
    ) -> ServedExplanations:
        """Explain the requests with the served version (refused, 409, when `model_version` names another one);
        `top` keeps the N largest contributions; `batch`: the requests are a batch body's `records`."""
        model = served_model(self._models, model_version)
        explanations = explain_requests(requests, model, top=top, lookup=self._lookup, batch=batch)
        metrics.add_metric(name="Explanations", unit=MetricUnit.Count, value=len(explanations))
        return ServedExplanations(model.version.version, explanations)
