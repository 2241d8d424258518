"""Segment metrics (mlops.registry.segments): numbers that match scikit-learn on each segment, the flags for
small, single-class and badly ranked segments, missing values, and the segments chosen without knowledge of
the data set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

from mlops.registry.segments import MISSING_VALUE, SegmentFlag, segment_metrics, small_categorical_segments
from model_card_examples import non_telecom_data

THRESHOLD = 0.5


def test_segment_metrics_equal_scikit_learn_on_each_segment() -> None:
    # Given random scores for 200 rows in three groups
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 200)
    probabilities = np.clip(0.3 * y + rng.random(200) * 0.7, 0, 1)
    groups = rng.choice(np.array(["a", "b", "c"], dtype=object), 200)
    frame = pd.DataFrame({"group": groups})
    # When segment metrics are computed, once from an array and once from the column's name
    from_array = segment_metrics(probabilities, y, frame, {"group": groups}, threshold=0.4)
    from_column = segment_metrics(probabilities, y, frame, {"group": "group"}, threshold=0.4)
    # Then each group's numbers are what scikit-learn computes on its rows
    assert from_array == from_column
    assert [item.value for item in from_array] == ["a", "b", "c"]
    for item in from_array:
        rows = groups == item.value
        predicted = (probabilities[rows] >= 0.4).astype(int)
        assert item.segment == "group"
        assert item.n == int(rows.sum())
        assert item.positives == int(y[rows].sum())
        assert item.positive_rate == pytest.approx(y[rows].mean())
        assert item.auc_roc == pytest.approx(roc_auc_score(y[rows], probabilities[rows]))
        assert item.recall == pytest.approx(recall_score(y[rows], predicted))
        assert item.precision == pytest.approx(precision_score(y[rows], predicted))
        assert item.accuracy == pytest.approx(accuracy_score(y[rows], predicted))
        assert SegmentFlag.FEW_ROWS not in item.flags
        assert SegmentFlag.SINGLE_CLASS not in item.flags


def test_a_small_segment_is_flagged() -> None:
    # Given 12 rows of region "north" (both classes) among 200
    rng = np.random.default_rng(2)
    region = np.array(["south"] * 188 + ["north"] * 12, dtype=object)
    y = np.tile([0, 1], 100)
    probabilities = rng.random(200)
    frame = pd.DataFrame({"region": region})
    # When segment metrics are computed
    segments = segment_metrics(probabilities, y, frame, {"region": region}, threshold=THRESHOLD)
    # Then only the small segment is flagged for its size
    north = next(item for item in segments if item.value == "north")
    south = next(item for item in segments if item.value == "south")
    assert SegmentFlag.FEW_ROWS in north.flags
    assert north.note is not None
    assert "only 12 rows" in north.note
    assert SegmentFlag.FEW_ROWS not in south.flags


def test_a_segment_ranked_worse_than_overall_is_flagged() -> None:
    # Given scores that separate the classes perfectly in group "a" and not at all in group "b"
    rng = np.random.default_rng(3)
    y = np.tile([0, 1], 100)
    group = np.array(["a"] * 100 + ["b"] * 100, dtype=object)
    probabilities = np.where(group == "a", 0.1 + 0.8 * y, rng.random(200))
    # When segment metrics are computed
    segments = segment_metrics(probabilities, y, pd.DataFrame(index=range(200)), {"group": group}, THRESHOLD)
    # Then "b" is flagged for its AUC being more than 0.05 below overall, and "a" is not
    flags = {item.value: item.flags for item in segments}
    assert flags == {"a": [], "b": [SegmentFlag.AUC_BELOW_OVERALL]}


def test_missing_segment_values_form_their_own_segment_listed_last() -> None:
    # Given a segment column with a missing value
    values = np.array(["yes", None, "no", "yes"], dtype=object)
    # When segment metrics are computed
    segments = segment_metrics([0.9, 0.2, 0.1, 0.4], [1, 0, 0, 1], pd.DataFrame(index=range(4)), {"p": values}, 0.5)
    # Then the values are sorted and the missing one comes last
    assert [item.value for item in segments] == ["no", "yes", MISSING_VALUE]


def test_mismatched_lengths_are_refused() -> None:
    # Given three scores for a four-row frame
    # Then the segments are not computed on misaligned rows
    with pytest.raises(ValueError, match="same rows"):
        segment_metrics([0.1, 0.2, 0.3], [0, 1, 0], pd.DataFrame(index=range(4)), {}, 0.5)


def test_small_categorical_columns_are_the_segments_of_an_unknown_data_set() -> None:
    # Given a 3-value and a 12-value categorical column, and a numerical one
    schema, frame = non_telecom_data()
    # When the segments are chosen without knowledge of the data set
    segments = small_categorical_segments(frame, schema)
    # Then only the categorical column with at most 10 values is one, with a value per row
    assert list(segments) == ["tier"]
    assert list(segments["tier"]) == list(frame["tier"])
