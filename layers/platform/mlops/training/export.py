"""Model artifacts: ONNX export (served by onnxruntime) and skops serialisation (never pickle).

Imported only by training code (needs scikit-learn, skl2onnx and skops).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import onnxruntime as ort
import skops.io as sio
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.pipeline import Pipeline

from mlops.core.errors import ArtifactIntegrityError
from mlops.data.dataset import prepared_to_frame
from mlops.data.feature_spec import FeatureSpec
from mlops.data.features import PreparedFeatures

TARGET_OPSET: Final[dict[str, int]] = {"": 18, "ai.onnx.ml": 3}
"""Pinned ONNX opsets: supported by onnxruntime 1.32 and stable across skl2onnx upgrades."""

PROBABILITY_OUTPUT: Final[str] = "probabilities"
"""Name of the ONNX output holding the (n, 2) class probabilities; column 1 is the positive class."""

TRUSTED_SKOPS_TYPES: Final[tuple[str, ...]] = ("sklearn.tree._tree.Tree",)
"""Types skops does not trust by default that our candidate pipelines legitimately contain.

A payload is loaded only if every type reported by ``skops.io.get_untrusted_types`` is in this list.
"""


def export_onnx(pipeline: Pipeline, spec: FeatureSpec) -> bytes:
    """Convert a fitted pipeline to ONNX: one (None, 1) input per ``spec.model_inputs`` name.

    Numerical inputs are float tensors, categorical inputs string tensors. ZipMap is disabled, so output
    ``probabilities`` is a plain (n, 2) float tensor whose column 1 is the positive-class probability
    (labels are 0/1, so ``classes_ == [0, 1]``).
    """
    classes = list(getattr(pipeline, "classes_", []))
    if classes != [0, 1]:
        raise ValueError(f"expected a binary pipeline trained on 0/1 labels, got classes {classes}")
    categorical = set(spec.model_categorical)
    initial_types = [
        (name, StringTensorType([None, 1]) if name in categorical else FloatTensorType([None, 1]))
        for name in spec.model_inputs
    ]
    classifier = pipeline.steps[-1][1]
    model = to_onnx(
        pipeline,
        initial_types=initial_types,
        options={id(classifier): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    output_names = [output.name for output in model.graph.output]
    if PROBABILITY_OUTPUT not in output_names:
        raise ValueError(f"the ONNX graph has no {PROBABILITY_OUTPUT!r} output (outputs: {output_names})")
    model.doc_string = f"churn model; inputs: {len(spec.model_inputs)}; positive class = column 1"
    return model.SerializeToString()


def max_probability_difference(pipeline: Pipeline, onnx_bytes: bytes, prepared: PreparedFeatures) -> float:
    """Largest |scikit-learn - onnxruntime| positive-class probability over the rows of ``prepared``."""
    expected = pipeline.predict_proba(prepared_to_frame(prepared))[:, 1]
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run([PROBABILITY_OUTPUT], prepared.inputs)
    return float(np.max(np.abs(expected - probabilities[:, 1].astype(np.float64)), initial=0.0))


def dump_skops(pipeline: Pipeline) -> bytes:
    """Serialise a fitted pipeline with skops (no pickle)."""
    return sio.dumps(pipeline)


def load_skops(data: bytes) -> Pipeline:
    """Load a skops payload, trusting only :data:`TRUSTED_SKOPS_TYPES` beyond skops' own defaults.

    Raises :class:`ArtifactIntegrityError` if the payload is unreadable, contains any other untrusted type
    or is not a scikit-learn Pipeline.
    """
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as error:  # corrupt zip, bad schema...: skops raises many different types
        raise ArtifactIntegrityError("model.skops", f"unreadable skops payload: {error}") from error
    refused = sorted(set(untrusted) - set(TRUSTED_SKOPS_TYPES))
    if refused:
        raise ArtifactIntegrityError("model.skops", f"refusing untrusted types in skops payload: {refused}")
    try:
        model = sio.loads(data, trusted=list(untrusted))
    except Exception as error:
        raise ArtifactIntegrityError("model.skops", f"cannot load skops payload: {error}") from error
    if not isinstance(model, Pipeline):
        raise ArtifactIntegrityError("model.skops", f"expected a scikit-learn Pipeline, got {type(model).__name__}")
    return model
