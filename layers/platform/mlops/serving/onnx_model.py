"""ONNX scoring (numpy + onnxruntime only: this runs in the Lambda scoring path)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from mlops.core.errors import ArtifactIntegrityError
from mlops.data.feature_spec import FeatureSpec
from mlops.data.features import Columns, PreparedFeatures, prepare_features

PROBABILITY_OUTPUT = "probabilities"
"""ONNX output with the (n, 2) class probabilities; column 1 is the positive class (see mlops.training.export)."""

_NUMERIC_TYPE = "tensor(float)"
_TEXT_TYPE = "tensor(string)"


def _session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return options


class OnnxChurnModel:
    """A churn model: the ONNX graph plus the feature spec that builds its inputs.

    One intra-op thread by default (the online handler: lowest single-request latency, no thread pool
    contention in a small Lambda); batch jobs with spare cores may pass ``threads`` > 1.
    """

    def __init__(self, model_bytes: bytes, spec: FeatureSpec, *, threads: int = 1) -> None:
        try:
            self._session = ort.InferenceSession(
                model_bytes, sess_options=_session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own (non-exported) exception types
            raise ArtifactIntegrityError("model.onnx", f"cannot load the ONNX model: {error}") from error
        self.spec = spec

        inputs = self._session.get_inputs()
        names = [node.name for node in inputs]
        if names != spec.model_inputs:
            raise ArtifactIntegrityError(
                "model.onnx",
                f"ONNX inputs {names} do not match the feature spec's model inputs {spec.model_inputs}",
            )
        categorical = set(spec.model_categorical)
        for node in inputs:
            expected = _TEXT_TYPE if node.name in categorical else _NUMERIC_TYPE
            if node.type != expected:
                raise ArtifactIntegrityError(
                    "model.onnx", f"ONNX input {node.name!r} has type {node.type}, expected {expected}"
                )
        outputs = {node.name: node for node in self._session.get_outputs()}
        output = outputs.get(PROBABILITY_OUTPUT)
        if output is None or len(output.shape) != 2 or output.shape[1] != 2:
            raise ArtifactIntegrityError(
                "model.onnx",
                f"the ONNX model needs a (n, 2) {PROBABILITY_OUTPUT!r} output, got {list(outputs)}",
            )
        self._output_names = [PROBABILITY_OUTPUT]

    def predict_proba(self, prepared: PreparedFeatures) -> np.ndarray:
        """Positive-class probability per row (float64, shape (n,))."""
        first = next(iter(prepared.inputs.values()), None)
        if first is None or first.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        (probabilities,) = self._session.run(self._output_names, prepared.inputs)
        return probabilities[:, 1].astype(np.float64)

    def score_columns(self, columns: Columns) -> tuple[np.ndarray, PreparedFeatures]:
        """Prepare raw columns with the model's spec and score them: (probabilities, prepared features)."""
        prepared = prepare_features(columns, self.spec)
        return self.predict_proba(prepared), prepared
