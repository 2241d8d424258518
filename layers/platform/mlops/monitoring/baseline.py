"""The training distribution a model's drift is measured against, stored with it at training time.

:func:`build_baseline` summarises the training rows (and the model's scores on held-out rows) as bin counts and
shares: numeric features and the score over training-quantile bins, categorical features over their categories,
the rare ones merged into :data:`OTHER`. :mod:`mlops.monitoring.drift` compares recent inputs with it. Its test
is a two-sample one, so it needs the counts (the baseline's own sample size), not only the shares.

Baselines stored before counts were kept load with ``counts`` and ``missing_count`` None; ``training_counts``
then derives them from the shares and the baseline's row count. The result is exact, because the shares were
those counts divided by those rows. The exception is a score baseline stored before ``score_rows`` was kept:
its sample size is unknown, so ``training_counts`` returns None.

numpy and pydantic only: this module runs in a Lambda function, without pandas or scikit-learn.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, Field

from mlops.core.clock import utc
from mlops.data.schema import DataSchema

OTHER = "__other__"
"""Bucket of the categories under :data:`MIN_CATEGORY_SHARE` in training, and of unseen categories."""
MIN_CATEGORY_SHARE = 0.01
"""Categories rarer than this in training are merged into :data:`OTHER` (too few rows to compare alone)."""


class NumericBaseline(BaseModel):
    edges: list[float] = Field(description="Interior bin edges (training quantiles, strictly increasing).")
    proportions: list[float] = Field(description="Share of training rows per bin (len(edges) + 1).")
    missing_share: float = 0.0
    counts: list[int] | None = Field(
        default=None, description="Training rows per bin; None in baselines stored before counts were kept."
    )
    missing_count: int | None = Field(default=None, description="Training rows without a value; None likewise.")

    def training_counts(self, rows: int) -> tuple[np.ndarray, int] | None:
        """Training rows per bin and missing training rows; ``rows`` is the baseline's sample size, used only
        when the counts were not stored (None when it is unknown, 0)."""
        return _training_counts(self.proportions, self.missing_share, self.counts, self.missing_count, rows)


class CategoricalBaseline(BaseModel):
    proportions: dict[str, float] = Field(description="Share of training rows per category (incl. OTHER).")
    missing_share: float = 0.0
    counts: dict[str, int] | None = Field(
        default=None, description="Training rows per category (incl. OTHER); None in baselines stored before."
    )
    missing_count: int | None = Field(default=None, description="Training rows without a value; None likewise.")

    def training_counts(self, rows: int) -> tuple[np.ndarray, int] | None:
        """Training rows per category, in the order of ``proportions``, and missing training rows (see
        :meth:`NumericBaseline.training_counts`)."""
        counts = None if self.counts is None else [self.counts.get(category, 0) for category in self.proportions]
        return _training_counts(list(self.proportions.values()), self.missing_share, counts, self.missing_count, rows)


class DriftBaseline(BaseModel):
    created_at: dt.datetime
    rows: int
    numeric: dict[str, NumericBaseline]
    categorical: dict[str, CategoricalBaseline]
    score: NumericBaseline = Field(description="The model's churn probabilities on the held-out rows.")
    score_rows: int = Field(default=0, description="Number of held-out rows the score distribution comes from.")


def build_baseline(
    columns: Mapping[str, np.ndarray],
    scores: np.ndarray,
    schema: DataSchema,
    *,
    bins: int = 10,
    created_at: dt.datetime | None = None,
) -> DriftBaseline:
    """The training distribution of every schema feature, and of the model's scores on held-out rows.

    Numeric bins have training-quantile edges (deduplicated, so a near-constant column gets few bins);
    counts and shares are over non-missing rows, ``missing_share`` over all rows. Categorical ones likewise,
    with categories under 1% merged into :data:`OTHER`. Raises ``ValueError`` for a schema feature absent from
    ``columns``, no rows, or ``bins < 2``.
    """
    if bins < 2:
        raise ValueError("bins must be at least 2")
    absent = [name for name in schema.feature_columns if name not in columns]
    if absent:
        raise ValueError(f"feature columns missing from the training data: {absent}")
    rows = row_count([columns[name] for name in schema.feature_columns])
    scores = np.asarray(scores, dtype=np.float64)
    if rows == 0 or scores.size == 0:
        raise ValueError("a baseline needs at least one training row and one score")
    return DriftBaseline(
        created_at=created_at or utc(),
        rows=rows,
        numeric={name: _numeric_baseline(columns[name], bins) for name in schema.numerical},
        categorical={name: _categorical_baseline(columns[name]) for name in schema.categorical},
        score=_numeric_baseline(scores, bins),
        score_rows=int(scores.size),
    )


def _numeric_baseline(values: np.ndarray, bins: int) -> NumericBaseline:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    missing = values.size - finite.size
    missing_share = 1.0 - finite.size / values.size
    if finite.size == 0:
        return NumericBaseline(
            edges=[], proportions=[0.0], missing_share=missing_share, counts=[0], missing_count=missing
        )
    edges = np.unique(np.quantile(finite, np.arange(1, bins) / bins))
    edges = edges[edges > finite.min()]  # an edge at the minimum would only add an always-empty first bin
    counts = bin_counts(edges, finite)
    return NumericBaseline(
        edges=edges.tolist(),
        proportions=(counts / finite.size).tolist(),
        missing_share=missing_share,
        counts=counts.tolist(),
        missing_count=missing,
    )


def _categorical_baseline(values: np.ndarray) -> CategoricalBaseline:
    present = [value for value in values if isinstance(value, str)]
    tallies = Counter(map(str, present))  # plain str keys, whatever str subclass the column holds
    counts = {
        category: tallies[category]
        for category in sorted(tallies)
        if tallies[category] / len(present) >= MIN_CATEGORY_SHARE
    }
    counts[OTHER] = len(present) - sum(counts.values())  # always there: unseen categories are counted in it
    return CategoricalBaseline(
        proportions={category: count / len(present) for category, count in counts.items()} if present else {OTHER: 0.0},
        missing_share=1.0 - len(present) / len(values),
        counts=counts,
        missing_count=len(values) - len(present),
    )


def _training_counts(
    proportions: Sequence[float],
    missing_share: float,
    counts: Sequence[int] | None,
    missing_count: int | None,
    rows: int,
) -> tuple[np.ndarray, int] | None:
    if counts is not None and missing_count is not None:
        return np.asarray(counts, dtype=np.int64), missing_count
    if rows <= 0:
        return None
    # A baseline stored before counts were kept: its shares were exactly these counts over these rows.
    present = round(rows * (1.0 - missing_share))
    return np.rint(np.asarray(proportions, dtype=np.float64) * present).astype(np.int64), rows - present


def bin_counts(edges: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """Rows per bin; bin i holds edges[i-1] <= value < edges[i]."""
    return np.bincount(np.searchsorted(edges, finite, side="right"), minlength=edges.size + 1)


def row_count(arrays: Sequence[np.ndarray]) -> int:
    """Common length of the arrays (0 when there are none); raises ``ValueError`` if they differ."""
    lengths = {len(array) for array in arrays}
    if len(lengths) > 1:
        raise ValueError(f"columns (and scores) must have the same length, got lengths {sorted(lengths)}")
    return lengths.pop() if lengths else 0
