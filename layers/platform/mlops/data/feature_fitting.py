"""Learning the feature specification on the training rows: medians, modes, seen categories, the high-value
threshold."""

from __future__ import annotations

import numpy as np

from mlops.data.derived_features import CHARGES, applicable_derived_features
from mlops.data.feature_spec import FeatureSpec
from mlops.data.features import Columns, row_count
from mlops.data.schema import DataSchema

HIGH_VALUE_QUANTILE = 80.0
"""Percentile of the training ``total_charges`` above which a customer is "high value"."""
MISSING_CATEGORY = "__missing__"
"""Fill value of a categorical column that had no value at all in the training rows."""


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def fit_feature_spec(columns: Columns, schema: DataSchema) -> FeatureSpec:
    """Learn medians, modes, seen categories and the high-value threshold from the training rows.

    Missing values (NaN/inf for numbers, None or non-strings for text) are ignored while learning. A column
    absent from ``columns`` or without any value falls back to 0.0 / ``MISSING_CATEGORY``.
    """
    n = row_count(columns, schema.feature_columns)
    numeric: dict[str, np.ndarray] = {}
    numeric_fill: dict[str, float] = {}
    for name in schema.numerical:
        values = np.asarray(columns[name], dtype=np.float64) if name in columns else np.full(n, np.nan)
        finite = values[np.isfinite(values)]
        numeric_fill[name] = float(np.median(finite)) if finite.size else 0.0
        numeric[name] = values

    categorical_fill: dict[str, str] = {}
    categories: dict[str, list[str]] = {}
    for name in schema.categorical:
        raw = columns.get(name)
        present = [value for value in raw if _is_text(value)] if raw is not None else []
        if present:
            seen, counts = np.unique(np.array(present, dtype=str), return_counts=True)
            categories[name] = [str(value) for value in seen]
            categorical_fill[name] = str(seen[int(np.argmax(counts))])  # ties: alphabetically first
        else:
            categories[name] = []
            categorical_fill[name] = MISSING_CATEGORY

    derived = applicable_derived_features(schema)
    threshold: float | None = None
    if any(feature.needs_high_value_threshold for feature in derived):
        total_charges = sum(numeric[name] for name in CHARGES)  # NaN when any charge is missing
        complete = total_charges[np.isfinite(total_charges)]
        if complete.size:
            threshold = float(np.percentile(complete, HIGH_VALUE_QUANTILE))
        else:
            derived = [feature for feature in derived if not feature.needs_high_value_threshold]

    return FeatureSpec(
        data_schema=schema,
        numeric_fill=numeric_fill,
        categorical_fill=categorical_fill,
        categories=categories,
        high_value_threshold=threshold,
        derived=[feature.name for feature in derived],
    )
