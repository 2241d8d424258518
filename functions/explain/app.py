"""Explanation API: POST /explain and POST /explain/batch (TreeSHAP of the version /predict serves).

Packaging: a container-image function (functions/explain/Dockerfile), not a zip on the layers. Exact TreeSHAP
needs shap and the scikit-learn model (skops); shap requires numba and llvmlite (about 200 MB installed here),
and with scikit-learn, scipy, pandas, numpy and onnxruntime the whole is about 600 MB, far over Lambda's 250 MB
unzipped limit for a zip function and its layers, while an image may hold 10 GB. A function of its own also
keeps the scoring path small and fast.

Cold-start cost, measured in fresh processes on the development machine (2 cores; bench/explain_latency.py
re-measures it and writes bench/explain_latency.json): importing this handler (shap, scikit-learn, pandas,
numba, onnxruntime) takes 2 to 2.5 s, loading the deployed gradient-boosting version (ONNX graph, skops model
and feature spec, verified by SHA-256, and the TreeExplainer) 0.25 to 0.3 s, the first explanation then 10 ms.
Lambda adds the image pull and runtime start, so a new execution environment answers its first request after
a few seconds; warm, one explanation takes about 1 ms (p99 under 2 ms per row). Provisioned concurrency
removes the cold start where that matters.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

import boto3
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.api.contracts import BatchExplainRequest, BatchExplanationResponse, ExplainRequest, Explanation
from mlops.api.rest import create_rest_app, resolve_json_api
from mlops.core.artifacts import ArtifactStore
from mlops.core.observability import MetricUnit, instrumented_handler, metrics
from mlops.core.settings import ScoringSettings, load_settings
from mlops.feature_store.online import OnlineFeatureLookup, online_lookup
from mlops.registry.store import ModelRegistry
from mlops.serving.explain import ExplainableModel, explain_requests, load_explainable_version, served_model
from mlops.serving.scoring import ModelProvider

app = create_rest_app()

TopContributions = Annotated[
    int | None, Query(ge=1, description="Keep the N largest contributions (default: every input feature).")
]


@cache
def _model_provider() -> ModelProvider[ExplainableModel]:
    settings = load_settings(ScoringSettings)
    registry = ModelRegistry(settings.registry_table, boto3.client("dynamodb"))
    store = ArtifactStore(settings.artifact_bucket, boto3.client("s3"))
    return ModelProvider(
        registry, store, settings.model_name, settings.model_refresh_seconds, loader=load_explainable_version
    )


@cache
def _feature_lookup() -> OnlineFeatureLookup | None:
    return online_lookup(load_settings(ScoringSettings), boto3.client("dynamodb"))


@app.post("/explain")
def explain(request: ExplainRequest, top: TopContributions = None) -> Explanation:
    model = served_model(_model_provider(), request.model_version)
    (explanation,) = explain_requests([request], model, top=top, lookup=_feature_lookup())
    _record_explanations(1)
    return explanation


@app.post("/explain/batch")
def explain_batch(request: BatchExplainRequest, top: TopContributions = None) -> BatchExplanationResponse:
    model = served_model(_model_provider(), request.model_version)
    explanations = explain_requests(request.records, model, top=top, lookup=_feature_lookup(), batch=True)
    _record_explanations(len(explanations))
    return BatchExplanationResponse(model_version=model.version.version, explanations=explanations)


def _record_explanations(count: int) -> None:
    metrics.add_metric(name="Explanations", unit=MetricUnit.Count, value=count)


def _resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_json_api(app, event, context)


handler = instrumented_handler(_resolve, api=True)
