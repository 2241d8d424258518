"""Model cards to test with (mlops.registry.model_card), shared by the card's, its Markdown's and its segments'
unit tests.

The telecom card is the pilot's case: a logistic regression on a few numerical columns of the telecom data,
scored on the pilot's test split and segmented as the telecom schema declares (the caller passes no segments);
its explainability summary is the exact SHAP values of a linear model. Building takes about a second; the result
is cached, so treat it as read-only.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from helpers import TELECOM_CSV, TELECOM_SCHEMA
from mlops.core.artifacts import ArtifactRef
from mlops.data.dataset import labels, read_dataset, split_dataset
from mlops.data.schema import DataSchema
from mlops.registry.model_card import ModelCard, build_model_card
from mlops.registry.segments import Segmentation
from mlops.registry.store import ModelStatus, StatusChange
from mlops.training.evaluation import evaluate

MODEL_FEATURES = ["total_day_minutes", "number_customer_service_calls", "total_intl_calls", "total_eve_minutes"]
THRESHOLD = 0.5


@dataclass(frozen=True)
class TelecomExample:
    schema: DataSchema
    frame: pd.DataFrame
    test: pd.DataFrame
    probabilities: np.ndarray
    labels: np.ndarray
    card: ModelCard


def _ref(name: str) -> ArtifactRef:
    return ArtifactRef(key=f"models/churn/v1/{name}", sha256=f"{len(name):x}".rjust(64, "0"), size_bytes=100)


def _linear_summary(model: LogisticRegression, x: pd.DataFrame) -> dict[str, Any]:
    # The exact SHAP values of a linear model (coefficient x centred value), shaped like explainability_summary.
    contributions = (x - x.mean()).to_numpy() * model.coef_[0]
    mean_abs = np.abs(contributions).mean(axis=0)
    ranked = sorted(zip(x.columns, mean_abs, strict=True), key=lambda item: (-item[1], item[0]))
    return {
        "method": "exact linear attributions in log-odds space",
        "output_space": "log_odds",
        "base_value": float(model.intercept_[0]),
        "global_importance": [{"feature": name, "mean_abs_contribution": float(value)} for name, value in ranked],
        "rows": len(x),
        "max_additivity_error": 0.0,
    }


def _history() -> list[StatusChange]:
    return [
        StatusChange(
            status=ModelStatus.PENDING_APPROVAL, at="2024-05-01T10:00:00.000Z", by="pilot:run-1", reason="registered"
        ),
        StatusChange(
            status=ModelStatus.APPROVED,
            at="2024-05-01T10:00:00.000Z",
            by="pilot quality gate",
            reason="auc_roc >= target",
        ),
    ]


@functools.cache
def telecom_example() -> TelecomExample:
    schema = DataSchema.from_file(TELECOM_SCHEMA)
    frame = read_dataset(TELECOM_CSV, schema, require_target=True)
    train, test = split_dataset(frame, schema, test_size=0.2, seed=42)
    model = LogisticRegression(max_iter=1000).fit(train[MODEL_FEATURES], labels(train, schema))
    probabilities = model.predict_proba(test[MODEL_FEATURES])[:, 1]
    y_test = labels(test, schema)
    card = build_model_card(
        model_name="churn",
        version="v20240501100000-abc123",
        algorithm="logistic_regression",
        created_at="2024-05-01T10:00:00.000Z",
        threshold=THRESHOLD,
        artifacts={name: _ref(name) for name in ("onnx", "sklearn", "feature_spec")},
        data_key="data/telecom_churn.csv",
        dataset_sha256="f" * 64,
        rows=len(frame),
        train_rows=len(train),
        test_rows=len(test),
        positive_rate=float(labels(frame, schema).mean()),
        feature_source="file",
        metrics=evaluate(probabilities, y_test, threshold=THRESHOLD).model_dump(),
        probabilities=probabilities,
        labels=y_test,
        test_frame=test,
        schema=schema,
        explainability=_linear_summary(model, test[MODEL_FEATURES]),
        status_history=_history(),
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:pilot:run-1",
        execution_name="run-1",
        previous_production_version="v20240401000000-0a0b0c",
        seed=42,
    )
    return TelecomExample(schema, frame, test, probabilities, y_test, card)


def synthetic_card(
    probabilities: np.ndarray,
    y: np.ndarray,
    frame: pd.DataFrame,
    schema: DataSchema,
    segments: Mapping[str, Segmentation] | None = None,
) -> ModelCard:
    """A card with no artifacts, explainability or history, for a data set described by `schema`; `segments` as
    :func:`mlops.registry.model_card.build_model_card` takes them (None: the schema's)."""
    return build_model_card(
        model_name="churn",
        version="v1",
        algorithm="random_forest",
        created_at="2024-05-01T10:00:00.000Z",
        threshold=THRESHOLD,
        artifacts={},
        data_key="data/accounts.csv",
        dataset_sha256="0" * 64,
        rows=len(frame) * 5,
        train_rows=len(frame) * 4,
        test_rows=len(frame),
        positive_rate=float(y.mean()),
        feature_source="file",
        metrics=evaluate(probabilities, y, threshold=THRESHOLD).model_dump(),
        probabilities=probabilities,
        labels=y,
        test_frame=frame,
        schema=schema,
        explainability={},
        status_history=[],
        segments=segments,
    )


def non_telecom_data() -> tuple[DataSchema, pd.DataFrame]:
    """A data set whose schema declares no segments: a 3-value categorical, a 12-value categorical and a
    numerical."""
    schema = DataSchema(
        id_column="id", target="churned", positive_label="1", numerical=["x"], categorical=["tier", "branch"]
    )
    frame = pd.DataFrame(
        {
            "id": [str(i) for i in range(24)],
            "x": np.arange(24.0),
            "tier": ["gold", "silver", "bronze"] * 8,
            "branch": [f"b{i % 12}" for i in range(24)],
        }
    )
    return schema, frame
