"""The model card of a registered version, as JSON (:class:`ModelCard`) and as Markdown (:func:`render_markdown`).

The governance view of a model: what it is for, what it was trained on, how well it does overall and per
customer segment, what it should not be trusted with, which features drive it, where it came from and who
approved it. The register step builds it from what it already holds (the held-out probabilities, the test
split, the explainability summary and the status history), so nothing here re-trains or re-scores.

Uses numpy, pandas and scikit-learn: imported only by the pipeline container image, never by the zip layer's
scoring path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

from mlops.core.artifacts import ArtifactRef
from mlops.data.schema import DataSchema
from mlops.registry.store import StatusChange

MIN_SEGMENT_ROWS = 30
"""Segments with fewer held-out rows than this are flagged: their metrics are mostly noise."""

MAX_AUC_GAP = 0.05
"""Segments whose AUC is more than this below the overall AUC are flagged."""

MAX_GENERIC_SEGMENT_VALUES = 10
"""A categorical column with at most this many distinct values is a segment on data sets we know nothing about."""

MISSING_VALUE = "(missing)"
UNKNOWN_REGION = "Unknown"
TOP_FEATURES = 10

# US Census Bureau regions (https://www2.census.gov/geo/pdfs/maps-data/maps/reference/us_regdiv.pdf);
# the District of Columbia belongs to the South Atlantic division.
CENSUS_REGIONS: dict[str, tuple[str, ...]] = {
    "Northeast": ("CT", "ME", "MA", "NH", "RI", "VT", "NJ", "NY", "PA"),
    "Midwest": ("IL", "IN", "MI", "OH", "WI", "IA", "KS", "MN", "MO", "NE", "ND", "SD"),
    "South": (
        *("DE", "DC", "FL", "GA", "MD", "NC", "SC", "VA", "WV"),
        *("AL", "KY", "MS", "TN"),
        *("AR", "LA", "OK", "TX"),
    ),
    "West": ("AZ", "CO", "ID", "MT", "NV", "NM", "UT", "WY", "AK", "CA", "HI", "OR", "WA"),
}
STATE_REGIONS: dict[str, str] = {state: region for region, states in CENSUS_REGIONS.items() for state in states}

# Fixed limitations of any churn model the pilot trains; the data-dependent ones are added by build_model_card.
STANDING_LIMITATIONS = (
    "Trained on one snapshot of one operator's customers; re-validate before use on another population or period.",
    "Probabilities are not calibrated beyond what the algorithm provides; treat them as a ranking, not as odds.",
    "Unseen categories and missing values are imputed from training statistics, which can hide drift.",
    "Feature contributions describe the model, not the customer: they are associations, not causes of churn.",
)

SECTION_TITLES: dict[str, str] = {
    "model_details": "Model details",
    "intended_use": "Intended use",
    "data": "Data",
    "metrics": "Metrics",
    "segments": "Segment metrics",
    "limitations": "Limitations",
    "explainability": "Explainability",
    "lineage": "Lineage",
    "approval_history": "Approval history",
}
"""The Markdown heading (level 2) of each card section, in document order."""


# ------------------------------------------------------------------------------------------------ the card


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelDetails(_Section):
    name: str
    version: str
    algorithm: str
    created_at: str
    threshold: float = Field(ge=0, le=1, description="Probability at or above which a customer is predicted to churn.")
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
    positive_rate: float = Field(description="Share of positive (churn) rows in the whole data set.")
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


class SegmentFlag(StrEnum):
    FEW_ROWS = "few_rows"
    SINGLE_CLASS = "single_class"
    AUC_BELOW_OVERALL = "auc_below_overall"


class SegmentMetrics(_Section):
    """Held-out metrics of the rows where `segment` (a column or derived grouping) equals `value`.

    `auc_roc` is None when the segment holds one class only; `recall` when it holds no positives; `precision`
    when the model predicts no positive in it. `note` says why.
    """

    segment: str
    value: str
    n: int
    positives: int
    positive_rate: float
    auc_roc: float | None
    recall: float | None
    precision: float | None
    accuracy: float
    flags: list[SegmentFlag] = Field(default_factory=list)
    note: str | None = None


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
        description="`mlops.serving.explain.explainability_summary`, passed through."
    )
    lineage: Lineage
    approval_history: list[StatusChange]
    training: dict[str, Any] = Field(
        default_factory=dict,
        description="How it was trained: parameters, candidates' CV AUC, time, ONNX parity, imputation values.",
    )


# ------------------------------------------------------------------------------------------------ segments


def state_region(state: object) -> str | None:
    """The Census region of a US state code (None for a missing value, `Unknown` for an unknown code)."""
    if _is_missing(state):
        return None
    return STATE_REGIONS.get(str(state).strip().upper(), UNKNOWN_REGION)


def telecom_segments(frame: pd.DataFrame, schema: DataSchema) -> dict[str, np.ndarray]:
    """The groupings the card reports metrics for, one value per row of `frame`.

    Telecom-aware where the columns exist: `international_plan` (yes/no) and `state_region` (the `state`
    column mapped to Census regions, because 51 states leave most state segments too small to measure).
    Any other data set: every schema categorical column with at most 10 distinct values.
    """
    segments: dict[str, np.ndarray] = {}
    if "international_plan" in frame.columns:
        segments["international_plan"] = np.array(
            [None if _is_missing(v) else str(v).strip().lower() for v in frame["international_plan"]], dtype=object
        )
    if "state" in frame.columns:
        segments["state_region"] = np.array([state_region(v) for v in frame["state"]], dtype=object)
    if segments:
        return segments
    for column in schema.categorical:
        if column in frame.columns and frame[column].nunique(dropna=True) <= MAX_GENERIC_SEGMENT_VALUES:
            segments[column] = frame[column].to_numpy(dtype=object)
    return segments


def segment_metrics(
    probabilities: np.ndarray | Sequence[float],
    labels: np.ndarray | Sequence[int],
    frame: pd.DataFrame,
    segments: Mapping[str, np.ndarray | pd.Series | Sequence[Any] | str],
    threshold: float,
) -> list[SegmentMetrics]:
    """Metrics of every value of every segment (values in sorted order, missing last).

    `probabilities` and `labels` (0/1) are aligned with the rows of `frame` (the held-out split); a segment is
    an array of one value per row, or the name of a column of `frame`. Segments are flagged when they have
    fewer than :data:`MIN_SEGMENT_ROWS` rows, a single class, or an AUC more than :data:`MAX_AUC_GAP` below
    the AUC of all the rows.
    """
    scores = np.asarray(probabilities, dtype=np.float64).ravel()
    truth = np.asarray(labels).astype(np.int64).ravel()
    if scores.shape != truth.shape or len(truth) != len(frame):
        raise ValueError(
            f"probabilities ({scores.size}), labels ({truth.size}) and frame ({len(frame)}) must have the same rows"
        )
    predicted = (scores >= threshold).astype(np.int64)
    overall_auc = float(roc_auc_score(truth, scores)) if len(np.unique(truth)) == 2 else None
    results: list[SegmentMetrics] = []
    for name, grouping in segments.items():
        keys = _segment_keys(frame[grouping] if isinstance(grouping, str) else grouping)
        if len(keys) != len(truth):
            raise ValueError(f"segment {name!r} has {len(keys)} values for {len(truth)} rows")
        for value in sorted(set(keys), key=lambda key: (key == MISSING_VALUE, key)):
            rows = keys == value
            results.append(_one_segment(name, value, scores[rows], truth[rows], predicted[rows], overall_auc))
    return results


def _one_segment(
    name: str,
    value: str,
    scores: np.ndarray,
    truth: np.ndarray,
    predicted: np.ndarray,
    overall_auc: float | None,
) -> SegmentMetrics:
    n, positives = len(truth), int(truth.sum())
    flags: list[SegmentFlag] = []
    notes: list[str] = []
    if n < MIN_SEGMENT_ROWS:
        flags.append(SegmentFlag.FEW_ROWS)
        notes.append(f"only {n} rows (fewer than {MIN_SEGMENT_ROWS})")
    auc: float | None = None
    if 0 < positives < n:
        auc = float(roc_auc_score(truth, scores))
        if overall_auc is not None and overall_auc - auc > MAX_AUC_GAP:
            flags.append(SegmentFlag.AUC_BELOW_OVERALL)
            notes.append(f"AUC {overall_auc - auc:.3f} below overall")
    else:
        flags.append(SegmentFlag.SINGLE_CLASS)
        notes.append(f"AUC undefined: only {'positive' if positives else 'negative'} rows")
    if not positives:
        notes.append("recall undefined: no positive rows")
    if not predicted.any():
        notes.append("precision undefined: nothing predicted positive")
    return SegmentMetrics(
        segment=name,
        value=value,
        n=n,
        positives=positives,
        positive_rate=positives / n,
        auc_roc=auc,
        recall=float(recall_score(truth, predicted, zero_division=0)) if positives else None,
        precision=float(precision_score(truth, predicted, zero_division=0)) if predicted.any() else None,
        accuracy=float(accuracy_score(truth, predicted)),
        flags=flags,
        note="; ".join(notes) or None,
    )


def _is_missing(value: object) -> bool:
    # None, NaN, pd.NA and NaT alike: pandas 3 string columns hold pd.NA, read_dataset's hold None.
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def _segment_keys(values: np.ndarray | pd.Series | Sequence[Any]) -> np.ndarray:
    # Positional, not index-aligned: the caller's arrays follow the frame's row order.
    raw = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    return np.array([MISSING_VALUE if _is_missing(v) else str(v) for v in raw.ravel()], dtype=object)


# ------------------------------------------------------------------------------------------------ building


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
    scored by the registered model; the segments are :func:`telecom_segments` of `test_frame`.
    """
    truth = np.asarray(labels).astype(np.int64).ravel()
    dataset_name = schema.dataset_name or PurePosixPath(data_key).stem
    scores = np.asarray(probabilities, dtype=np.float64).ravel()
    segments = segment_metrics(scores, truth, test_frame, telecom_segments(test_frame, schema), threshold)
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
        segments=segments,
        limitations=[
            accuracy_baseline_limitation(truth, schema.target),
            *segment_limitations(segments, flagged_against),
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


# ------------------------------------------------------------------------------------------------ Markdown


def render_markdown(card: ModelCard) -> str:
    """The card as a Markdown document; depends only on `card`, so the same card renders the same text."""
    details, data, metrics = card.model_details, card.data, card.metrics
    lines: list[str] = [f"# Model card: {details.name} {details.version}"]

    lines += _heading("model_details")
    lines += _table(
        ("Field", "Value"),
        [
            ("Model", details.name),
            ("Version", details.version),
            ("Algorithm", details.algorithm),
            ("Created at", details.created_at),
            ("Decision threshold", _number(details.threshold)),
        ],
    )
    if details.artifacts:
        lines += ["", "Artifacts:", ""]
        lines += _table(
            ("Artifact", "Key", "SHA-256", "Bytes"),
            [(name, f"`{ref.key}`", f"`{ref.sha256}`", str(ref.size_bytes)) for name, ref in details.artifacts.items()],
        )

    lines += _heading("intended_use")
    lines += [f"**Primary use.** {card.intended_use.primary_use}", "", "**Users:**", ""]
    lines += [f"- {user}" for user in card.intended_use.users]
    lines += ["", "**Out of scope:**", ""]
    lines += [f"- {use}" for use in card.intended_use.out_of_scope]

    lines += _heading("data")
    lines += _table(
        ("Field", "Value"),
        [
            ("Data set", data.dataset_name),
            ("Key", f"`{data.key}`"),
            ("SHA-256", f"`{data.sha256}`"),
            ("Rows", str(data.rows)),
            ("Train / test rows", f"{data.train_rows} / {data.test_rows}"),
            ("Positive rate", _percent(data.positive_rate)),
            ("Feature source", data.feature_source),
            ("Id column", f"`{data.id_column}`"),
            ("Target", f"`{data.target}` = `{data.positive_label}`"),
            ("Numerical features", ", ".join(data.numerical_features) or "none"),
            ("Categorical features", ", ".join(data.categorical_features) or "none"),
        ],
    )

    lines += _heading("metrics")
    summary = f"Held-out rows: {metrics.n} ({_percent(metrics.positive_rate)} positive), threshold "
    lines += [summary + f"{_number(metrics.threshold)}.", ""]
    lines += _table(
        ("Metric", "Value"),
        [
            ("AUC-ROC", _number(metrics.auc_roc)),
            ("PR-AUC", _number(metrics.pr_auc)),
            ("Accuracy", _number(metrics.accuracy)),
            ("Precision", _number(metrics.precision)),
            ("Recall", _number(metrics.recall)),
            ("F1", _number(metrics.f1)),
        ],
    )

    lines += _heading("segments")
    if card.segments:
        lines += _table(
            (
                "Segment",
                "Value",
                "n",
                "Positives",
                "Positive rate",
                "AUC-ROC",
                "Recall",
                "Precision",
                "Accuracy",
                "Flags",
            ),
            [
                (
                    item.segment,
                    item.value,
                    str(item.n),
                    str(item.positives),
                    _percent(item.positive_rate),
                    _number(item.auc_roc),
                    _number(item.recall),
                    _number(item.precision),
                    _number(item.accuracy),
                    ", ".join(flag.value for flag in item.flags),
                )
                for item in card.segments
            ],
        )
    else:
        lines.append("No segments: the data set has no column to group customers by.")

    lines += _heading("limitations")
    lines += [f"- {limitation}" for limitation in card.limitations] or ["None recorded."]

    lines += _heading("explainability")
    lines += _explainability_lines(card.explainability)

    lineage = card.lineage
    lines += _heading("lineage")
    lines += _table(
        ("Field", "Value"),
        [
            (label, value)
            for label, value in (
                ("Dataset SHA-256", f"`{lineage.dataset_sha256}`"),
                ("Execution ARN", lineage.execution_arn),
                ("Execution name", lineage.execution_name),
                ("Feature group", lineage.feature_group),
                ("Feature group version", _text(lineage.feature_group_version)),
                ("Features as of", lineage.features_as_of),
                ("Previous production version", lineage.previous_production_version),
                ("Seed", _text(lineage.seed)),
            )
            if value is not None
        ],
    )

    lines += _heading("approval_history")
    if card.approval_history:
        lines += _table(
            ("Status", "At", "By", "Reason"),
            [(change.status.value, change.at, change.by, change.reason) for change in card.approval_history],
        )
    else:
        lines.append("No status changes recorded.")
    return "\n".join(lines) + "\n"


def _explainability_lines(summary: Mapping[str, Any]) -> list[str]:
    if not summary:
        return ["No explainability summary was recorded."]
    lines: list[str] = []
    if summary.get("method"):
        lines += [f"Method: {summary['method']}", ""]
    facts = [
        f"{label} {_number(value) if isinstance(value, float) else value}"
        for label, key in (("output space", "output_space"), ("base value", "base_value"), ("rows", "rows"))
        if (value := summary.get(key)) is not None
    ]
    if facts:
        lines += [f"Global importance on the held-out rows ({', '.join(facts)}):", ""]
    importance = ranked_importance(summary.get("global_importance"))[:TOP_FEATURES]
    if importance:
        lines += _table(
            ("Rank", "Feature", "Mean abs contribution"),
            [(str(rank), feature, _number(value)) for rank, (feature, value) in enumerate(importance, 1)],
        )
    else:
        lines.append("No global importance was recorded.")
    return lines


def ranked_importance(raw: Any) -> list[tuple[str, float]]:
    """(feature, mean |contribution|), largest first, from the list `explainability_summary` returns (or a
    {feature: value} mapping)."""
    if isinstance(raw, Mapping):
        pairs = [(str(name), float(value)) for name, value in raw.items()]
    elif isinstance(raw, list):
        pairs = [(str(item["feature"]), float(item["mean_abs_contribution"])) for item in raw]
    else:
        return []
    return sorted(pairs, key=lambda pair: (-pair[1], pair[0]))


def _heading(section: str) -> list[str]:
    return ["", f"## {SECTION_TITLES[section]}", ""]


def _table(header: Sequence[str], rows: Iterable[Sequence[str | None]]) -> list[str]:
    def line(cells: Sequence[str | None]) -> str:
        return "| " + " | ".join(_cell(cell) for cell in cells) + " |"

    return [line(header), "|" + "|".join("---" for _ in header) + "|", *(line(row) for row in rows)]


def _cell(value: str | None) -> str:
    # A pipe or a newline would break the table row.
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _number(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
