"""Explanation API: POST /explain and POST /explain/batch (TreeSHAP of the version /predict serves).

Every explanation is queued to the audit trail (AUDIT_QUEUE_URL, `mlops.audit.queue`) before it is returned,
with the caller and the request id, as /predict does (`mlops.serving.explain.ExplanationService`); no audit
record, no answer (503).

Packaging: a container-image function (functions/explain/Dockerfile), not a zip on the layers. Exact TreeSHAP
needs shap and the scikit-learn model (skops); shap requires numba and llvmlite (about 200 MB installed here),
and with scikit-learn, scipy, pandas, numpy and onnxruntime the whole is about 700 MB, far over Lambda's 250 MB
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

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.api.contracts import (
    BatchExplainRequest,
    BatchExplanationResponse,
    ExplainRequest,
    Explanation,
    PredictRequest,
)
from mlops.api.rest import caller_identity, create_rest_app, request_id, resolve_json_api
from mlops.core.observability import instrumented_handler
from mlops.core.settings import ScoringSettings
from mlops.serving.explain import ServedExplanations
from mlops.wiring import Wiring

app = create_rest_app()
wiring = Wiring(ScoringSettings)

TopContributions = Annotated[
    int | None, Query(ge=1, description="Keep the N largest contributions (default: every input feature).")
]


@app.post("/explain")
def explain(request: ExplainRequest, top: TopContributions = None) -> Explanation:
    (explanation,) = _explain([request], request.model_version, top).explanations
    return explanation


@app.post("/explain/batch")
def explain_batch(request: BatchExplainRequest, top: TopContributions = None) -> BatchExplanationResponse:
    served = _explain(request.records, request.model_version, top, batch=True)
    return BatchExplanationResponse(model_version=served.model_version, explanations=served.explanations)


def _explain(
    requests: list[PredictRequest], model_version: str | None, top: int | None, *, batch: bool = False
) -> ServedExplanations:
    return wiring.explanation_service.explain(
        requests,
        caller=caller_identity(app),
        request_id=request_id(app),
        model_version=model_version,
        top=top,
        batch=batch,
    )


def _resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_json_api(app, event, context)


handler = instrumented_handler(_resolve, api=True)
