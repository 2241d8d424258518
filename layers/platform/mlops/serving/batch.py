"""Batch scoring of a CSV file in bounded memory, with the same feature and ONNX code as the scoring API."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops.core.artifacts import ArtifactRef, ArtifactStore, sha256_hex
from mlops.core.errors import ArtifactIntegrityError
from mlops.data.dataset import frame_to_columns, read_dataset
from mlops.data.feature_spec import FeatureSpec
from mlops.registry.store import ModelRegistry, ModelStatus, ModelVersion
from mlops.serving.batch_plan import BatchPlan, ChunkPlan, input_object, part_key
from mlops.serving.onnx_model import OnnxChurnModel
from mlops.serving.scoring import LoadedModel, load_model_version

DEFAULT_CHUNK_ROWS = 100_000
MODEL_FILES = {
    "onnx": "model.onnx",
    "sklearn": "model.skops",
    "feature_spec": "feature_spec.json",
    "model_card": "model_card.json",
    "model_card_markdown": "model_card.md",
}


def load_model_dir(model_dir: Path, threads: int = 1) -> LoadedModel:
    """A pilot's model directory (`DIR/model/`), each file checked against the digest in its model card.
    `threads`: ONNX Runtime's intra-op threads. More are faster on several cores, but the tree ensemble then
    adds its trees in another order, which can move a probability's 6th decimal: 1 (as online scoring and the
    batch-scoring state machine use) keeps every path's scores identical."""
    card = json.loads((model_dir / MODEL_FILES["model_card"]).read_text())
    details = card["model_details"]
    artifacts = {name: ArtifactRef.model_validate(ref) for name, ref in details["artifacts"].items()}

    def verified(name: str) -> bytes:
        data = (model_dir / MODEL_FILES[name]).read_bytes()
        if sha256_hex(data) != artifacts[name].sha256:
            raise ArtifactIntegrityError(
                field=MODEL_FILES[name],
                message=f"{model_dir / MODEL_FILES[name]} does not match the SHA-256 in its model card",
            )
        return data

    spec = FeatureSpec.model_validate_json(verified("feature_spec"))
    version = ModelVersion(
        model_name=details["name"],
        version=details["version"],
        status=ModelStatus.APPROVED,
        created_at=details["created_at"],
        algorithm=details["algorithm"],
        threshold=details["threshold"],
        metrics={k: v for k, v in card["metrics"].items() if isinstance(v, int | float)},
        artifacts=artifacts,
        dataset_sha256=card["data"]["sha256"],
        execution_arn=card["lineage"]["execution_arn"],
    )
    return LoadedModel(version=version, spec=spec, model=OnnxChurnModel(verified("onnx"), spec, threads=threads))


def score_frame(loaded: LoadedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """`id, churn_probability, churn_prediction, model_version` for each row of a schema-checked frame."""
    schema = loaded.spec.data_schema
    probabilities, _ = loaded.model.score_columns(frame_to_columns(frame, schema))
    return pd.DataFrame(
        {
            schema.id_column: frame[schema.id_column].to_numpy(),
            "churn_probability": np.round(probabilities, 6),
            "churn_prediction": probabilities >= loaded.version.threshold,
            "model_version": loaded.version.version,
        }
    )


def score_csv(loaded: LoadedModel, input_path: Path, output_path: Path, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> int:
    """Write `id, churn_probability, churn_prediction, model_version` per input row; returns the row count."""
    rows = 0
    with output_path.open("w", newline="") as out:
        for index, chunk in enumerate(read_dataset(input_path, loaded.spec.data_schema, chunksize=chunk_rows)):
            scored = score_frame(loaded, chunk)
            scored.to_csv(out, header=index == 0, index=False)
            rows += len(scored)
    return rows


class PlannedModels:
    """The registered versions batch plans name, each loaded once per execution environment (its ONNX graph and
    feature spec verified by SHA-256): every chunk of a run is scored by the version its plan fixed."""

    def __init__(self, registry: ModelRegistry, store: ArtifactStore, model_name: str) -> None:
        self._registry = registry
        self._store = store
        self._model_name = model_name
        self._loaded: dict[str, LoadedModel] = {}

    def get(self, version: str) -> LoadedModel:
        if version not in self._loaded:
            self._loaded[version] = load_model_version(self._registry.get(self._model_name, version), self._store)
        return self._loaded[version]


def score_chunk(loaded: LoadedModel, s3: Any, plan: BatchPlan, chunk: ChunkPlan) -> int:
    """Score one planned byte range of the input (its planned version, with the plan's header) into its part;
    returns its rows."""
    body = s3.get_object(**input_object(plan), Range=f"bytes={chunk.start_byte}-{chunk.end_byte}")
    text = plan.header + "\n" + body["Body"].read().decode("utf-8")
    scored = score_frame(loaded, read_dataset(io.StringIO(text), loaded.spec.data_schema))
    s3.put_object(
        Bucket=plan.bucket,
        Key=part_key(plan, chunk.index),
        Body=scored.to_csv(index=False, header=chunk.index == 0).encode(),  # parts join by plain concatenation
        ContentType="text/csv",
        Metadata={"rows": str(len(scored))},
    )
    return len(scored)
