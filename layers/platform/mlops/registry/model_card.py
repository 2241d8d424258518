"""The model card of a registered version (:class:`ModelCard`), built at registration by :func:`build_model_card`.

The governance view of a model: what it is for, what it was trained on, how well it does overall and per
customer segment, what it should not be trusted with, which features drive it, where it came from and who
approved it. The register step builds it from what it already holds (the held-out probabilities, the test
split, the explainability summary and the status history), so nothing here re-trains or re-scores. The segments
are the ones the data set's schema declares (:func:`mlops.registry.segments.schema_segments`) unless the caller
passes its own; the Markdown rendering is :mod:`mlops.registry.model_card_markdown`.

Uses numpy, pandas and scikit-learn: imported only by the pipeline container image, never by the zip layer's
scoring path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import roc_auc_score

from mlops.core.artifacts import ArtifactRef
from mlops.data.schema import DataSchema
from mlops.registry.segments import (
    MIN_SEGMENT_ROWS,
    Segmentation,
    SegmentFlag,
    SegmentMetrics,
    schema_segments,
    segment_metrics,
)
from mlops.registry.store import StatusChange

# Fixed limitations of any model the platform trains; the data-dependent ones are added by build_model_card.
STANDING_LIMITATIONS = (
    "Trained on one snapshot of one data set; re-validate before use on another population or period.",
    "Probabilities are not calibrated beyond what the algorithm provides; treat them as a ranking, not as odds.",
    "Unseen categories and missing values are imputed from training statistics, which can hide drift.",
    "Feature contributions describe the model, not the customer: they are associations, not causes.",
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelDetails(_Section):
    name: str
    version: str
    algorithm: str
    created_at: str
    threshold: float = Field(ge=0, le=1, description="Probability at or above which a row is predicted positive.")
    artifacts: dict[str, ArtifactRef] = Field(description="The version's files, each with the SHA-256 it must have.")


class IntendedUse(_Section):
    primary_use: str
    users: list[str]
    out_of_scope: list[str]


class DataSection(_Section):
    dataset_name: str
    key: str
    sha256: str
    rows: int
    train_rows: int
    test_rows: int
    positive_rate: float = Field(description="Share of positive rows in the whole data set.")
    feature_source: str
    id_column: str
    target: str
    positive_label: str
    numerical_features: list[str]
    categorical_features: list[str]


class OverallMetrics(_Section):
    """Held-out metrics at the version's threshold; a value is None when the evaluation did not report it."""

    auc_roc: float | None
    pr_auc: float | None
    accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    n: int
    positive_rate: float = Field(description="Share of positives in the held-out rows.")
    threshold: float


class Lineage(_Section):
    dataset_sha256: str
    execution_arn: str | None = None
    execution_name: str | None = None
    feature_group: str | None = None
    feature_group_version: int | None = None
    features_as_of: str | None = None
    previous_production_version: str | None = Field(
        default=None, description="The version production served when this one was registered (its parent)."
    )
    seed: int | None = None


class ModelCard(_Section):
    card_version: Literal[1] = 1
    model_details: ModelDetails
    intended_use: IntendedUse
    data: DataSection
    metrics: OverallMetrics
    segments: list[SegmentMetrics]
    limitations: list[str]
    explainability: dict[str, Any] = Field(
        description="`mlops.serving.global_importance.explainability_summary`, passed through."
    )
    lineage: Lineage
    approval_history: list[StatusChange]
    training: dict[str, Any] = Field(
        default_factory=dict,
        description="How it was trained: parameters, candidates' CV AUC, time, ONNX parity, imputation values.",
    )


def build_model_card(
    *,
    model_name: str,
    version: str,
    algorithm: str,
    created_at: str,
    threshold: float,
    artifacts: Mapping[str, ArtifactRef],
    data_key: str,
    dataset_sha256: str,
    rows: int,
    train_rows: int,
    test_rows: int,
    positive_rate: float,
    feature_source: str,
    metrics: Mapping[str, Any],
    probabilities: np.ndarray,
    labels: np.ndarray,
    test_frame: pd.DataFrame,
    schema: DataSchema,
    explainability: Mapping[str, Any],
    status_history: Sequence[StatusChange],
    segments: Mapping[str, Segmentation] | None = None,
    execution_arn: str | None = None,
    execution_name: str | None = None,
    feature_group: str | None = None,
    feature_group_version: int | None = None,
    features_as_of: dt.datetime | str | None = None,
    previous_production_version: str | None = None,
    seed: int | None = None,
    extra_limitations: Iterable[str] = (),
    training: Mapping[str, Any] | None = None,
) -> ModelCard:
    """The card of a version at registration.

    `metrics` is the evaluation step's dict (:class:`mlops.training.evaluation.ClassificationMetrics`, where the AUC is
    `roc_auc`; `auc_roc` is accepted too). `probabilities` and `labels` are the held-out rows of `test_frame`,
    scored by the registered model. `segments` are the groupings of those rows the card reports metrics for
    (:func:`mlops.registry.segments.segment_metrics`): by default (None) the ones `schema` declares, or its small
    categorical columns when it declares none (:func:`mlops.registry.segments.schema_segments`); `{}` for none.
    """
    truth = np.asarray(labels).astype(np.int64).ravel()
    dataset_name = schema.dataset_name or PurePosixPath(data_key).stem
    scores = np.asarray(probabilities, dtype=np.float64).ravel()
    groupings = schema_segments(test_frame, schema) if segments is None else segments
    per_segment = segment_metrics(scores, truth, test_frame, groupings, threshold)
    overall = _overall_metrics(metrics, truth, threshold)
    # The AUC the segments were flagged against (the evaluation's, recomputed from the same held-out scores).
    flagged_against = float(roc_auc_score(truth, scores)) if len(np.unique(truth)) == 2 else None
    return ModelCard(
        model_details=ModelDetails(
            name=model_name,
            version=version,
            algorithm=algorithm,
            created_at=created_at,
            threshold=threshold,
            artifacts=dict(artifacts),
        ),
        intended_use=intended_use(dataset_name, schema),
        data=DataSection(
            dataset_name=dataset_name,
            key=data_key,
            sha256=dataset_sha256,
            rows=rows,
            train_rows=train_rows,
            test_rows=test_rows,
            positive_rate=positive_rate,
            feature_source=feature_source,
            id_column=schema.id_column,
            target=schema.target,
            positive_label=schema.positive_label,
            numerical_features=list(schema.numerical),
            categorical_features=list(schema.categorical),
        ),
        metrics=overall,
        segments=per_segment,
        limitations=[
            accuracy_baseline_limitation(truth, schema.target),
            *segment_limitations(per_segment, flagged_against),
            *STANDING_LIMITATIONS,
            *extra_limitations,
        ],
        explainability=dict(explainability),
        lineage=Lineage(
            dataset_sha256=dataset_sha256,
            execution_arn=execution_arn,
            execution_name=execution_name,
            feature_group=feature_group,
            feature_group_version=feature_group_version,
            features_as_of=features_as_of.isoformat() if isinstance(features_as_of, dt.datetime) else features_as_of,
            previous_production_version=previous_production_version,
            seed=seed,
        ),
        approval_history=list(status_history),
        training=dict(training or {}),
    )


def intended_use(dataset_name: str, schema: DataSchema) -> IntendedUse:
    target = schema.target.replace("_", " ")
    return IntendedUse(
        primary_use=f"Rank the customers described by the {dataset_name} data set by their probability of "
        f"{target} (`{schema.target}` = `{schema.positive_label}`), so that the retention team can target offers "
        "at the customers most at risk of leaving.",
        users=[
            "Customer-retention and CRM teams choosing whom to contact with a retention offer.",
            "Marketing analysts sizing and evaluating retention campaigns.",
            "ML engineers and model-risk reviewers monitoring, approving or retiring the model.",
        ],
        out_of_scope=[
            "Credit, pricing, eligibility or any decision with a legal or similarly significant effect on a person.",
            "Automated action on an individual customer without a person reviewing the decision.",
            f"Customers, products, markets or periods unlike the {dataset_name} snapshot, until re-validated.",
            "Inferring protected characteristics, or explaining why a particular customer will leave.",
        ],
    )


def accuracy_baseline_limitation(labels: np.ndarray, target: str) -> str:
    """Why accuracy alone says little on imbalanced data: what predicting the majority class scores."""
    truth = np.asarray(labels).astype(np.int64).ravel()
    rate = float(truth.mean()) if truth.size else 0.0
    outcome = target.replace("_", " ")
    guess, baseline = (f"no {outcome}", 1 - rate) if rate <= 0.5 else (outcome, rate)
    return (
        f"Accuracy is not the measure: predicting {guess} for everyone gives {baseline:.1%} accuracy on the "
        f"{truth.size} held-out rows ({rate:.1%} positive); judge the model by AUC-ROC, PR-AUC, precision and recall."
    )


def segment_limitations(segments: Sequence[SegmentMetrics], overall_auc: float | None) -> list[str]:
    """One limitation per flagged segment, in segment order."""
    limitations: list[str] = []
    for item in segments:
        label = f"Segment {item.segment} = {item.value}"
        if SegmentFlag.SINGLE_CLASS in item.flags:
            kind = "positive" if item.positives else "negative"
            limitations.append(
                f"{label} has only {kind} rows ({item.n}): its AUC is undefined and the model's ranking there "
                "is untested."
            )
        if SegmentFlag.FEW_ROWS in item.flags:
            limitations.append(
                f"{label} has only {item.n} held-out rows (fewer than {MIN_SEGMENT_ROWS}): its metrics are too "
                "noisy to rely on."
            )
        if SegmentFlag.AUC_BELOW_OVERALL in item.flags and item.auc_roc is not None and overall_auc is not None:
            limitations.append(
                f"{label}: AUC {item.auc_roc:.3f} is {overall_auc - item.auc_roc:.3f} below the overall "
                f"{overall_auc:.3f} (n={item.n}); the model ranks these customers less well."
            )
    return limitations


def ranked_importance(raw: Any) -> list[tuple[str, float]]:
    """(feature, mean |contribution|), largest first, from the card's `explainability["global_importance"]`: the
    list `explainability_summary` returns (or a {feature: value} mapping)."""
    if isinstance(raw, Mapping):
        pairs = [(str(name), float(value)) for name, value in raw.items()]
    elif isinstance(raw, list):
        pairs = [(str(item["feature"]), float(item["mean_abs_contribution"])) for item in raw]
    else:
        return []
    return sorted(pairs, key=lambda pair: (-pair[1], pair[0]))


def _overall_metrics(metrics: Mapping[str, Any], truth: np.ndarray, threshold: float) -> OverallMetrics:
    def number(*names: str) -> float | None:
        for name in names:
            value = metrics.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
        return None

    n = number("n_samples", "n")
    rate = number("positive_rate")
    if rate is None:
        rate = float(truth.mean()) if truth.size else 0.0
    recorded_threshold = number("threshold")
    return OverallMetrics(
        auc_roc=number("auc_roc", "roc_auc"),
        pr_auc=number("pr_auc"),
        accuracy=number("accuracy"),
        precision=number("precision"),
        recall=number("recall"),
        f1=number("f1"),
        n=int(n) if n is not None else int(truth.size),
        positive_rate=rate,
        threshold=threshold if recorded_threshold is None else recorded_threshold,
    )
