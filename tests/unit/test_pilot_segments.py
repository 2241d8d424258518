"""The pilot's customer segments (mlops.pilot.segments): US states mapped to Census regions, the telecom data
segmented by international plan and region, and, on any other data set, its small categorical columns."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlops.pilot.segments import STATE_REGIONS, UNKNOWN_REGION, state_region, telecom_segments
from model_card_examples import TelecomExample, non_telecom_data, telecom_example

US_STATES = (
    *("AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY"),
    *("LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND"),
    *("OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY"),
)


@pytest.fixture(scope="module")
def telecom() -> TelecomExample:
    return telecom_example()


def test_every_state_and_dc_maps_to_a_census_region() -> None:
    # Given the 50 state codes and the District of Columbia
    codes = [*US_STATES, "DC"]
    assert len(set(codes)) == 51
    # When they are mapped to regions
    regions = {code: state_region(code) for code in codes}
    # Then each has one of the four Census regions, in the Census' proportions, and DC is in the South
    assert set(STATE_REGIONS) == set(codes)
    assert set(regions.values()) == {"Northeast", "Midwest", "South", "West"}
    counts = pd.Series(regions).value_counts().to_dict()
    assert counts == {"South": 17, "West": 13, "Midwest": 12, "Northeast": 9}
    assert regions["DC"] == "South"
    assert (regions["NY"], regions["OH"], regions["TX"], regions["CA"]) == ("Northeast", "Midwest", "South", "West")


def test_codes_are_normalised_and_unknown_or_missing_ones_are_kept_apart() -> None:
    # Given codes in lower case with spaces, a territory, and missing values
    # Then case and spaces do not matter, a territory is Unknown and a missing value stays missing
    assert state_region(" ks ") == "Midwest"
    assert state_region("PR") == UNKNOWN_REGION
    assert state_region(None) is None
    assert state_region(float("nan")) is None


def test_telecom_data_is_segmented_by_international_plan_and_region(telecom: TelecomExample) -> None:
    # Given the whole telecom data set
    # When it is segmented
    segments = telecom_segments(telecom.frame, telecom.schema)
    # Then there is one international-plan and one state-region value per row, and no unknown state
    assert list(segments) == ["international_plan", "state_region"]
    assert set(segments["international_plan"]) == {"yes", "no"}
    assert set(segments["state_region"]) == {"Northeast", "Midwest", "South", "West"}
    assert all(len(values) == len(telecom.frame) for values in segments.values())


def test_the_telecom_card_segments_cover_every_held_out_row(telecom: TelecomExample) -> None:
    # Given the card of a model scored on the telecom test split, segmented by the telecom segments
    card = telecom.card
    # Then each segmentation's rows add up to the split's rows, and the positives to its positives
    for name in ("international_plan", "state_region"):
        items = [item for item in card.segments if item.segment == name]
        assert items
        assert sum(item.n for item in items) == len(telecom.test)
        assert sum(item.positives for item in items) == int(telecom.labels.sum())
    assert card.metrics.n == len(telecom.test)
    assert card.metrics.auc_roc == pytest.approx(roc_auc_score(telecom.labels, telecom.probabilities))


def test_other_data_sets_are_segmented_by_their_small_categorical_columns() -> None:
    # Given a data set without telecom columns: a 3-value and a 12-value categorical
    schema, frame = non_telecom_data()
    # When it is segmented
    segments = telecom_segments(frame, schema)
    # Then only the column with at most 10 values is a segment
    assert list(segments) == ["tier"]
