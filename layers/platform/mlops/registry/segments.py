"""Held-out metrics per segment of the rows, for the model card (:func:`segment_metrics`).

Which segments a model is judged on is the data set's knowledge, declared in its schema (``segments`` of
:class:`mlops.data.schema.DataSchema`): :func:`schema_segments` turns the declaration into one group label per row,
and falls back to :func:`small_categorical_segments`, the choice that needs no knowledge of the data set, when the
schema declares none. A caller may still pass its own groupings to :func:`segment_metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

from mlops.data.schema import DataSchema, SegmentSpec

MIN_SEGMENT_ROWS = 30
"""Segments with fewer held-out rows than this are flagged: their metrics are mostly noise."""

MAX_AUC_GAP = 0.05
"""Segments whose AUC is more than this below the overall AUC are flagged."""

MAX_GENERIC_SEGMENT_VALUES = 10
"""A categorical column with at most this many distinct values is a segment on data sets we know nothing about."""

MISSING_VALUE = "(missing)"

OTHER_GROUP = "other"
"""The group of a value that none of a segment's named groups lists."""

type Segmentation = np.ndarray | pd.Series | Sequence[Any] | str
"""One group label per row of the frame (positional, in the frame's row order), or the name of one of its columns."""


class SegmentFlag(StrEnum):
    FEW_ROWS = "few_rows"
    SINGLE_CLASS = "single_class"
    AUC_BELOW_OVERALL = "auc_below_overall"


class SegmentMetrics(BaseModel):
    """Held-out metrics of the rows where `segment` (a column or derived grouping) equals `value`.

    `auc_roc` is None when the segment holds one class only; `recall` when it holds no positives; `precision`
    when the model predicts no positive in it. `note` says why.
    """

    model_config = ConfigDict(extra="forbid")

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


def small_categorical_segments(frame: pd.DataFrame, schema: DataSchema) -> dict[str, np.ndarray]:
    """Every schema categorical column of `frame` with at most :data:`MAX_GENERIC_SEGMENT_VALUES` distinct values."""
    segments: dict[str, np.ndarray] = {}
    for column in schema.categorical:
        if column in frame.columns and frame[column].nunique(dropna=True) <= MAX_GENERIC_SEGMENT_VALUES:
            segments[column] = frame[column].to_numpy(dtype=object)
    return segments


def schema_segments(frame: pd.DataFrame, schema: DataSchema) -> dict[str, np.ndarray]:
    """The groupings the schema declares (``schema.segments``), one label per row of `frame`, in schema order.

    A segment without groups is labelled by its column's own values; one with groups by the name of the group
    listing the value, :data:`OTHER_GROUP` when none does. Numbers compare as numbers (``3`` is ``3.0``, and a
    number in a group matches the text ``"3"``), text stripped and case-insensitively; a missing value stays
    missing (None). A schema that declares no ``segments`` key gets :func:`small_categorical_segments`; one that
    declares ``{}`` gets none. Raises ValueError for a segment column absent from `frame` or a value listed in
    two groups of one segment.
    """
    if schema.segments is None:
        return small_categorical_segments(frame, schema)
    segments: dict[str, np.ndarray] = {}
    for name, spec in schema.segments.items():
        if spec.column not in frame.columns:
            raise ValueError(f"segment {name!r}: column {spec.column!r} is not in the data")
        values = frame[spec.column].to_numpy(dtype=object)
        if spec.groups is None:
            segments[name] = np.array([_own_label(value) for value in values], dtype=object)
        else:
            group_of = _group_lookup(name, spec)
            segments[name] = np.array([_group_label(value, group_of) for value in values], dtype=object)
    return segments


def segment_metrics(
    probabilities: np.ndarray | Sequence[float],
    labels: np.ndarray | Sequence[int],
    frame: pd.DataFrame,
    segments: Mapping[str, Segmentation],
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


def is_missing(value: object) -> bool:
    """None, NaN, pd.NA and NaT alike: pandas 3 string columns hold pd.NA, read_dataset's hold None."""
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


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


def _segment_keys(values: np.ndarray | pd.Series | Sequence[Any]) -> np.ndarray:
    # Positional, not index-aligned: the caller's arrays follow the frame's row order.
    raw = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    return np.array([MISSING_VALUE if is_missing(v) else str(v) for v in raw.ravel()], dtype=object)


def _own_label(value: object) -> str | None:
    # A segment's label for a value of its own column: 3 and 3.0 are one segment "3"; " Yes" and "yes" are "yes".
    if is_missing(value):
        return None
    if _is_number(value):
        number = float(value)  # type: ignore[arg-type]
        return str(int(number)) if number.is_integer() else str(number)
    return str(value).strip().lower()


def _group_lookup(name: str, spec: SegmentSpec) -> dict[float | str, str]:
    group_of: dict[float | str, str] = {}
    for group, members in (spec.groups or {}).items():
        for member in members:
            key = _match_key(member)
            if key in group_of and group_of[key] != group:
                raise ValueError(f"segment {name!r}: {member!r} is listed in groups {group_of[key]!r} and {group!r}")
            group_of[key] = group
    return group_of


def _group_label(value: object, group_of: Mapping[float | str, str]) -> str | None:
    return None if is_missing(value) else group_of.get(_match_key(value), OTHER_GROUP)


def _match_key(value: object) -> float | str:
    # Numbers and numeric text meet as floats (categoricals are read as text: "415" must match a listed 415).
    if _is_number(value):
        return float(value)  # type: ignore[arg-type]
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text.lower()
    return number if math.isfinite(number) else text.lower()


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)
