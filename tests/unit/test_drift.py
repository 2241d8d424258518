"""Data drift on the telecom data: a baseline from the training split, then unshifted, shifted and odd samples."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pytest

from helpers import TELECOM_CSV, TELECOM_SCHEMA
from mlops.data.dataset import frame_to_columns, read_dataset, split_dataset
from mlops.data.features import Columns
from mlops.data.schema import DataSchema
from mlops.monitoring.baseline import OTHER, DriftBaseline, build_baseline
from mlops.monitoring.drift import (
    PSI_EPSILON,
    DriftReport,
    DriftThresholds,
    FeatureDrift,
    detect_drift,
    population_stability_index,
)
from mlops.monitoring.monitor import columns_from_records

CREATED_AT = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def stand_in_churn_score(columns: Columns) -> np.ndarray:
    """A fixed, deterministic stand-in for the model: more day minutes, service calls or an intl plan, more churn."""
    day_minutes = np.nan_to_num(columns["total_day_minutes"], nan=180.0)
    service_calls = np.nan_to_num(columns["number_customer_service_calls"], nan=1.0)
    international = (columns["international_plan"] == "yes").astype(np.float64)
    logit = -4.0 + 0.018 * (day_minutes - 180.0) + 0.6 * service_calls + 2.0 * international
    return 1.0 / (1.0 + np.exp(-logit))


def take(columns: Columns, rows: np.ndarray | slice) -> Columns:
    return {name: values[rows].copy() for name, values in columns.items()}


@dataclass(frozen=True)
class Telecom:
    schema: DataSchema
    train: Columns
    held_out: Columns
    baseline: DriftBaseline


@pytest.fixture(scope="module")
def telecom() -> Telecom:
    # The training split (3,200 rows) gives the baseline; the other 800 rows are unseen "recent" traffic.
    schema = DataSchema.from_file(TELECOM_SCHEMA)
    train_df, held_out_df = split_dataset(read_dataset(TELECOM_CSV, schema, require_target=True), schema, 0.2, 42)
    train, held_out = frame_to_columns(train_df, schema), frame_to_columns(held_out_df, schema)
    baseline = build_baseline(train, stand_in_churn_score(train), schema, created_at=CREATED_AT)
    return Telecom(schema, train, held_out, baseline)


def shifted(columns: Columns, seed: int = 7) -> Columns:
    """Heavier daytime users, and 40% of customers newly on the international plan."""
    rng = np.random.default_rng(seed)
    result = {name: values.copy() for name, values in columns.items()}
    result["total_day_minutes"] = result["total_day_minutes"] * 1.3
    flipped = rng.random(result["international_plan"].size) < 0.4
    result["international_plan"][flipped] = "yes"
    return result


def by_name(report: DriftReport, name: str) -> FeatureDrift:
    return next(feature for feature in report.features if feature.feature == name)


# ------------------------------------------------------------------------------------------------ PSI itself
def test_psi_matches_a_hand_computation() -> None:
    # Given expected shares 50/50 and actual 25/75
    # When the PSI is computed
    psi = population_stability_index([0.5, 0.5], [0.25, 0.75])
    # Then it is (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 ln 3
    assert psi == pytest.approx(0.25 * math.log(3))
    # And an empty bin is raised to epsilon instead of giving an infinite PSI
    empty = population_stability_index([0.5, 0.5], [1.0, 0.0])
    assert empty == pytest.approx(0.5 * math.log(2) + (PSI_EPSILON - 0.5) * math.log(PSI_EPSILON / 0.5))


def test_a_tiny_baseline_bins_at_the_median_and_detect_drift_gives_the_hand_psi() -> None:
    # Given a one-feature baseline from the values 1, 2, 3, 4 with two bins
    schema = DataSchema(id_column="id", target="y", positive_label="1", numerical=["x"], categorical=[])
    baseline = build_baseline({"x": np.array([1.0, 2.0, 3.0, 4.0])}, np.array([0.1, 0.9]), schema, bins=2)
    assert baseline.numeric["x"].edges == [2.5]
    assert baseline.numeric["x"].proportions == [0.5, 0.5]
    # When recent values 1, 1, 1, 4 are compared with it
    report = detect_drift(baseline, {"x": np.array([1.0, 1.0, 1.0, 4.0])}, None, DriftThresholds(min_rows=1))
    # Then the feature's shares are 75/25 and its PSI is the hand-computed 0.25 ln 3 (above 0.2: drifted)
    (feature,) = report.features
    assert feature.bins == ["< 2.5", "≥ 2.5"]
    assert feature.actual == [0.75, 0.25]
    assert feature.psi == pytest.approx(0.25 * math.log(3))
    assert feature.drifted
    assert report.score is None
    assert report.score_psi is None


# ------------------------------------------------------------------------------------------------ the baseline
def test_the_baseline_summarises_every_feature_of_the_training_split(telecom: Telecom) -> None:
    # Given the baseline built from the 3,200 training rows
    baseline = telecom.baseline
    # Then every schema feature has bins with strictly increasing quantile edges and shares summing to 1
    assert baseline.rows == 3200
    assert baseline.score_rows == 3200
    assert list(baseline.numeric) == telecom.schema.numerical
    assert list(baseline.categorical) == telecom.schema.categorical
    for numeric in [*baseline.numeric.values(), baseline.score]:
        assert np.all(np.diff(numeric.edges) > 0)
        assert len(numeric.proportions) == len(numeric.edges) + 1
        assert sum(numeric.proportions) == pytest.approx(1.0)
    # And a column with few distinct values gets few bins (service calls are mostly 0 to 3)
    assert len(baseline.numeric["number_customer_service_calls"].edges) < 9
    # And every categorical baseline has the OTHER bucket, even when no category was rare
    for categorical in baseline.categorical.values():
        assert OTHER in categorical.proportions
        assert sum(categorical.proportions.values()) == pytest.approx(1.0)
    assert baseline.categorical["international_plan"].proportions[OTHER] == 0.0


def test_the_baseline_round_trips_through_json(telecom: Telecom) -> None:
    # Given the baseline (stored as a JSON artifact next to the model)
    # When it is dumped and read back
    restored = DriftBaseline.model_validate_json(telecom.baseline.model_dump_json())
    # Then nothing is lost, and the restored baseline gives the same report
    assert restored == telecom.baseline
    held_out = telecom.held_out
    scores = stand_in_churn_score(held_out)
    assert detect_drift(restored, held_out, scores) == detect_drift(telecom.baseline, held_out, scores)


# ------------------------------------------------------------------------------------------------ detection
def test_unshifted_held_out_rows_show_no_drift(telecom: Telecom) -> None:
    # Given the 800 held-out rows, drawn from the same data as the training split
    held_out = telecom.held_out
    # When they are compared with the baseline
    report = detect_drift(telecom.baseline, held_out, stand_in_churn_score(held_out))
    # Then there is a verdict, and it is "no drift"
    assert report.rows == 800
    assert report.sufficient_data
    assert not report.drift_detected
    assert report.drifted_features == []
    # And every numeric PSI, and the score's, is far under 0.1 (measured: at most 0.02)
    assert len(report.features) == 19
    for feature in report.features:
        if feature.kind == "numeric":
            assert feature.psi < 0.05, feature
    assert report.score_psi is not None
    assert report.score_psi < 0.05
    # And categorical PSIs stay under the 0.1 floor; `state` (51 values) is highest from sampling noise alone
    assert report.max_feature_psi < 0.1
    assert by_name(report, "state").p_value > 0.01


def test_shifted_usage_and_plans_are_detected(telecom: Telecom) -> None:
    # Given held-out rows with 30% more day minutes and 40% of customers moved to the international plan,
    # scored by the same model (so the scores shift too)
    recent = shifted(telecom.held_out)
    # When they are compared with the baseline
    report = detect_drift(telecom.baseline, recent, stand_in_churn_score(recent))
    # Then exactly the two shifted features and the score are flagged
    assert report.drift_detected
    assert report.drifted_features == ["total_day_minutes", "international_plan"]
    assert report.max_feature_psi > 0.2
    assert by_name(report, "total_day_minutes").psi > 0.5
    international = by_name(report, "international_plan")
    assert international.test == "chi_square"
    assert international.p_value < 1e-10
    assert international.psi > 0.5
    assert report.score is not None
    assert report.score.drifted
    assert report.score_psi > 0.2
    # And the untouched day charge (now inconsistent with the minutes) is not
    assert not by_name(report, "total_day_charge").drifted
    # And each feature carries what a report needs to plot it
    minutes = by_name(report, "total_day_minutes")
    assert len(minutes.bins) == len(minutes.expected) == len(minutes.actual) == 10
    assert minutes.bins[0].startswith("< ")
    assert minutes.bins[-1].startswith("≥ ")
    assert international.bins == ["no", "yes", "other"]


def test_a_significant_but_tiny_categorical_difference_is_not_drift(telecom: Telecom) -> None:
    # Given 20,000 rows resampled from the held-out data, with 3% more customers on the international plan
    rng = np.random.default_rng(11)
    recent = take(telecom.held_out, rng.integers(0, 800, size=20_000))
    plan = recent["international_plan"]
    plan[(plan == "no") & (rng.random(plan.size) < 0.035)] = "yes"
    # When they are compared with the baseline
    report = detect_drift(telecom.baseline, recent, None)
    # Then the chi-square test finds the difference significant, but its PSI is too small to call it drift
    international = by_name(report, "international_plan")
    assert international.p_value < 0.01
    assert international.psi < report.thresholds.categorical_min_psi
    assert not international.drifted


def test_too_few_rows_give_no_verdict(telecom: Telecom) -> None:
    # Given only 150 recent rows (min_rows is 200), shifted ones
    recent = shifted(take(telecom.held_out, slice(0, 150)))
    # When they are compared with the baseline
    report = detect_drift(telecom.baseline, recent, stand_in_churn_score(recent))
    # Then there is no verdict, but every statistic is still computed
    assert report.rows == 150
    assert not report.sufficient_data
    assert not report.drift_detected
    assert report.drifted_features == []
    assert not any(feature.drifted for feature in report.features)
    assert len(report.features) == 19
    assert by_name(report, "total_day_minutes").psi > 0.2
    # And the same rows with a lower min_rows are judged
    judged = detect_drift(telecom.baseline, recent, stand_in_churn_score(recent), DriftThresholds(min_rows=100))
    assert judged.drift_detected


def test_unseen_categories_and_missing_columns_are_drift_not_errors(telecom: Telecom) -> None:
    # Given recent rows where 30% of states are unknown, voice_mail_plan is absent and eve minutes all missing
    rng = np.random.default_rng(3)
    recent = take(telecom.held_out, slice(None))
    recent["state"][rng.random(800) < 0.3] = "ZZ"
    del recent["voice_mail_plan"]
    recent["total_eve_minutes"][:] = np.nan
    # When they are compared with the baseline, without scores
    report = detect_drift(telecom.baseline, recent, None)
    # Then unseen states are counted in "other"
    state = by_name(report, "state")
    assert state.bins[-1] == "other"
    assert state.actual[-1] == pytest.approx(0.3, abs=0.05)
    # And the absent column is all missing, in a "missing" bin the baseline had at 0
    voice_mail = by_name(report, "voice_mail_plan")
    assert voice_mail.bins == ["no", "yes", "other", "missing"]
    assert voice_mail.expected[-1] == 0.0
    assert voice_mail.actual == [0.0, 0.0, 0.0, 1.0]
    eve = by_name(report, "total_eve_minutes")
    assert eve.bins[-1] == "missing"
    assert eve.actual[-1] == 1.0
    # And all three are drift (with finite statistics); there is no score verdict
    assert {"state", "voice_mail_plan", "total_eve_minutes"} <= set(report.drifted_features)
    assert all(math.isfinite(feature.psi) for feature in report.features)
    assert report.score is None
    assert report.score_psi is None


# ------------------------------------------------------------------------------------------------ capture records
def test_capture_records_round_trip_to_columns(telecom: Telecom) -> None:
    # Given capture records written for 50 held-out rows (NaN stored as null, as JSON has no NaN)
    schema, held_out = telecom.schema, take(telecom.held_out, slice(0, 50))
    scores = stand_in_churn_score(held_out)
    records = [
        {
            "features": {
                **{name: float(held_out[name][row]) for name in schema.numerical},
                **{name: held_out[name][row] for name in schema.categorical},
            },
            "churn_probability": float(scores[row]),
            "model_version": "3",
        }
        for row in range(50)
    ]
    # And a few odd records: a null and a missing key, an integer category, no score
    records[0]["features"]["total_day_minutes"] = None
    del records[1]["features"]["state"]
    records[2]["features"]["area_code"] = 415
    del records[3]["churn_probability"]
    # When they are turned back into columns
    columns, recovered_scores = columns_from_records(records, schema)
    # Then the columns are the original ones, with missing values where the records had none
    expected = take(held_out, slice(None))
    expected["total_day_minutes"][0] = np.nan
    expected["state"][1] = None
    expected["area_code"][2] = "415"
    assert set(columns) == set(schema.feature_columns)
    for name in schema.numerical:
        np.testing.assert_array_equal(columns[name], expected[name])
        assert columns[name].dtype == np.float64
    for name in schema.categorical:
        assert columns[name].dtype == object
        assert columns[name].tolist() == expected[name].tolist()
    expected_scores = scores.copy()
    expected_scores[3] = np.nan
    np.testing.assert_array_equal(recovered_scores, expected_scores)
    # And no records give empty columns
    empty_columns, empty_scores = columns_from_records([], schema)
    assert empty_scores.shape == (0,)
    assert all(values.shape == (0,) for values in empty_columns.values())
    assert not detect_drift(telecom.baseline, empty_columns, empty_scores).sufficient_data
