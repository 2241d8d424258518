"""The pilot's PublishReport step: gather what the run produced and write `runs/<execution>/report.html`.

Runs in the pipeline image (matplotlib, scikit-learn, shap). The held-out scores come from the registered ONNX
graph (what serving answers), the example explanation from the same TreeSHAP explainer the explain API serves.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from mlops.core.artifacts import ArtifactRef, ArtifactStore
from mlops.core.clock import utc
from mlops.data.dataset import frame_to_columns, labels, read_dataset
from mlops.data.feature_spec import FeatureSpec
from mlops.data.features import PreparedFeatures
from mlops.monitoring.monitor import MonitoringReport
from mlops.pilot.payloads import StepRequest, run_prefix
from mlops.pilot.report.inputs import ReportInputs
from mlops.pilot.report.render import render_report
from mlops.registry.model_card import ModelCard
from mlops.serving.onnx_model import OnnxChurnModel
from mlops.serving.tree_shap import TreeShapExplainer
from mlops.training.export import load_skops
from mlops.training.threshold import ThresholdChoice


def build_report_inputs(request: StepRequest, artifacts: ArtifactStore, model_name: str) -> ReportInputs:
    pilot = request.pilot
    dataset = request.require(pilot.dataset, "dataset")
    training = request.require(pilot.training, "training")
    registration = request.require(pilot.registration, "registration")
    smoke = request.require(pilot.smoke_test, "smoke_test")
    stored = registration.artifacts
    spec = FeatureSpec.model_validate_json(artifacts.get_verified(stored["feature_spec"]))
    test = read_dataset(io.BytesIO(artifacts.get_verified(dataset.test)), spec.data_schema)
    columns = frame_to_columns(test, spec.data_schema)
    probabilities, prepared = OnnxChurnModel(artifacts.get_verified(stored["onnx"]), spec).score_columns(columns)
    card = ModelCard.model_validate_json(artifacts.get_verified(stored["model_card"]))
    monitoring = pilot.monitoring
    report = MonitoringReport.model_validate_json(artifacts.get_verified(monitoring.report)) if monitoring else None
    return ReportInputs(
        model_name=model_name,
        model_version=registration.model_version,
        execution_name=request.execution_name,
        generated_at=utc(),
        criteria=request.require(pilot.criteria, "criteria"),
        test_labels=[int(v) for v in labels(test, spec.data_schema)],
        test_probabilities=[float(p) for p in probabilities],
        threshold=ThresholdChoice.model_validate_json(
            artifacts.get_verified(request.require(training.threshold_choice, "training.threshold_choice"))
        ),
        explainability=card.explainability,
        example_explanation=_example_explanation(
            load_skops(artifacts.get_verified(stored["sklearn"])), spec, prepared, probabilities
        ),
        campaign=pilot.campaign,
        drift=report.drift if report else None,
        monitoring=monitoring.model_dump(exclude={"report"}) if monitoring else None,
        latencies_ms=smoke.latencies_ms,
        latency_summary=smoke.latency_ms,
        model_card_markdown=artifacts.get_verified(stored["model_card_markdown"]).decode(),
        lineage=card.lineage.model_dump(mode="json"),
    )


def _example_explanation(
    pipeline: Any, spec: FeatureSpec, prepared: PreparedFeatures, probabilities: np.ndarray
) -> dict[str, Any]:
    """The held-out customer the model finds most likely to churn, explained."""
    row = int(np.argmax(probabilities))
    one = PreparedFeatures(
        inputs={name: values[row : row + 1] for name, values in prepared.inputs.items()},
        imputed={name: mask[row : row + 1] for name, mask in prepared.imputed.items()},
    )
    explainer = TreeShapExplainer(pipeline, spec)
    attributions = explainer.attribute(one)
    values = explainer.input_values(one)
    contributions = sorted(
        (
            {"feature": name, "value": values[name][0], "contribution": float(attributions.contributions[0, i])}
            for i, name in enumerate(explainer.features)
        ),
        key=lambda item: -abs(item["contribution"]),
    )
    return {
        # The report is shared: the customer is named by its held-out row, not its id.
        "customer_id": f"held-out row {row}",
        "churn_probability": round(float(probabilities[row]), 6),
        "output_space": explainer.output_space,
        "base_value": explainer.base_value,
        "contributions": contributions,
    }


def publish_report(request: StepRequest, artifacts: ArtifactStore, model_name: str) -> ArtifactRef:
    html = render_report(build_report_inputs(request, artifacts, model_name))
    return artifacts.put(f"{run_prefix(request.execution_name)}/report.html", html.encode(), "text/html")
