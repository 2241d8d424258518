"""Serving explanations: the version /predict serves, explained request by request with exact TreeSHAP
(:mod:`mlops.serving.tree_shap`), each contribution with its source and the top ones as short reasons.

The probability in a response is the one `/predict` serves (the ONNX graph of the same version, computed by the
same code), so both endpoints agree on every request. An explanation answers with a probability and a decision,
so `ExplanationService` audits it as `/predict` audits a prediction: the records are appended before the answer
(`explanation` events, `mlops.audit.events.explanation_events`); if that fails after its retries, the request
fails (503, retryable) and nothing is returned.

Needs shap and scikit-learn: imported by the explain function's container image and the pilot's pipeline
image, never by the zip scoring function.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mlops.api.contracts import (
    MAX_REASONS,
    Explanation,
    FeatureContribution,
    OutputSpace,
    Prediction,
    PredictRequest,
    Reason,
)
from mlops.audit.events import explanation_events
from mlops.audit.queue import AuditLog
from mlops.core.artifacts import ArtifactStore
from mlops.core.errors import ArtifactIntegrityError, VersionNotDeployedError
from mlops.core.observability import MetricUnit, metrics
from mlops.data.features import PreparedFeatures
from mlops.feature_store.online import OnlineFeatureLookup
from mlops.registry.store import ModelVersion
from mlops.serving.scoring import LoadedModel, ModelProvider, load_model_version, score_and_prepare
from mlops.serving.tree_shap import SKOPS, TreeShapExplainer
from mlops.training.export import load_skops


@dataclass(frozen=True)
class ExplainableModel:
    """A registered version as the explain function serves it: what /predict serves, plus its explainer."""

    served: LoadedModel
    explainer: TreeShapExplainer

    @property
    def version(self) -> ModelVersion:
        return self.served.version


def load_explainable_version(version: ModelVersion, store: ArtifactStore) -> ExplainableModel:
    """A version's ONNX graph, feature spec and scikit-learn model, each verified against its SHA-256."""
    served = load_model_version(version, store)
    reference = version.artifacts.get("sklearn")
    if reference is None:
        raise ArtifactIntegrityError(SKOPS, f"version {version.version} has no scikit-learn model to explain")
    pipeline = load_skops(store.get_verified(reference))
    return ExplainableModel(served=served, explainer=TreeShapExplainer(pipeline, served.spec))


def served_model(provider: ModelProvider[ExplainableModel], requested_version: str | None) -> ExplainableModel:
    """The version production serves; refuses (409) a request that names another one."""
    model = provider.current()
    if requested_version is None or model.version.version == requested_version:
        return model
    model = provider.current(recheck=True)  # a deployment may have moved the alias since the last refresh
    if model.version.version != requested_version:
        raise VersionNotDeployedError(
            field="model_version",
            message=f"model version {requested_version} is not deployed: production of {provider.model_name} "
            f"serves {model.version.version}, and only the served version is explained",
        )
    return model


class ServedExplanations(NamedTuple):
    model_version: str
    """The version explained: the one production serves."""
    explanations: list[Explanation]


class ExplanationService:
    """The explain function's explanations: of the served version, audited before they are returned, counted."""

    def __init__(
        self, models: ModelProvider[ExplainableModel], lookup: OnlineFeatureLookup | None, audit: AuditLog
    ) -> None:
        self._models = models
        self._lookup = lookup
        self._audit = audit

    def explain(
        self,
        requests: Sequence[PredictRequest],
        *,
        caller: str,
        request_id: str,
        model_version: str | None = None,
        top: int | None = None,
        batch: bool = False,
    ) -> ServedExplanations:
        """Explain the requests with the served version (refused, 409, when `model_version` names another one)
        and audit them; `top` keeps the N largest contributions; `batch`: the requests are a batch body's
        `records`. `caller` and `request_id` go into the audit records, as for /predict."""
        model = served_model(self._models, model_version)
        predictions, prepared, _ = score_and_prepare(requests, model.served, self._lookup, batch=batch)
        explanations = explain_scored(predictions, prepared, model, top=top)
        inputs = [p.input_sha256 for p in predictions]
        self._audit.append_many(explanation_events(explanations, inputs, caller, request_id))
        metrics.add_metric(name="Explanations", unit=MetricUnit.Count, value=len(explanations))
        return ServedExplanations(model.version.version, explanations)


def explain_requests(
    requests: Sequence[PredictRequest],
    model: ExplainableModel,
    *,
    top: int | None = None,
    lookup: OnlineFeatureLookup | None = None,
    batch: bool = False,
) -> list[Explanation]:
    """Explain validated API requests in one vectorised pass; ``top`` keeps the N largest contributions.
    Missing features come from the online store as for /predict (``lookup``); ``batch`` as for /predict/batch."""
    predictions, prepared, _ = score_and_prepare(requests, model.served, lookup, batch=batch)
    return explain_scored(predictions, prepared, model, top=top)


def explain_scored(
    predictions: Sequence[Prediction], prepared: PreparedFeatures, model: ExplainableModel, *, top: int | None = None
) -> list[Explanation]:
    """Explain what `score_and_prepare` scored (its predictions and prepared features), one explanation per
    prediction with the prediction's probability and decision."""
    explainer = model.explainer
    attributions = explainer.attribute(prepared)
    values = explainer.input_values(prepared)
    ranking = np.argsort(-np.abs(attributions.contributions), axis=1, kind="stable")  # ties: schema order
    explanations = []
    for row, prediction in enumerate(predictions):
        contributions = attributions.contributions[row]
        listed = ranking[row] if top is None else ranking[row][:top]
        left_out = ranking[row][len(listed) :]
        features = [
            FeatureContribution(
                feature=(name := explainer.features[column]),
                value=values[name][row],
                imputed=name in prediction.imputed_features,
                contribution=float(contributions[column]),
                sources=explainer.sources[name],
            )
            for column in listed
        ]
        explanations.append(
            Explanation(
                explanation_id=str(uuid.uuid4()),
                customer_id=prediction.customer_id,
                model_version=prediction.model_version,
                churn_probability=prediction.churn_probability,
                churn_prediction=prediction.churn_prediction,
                threshold=prediction.threshold,
                output_space=explainer.output_space,
                base_value=explainer.base_value,
                model_output=float(attributions.model_output[row]),
                contributions=features,
                remaining_contribution=float(contributions[left_out].sum()),
                reasons=[reason(item, explainer.output_space) for item in features[:MAX_REASONS]],
                imputed_features=prediction.imputed_features,
                feature_sources=prediction.feature_sources,
                method=explainer.method,
            )
        )
    return explanations


def reason(contribution: FeatureContribution, output_space: OutputSpace) -> Reason:
    """One short sentence, e.g. "customer service calls = 4 raises churn risk by 1.52 log-odds"."""
    label = contribution.feature.removeprefix("number_").replace("_", " ")
    direction = "raises" if contribution.contribution >= 0 else "lowers"
    amount = abs(contribution.contribution)
    size = f"{amount:.2f}" if amount >= 0.005 else "less than 0.01"
    effect = f"churn risk by {size} log-odds" if output_space == "log_odds" else f"churn probability by {size}"
    text = f"{label} = {_shown(contribution.value)} {direction} {effect}"
    return Reason(feature=contribution.feature, direction=direction, text=text)


def _shown(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:g}"
