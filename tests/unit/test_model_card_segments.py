"""Segment metrics (mlops.registry.segments): numbers that match scikit-learn on each segment, the flags for
small, single-class and badly ranked segments, missing values; the segments a schema declares (the telecom
schema's international plan and Census regions, named groups and numbers on other data), and the segments chosen
without knowledge of the data set when it declares none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

from mlops.data.schema import DataSchema
from mlops.registry.segments import (
    MISSING_VALUE,
    OTHER_GROUP,
    SegmentFlag,
    schema_segments,
    segment_metrics,
    small_categorical_segments,
)
from model_card_examples import TelecomExample, non_telecom_data, telecom_example

THRESHOLD = 0.5

US_STATES = (
    *("AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY"),
    *("LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND"),
    *("OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY"),
)


@pytest.fixture(scope="module")
def telecom() -> TelecomExample:
    return telecom_example()


def _accounts_schema(segments: dict[str, object] | None) -> DataSchema:
    # A data set of another shape than the telecom one: a plan, a channel and a count of complaints.
    return DataSchema.model_validate(
        {
            "id_column": "account",
            "target": "cancelled",
            "positive_label": "1",
            "numerical": ["complaints"],
            "categorical": ["plan", "channel"],
            "segments": segments,
        }
    )


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


def test_other_data_sets_without_declared_segments_fall_back_on_their_small_categorical_columns() -> None:
    # Given a schema that declares no segments, with a 3-value and a 12-value categorical column
    schema, frame = non_telecom_data()
    # When the schema's segments are computed
    segments = schema_segments(frame, schema)
    # Then they are the small categorical columns, as if the data set were unknown
    assert list(segments) == ["tier"]
    assert list(segments["tier"]) == list(frame["tier"])


def test_a_schema_that_declares_no_segment_gets_none() -> None:
    # Given a schema whose segments are declared empty, on data with a small categorical column
    schema = _accounts_schema({})
    frame = pd.DataFrame({"account": ["a1"], "complaints": [1.0], "plan": ["basic"], "channel": ["web"]})
    # When the schema's segments are computed
    # Then there is none: an empty declaration is not the same as no declaration
    assert schema_segments(frame, schema) == {}


def test_declared_groups_numbers_and_text_are_matched_as_the_schema_says() -> None:
    # Given a schema of another shape declaring named groups of a plan (one value unlisted), a numerical column by
    # its own values, and a channel by its own values; text with stray case and spaces, numbers as 1 and 1.0
    schema = _accounts_schema(
        {
            "plan_family": {"column": "plan", "groups": {"Paid": ["Gold", "silver"], "Free": ["trial"]}},
            "complaints": {"column": "complaints"},
            "channel": {"column": "channel"},
        }
    )
    frame = pd.DataFrame(
        {
            "account": ["a1", "a2", "a3", "a4", "a5"],
            "complaints": [1.0, 1, 2.5, None, 0.0],
            "plan": [" gold", "SILVER", "Trial", "legacy", None],
            "channel": ["Web", "web ", "Shop", None, "shop"],
        },
        dtype=object,
    )
    # When the schema's segments are computed
    segments = schema_segments(frame, schema)
    # Then named groups take their values whatever the case or spaces, an unlisted value is "other", missing stays
    # missing, and a column's own values are grouped as numbers or as case-insensitive text
    assert list(segments) == ["plan_family", "complaints", "channel"]
    assert list(segments["plan_family"]) == ["Paid", "Paid", "Free", OTHER_GROUP, None]
    assert list(segments["complaints"]) == ["1", "1", "2.5", None, "0"]
    assert list(segments["channel"]) == ["web", "web", "shop", None, "shop"]


def test_a_number_listed_in_a_group_matches_the_same_number_read_as_text() -> None:
    # Given area codes declared as numbers, in a categorical column that the data set reader gives as text
    schema = _accounts_schema({"area": {"column": "channel", "groups": {"bay": [415, 408.0], "east": ["510"]}}})
    frame = pd.DataFrame({"channel": ["415", "408", " 510 ", 510, "650"]}, dtype=object)
    # When the schema's segments are computed
    # Then numbers compare as numbers on both sides, and other numbers are "other"
    assert list(schema_segments(frame, schema)["area"]) == ["bay", "bay", "east", "east", OTHER_GROUP]


def test_a_declaration_that_cannot_be_applied_is_refused() -> None:
    # Given a value listed in two groups of one segment, and a segment whose column is not in the data
    twice = _accounts_schema({"plan": {"column": "plan", "groups": {"paid": ["gold"], "premium": ["GOLD"]}}})
    frame = pd.DataFrame({"account": ["a1"], "complaints": [1.0], "plan": ["gold"], "channel": ["web"]})
    # Then neither is silently given a grouping
    with pytest.raises(ValueError, match="listed in groups 'paid' and 'premium'"):
        schema_segments(frame, twice)
    with pytest.raises(ValueError, match="column 'channel' is not in the data"):
        schema_segments(frame.drop(columns="channel"), _accounts_schema({"channel": {"column": "channel"}}))


def test_the_telecom_schema_maps_every_state_and_dc_to_a_census_region(telecom: TelecomExample) -> None:
    # Given the 50 state codes and the District of Columbia, as the telecom data could hold them, and a territory,
    # lower-case codes with spaces and a missing state
    codes = [*US_STATES, "DC"]
    assert len(set(codes)) == 51
    states = [*codes, "PR", " ks ", None]
    frame = pd.DataFrame({"state": states, "international_plan": ["no"] * len(states)}, dtype=object)
    # When they are grouped by the regions the telecom schema declares
    regions = list(schema_segments(frame, telecom.schema)["state_region"])
    # Then each state has one of the four Census regions, in the Census' proportions, and DC is in the South;
    # case and spaces do not matter, a territory is "other" and a missing state stays missing
    by_state = dict(zip(codes, regions[: len(codes)], strict=True))
    assert pd.Series(by_state).value_counts().to_dict() == {"South": 17, "West": 13, "Midwest": 12, "Northeast": 9}
    assert by_state["DC"] == "South"
    assert [by_state[code] for code in ("NY", "OH", "TX", "CA")] == ["Northeast", "Midwest", "South", "West"]
    assert regions[len(codes) :] == [OTHER_GROUP, "Midwest", None]


def test_the_telecom_data_is_segmented_by_international_plan_and_region(telecom: TelecomExample) -> None:
    # Given the whole telecom data set and its schema
    # When the schema's segments are computed
    segments = schema_segments(telecom.frame, telecom.schema)
    # Then there is one international-plan and one state-region value per row, and no state outside the regions
    assert list(segments) == ["international_plan", "state_region"]
    assert set(segments["international_plan"]) == {"yes", "no"}
    assert set(segments["state_region"]) == {"Northeast", "Midwest", "South", "West"}
    assert all(len(values) == len(telecom.frame) for values in segments.values())


def test_the_telecom_card_segments_are_those_of_the_pilot(telecom: TelecomExample) -> None:
    # Given the card of a model scored on the telecom test split, built without segments from the caller
    card = telecom.card
    # Then its segments are the international plan and the Census region, with the rows and positives the pilot's
    # own segmentation gave before the schema declared it
    counts = [(item.segment, item.value, item.n, item.positives) for item in card.segments]
    assert counts == [
        ("international_plan", "no", 714, 81),
        ("international_plan", "yes", 86, 32),
        ("state_region", "Midwest", 186, 30),
        ("state_region", "Northeast", 139, 16),
        ("state_region", "South", 276, 35),
        ("state_region", "West", 199, 32),
    ]
    # And each segmentation covers every held-out row and positive
    for name in ("international_plan", "state_region"):
        items = [item for item in card.segments if item.segment == name]
        assert sum(item.n for item in items) == len(telecom.test)
        assert sum(item.positives for item in items) == int(telecom.labels.sum())
    assert card.metrics.n == len(telecom.test)
    assert card.metrics.auc_roc == pytest.approx(roc_auc_score(telecom.labels, telecom.probabilities))
