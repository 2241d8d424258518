"""Data drift on the telecom data: a baseline from the training split, then unshifted, shifted and odd samples."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

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
    two_sample_chi_square,
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


def stored_before_counts(baseline: DriftBaseline) -> dict:
    """The baseline's JSON as a version stored before counts were kept has it: shares only."""
    stored = json.loads(baseline.model_dump_json())
    for part in [*stored["numeric"].values(), *stored["categorical"].values(), stored["score"]]:
        del part["counts"], part["missing_count"]
    return stored


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


def test_a_tiny_baseline_gives_the_hand_psi_but_four_rows_are_too_few_to_call_drift() -> None:
    # Given a one-feature baseline from the values 1, 2, 3, 4 with two bins
    schema = DataSchema(id_column="id", target="y", positive_label="1", numerical=["x"], categorical=[])
    baseline = build_baseline({"x": np.array([1.0, 2.0, 3.0, 4.0])}, np.array([0.1, 0.9]), schema, bins=2)
    assert baseline.numeric["x"].edges == [2.5]
    assert baseline.numeric["x"].proportions == [0.5, 0.5]
    assert (baseline.numeric["x"].counts, baseline.numeric["x"].missing_count) == ([2, 2], 0)
    # When recent values 1, 1, 1, 4 are compared with it
    report = detect_drift(baseline, {"x": np.array([1.0, 1.0, 1.0, 4.0])}, None, DriftThresholds(min_rows=1))
    # Then the feature's shares are 75/25 and its PSI is the hand-computed 0.25 ln 3, above the 0.2 floor
    (feature,) = report.features
    assert feature.bins == ["< 2.5", "≥ 2.5"]
    assert feature.actual == [0.75, 0.25]
    assert feature.psi == pytest.approx(0.25 * math.log(3))
    # But four rows against four cannot show a real difference. Each bin expects 2 recent rows (under 5), so
    # both are pooled into one bin and the test has nothing to compare (p = 1): no drift
    assert (feature.test, feature.chi_square, feature.p_value) == ("chi_square", 0.0, 1.0)
    assert not feature.drifted
    assert report.score is None
    assert report.score_psi is None


# ------------------------------------------------------------------------------------------------ the test itself
def test_the_two_sample_test_is_pearsons_test_of_homogeneity_on_the_counts() -> None:
    # Given 1,000 training rows over four bins, and three recent samples of 200 rows, as one stack
    baseline = np.array([400, 300, 200, 100])
    recent = np.array([[90, 80, 20, 10], [80, 60, 40, 20], [60, 60, 40, 40]])
    # When the stack is tested in one call
    test = two_sample_chi_square(baseline, recent)
    # Then each sample's result is scipy's chi-square test of the 2 x 4 table (no continuity correction)
    for row, sample in enumerate(recent):
        expected = stats.chi2_contingency(np.vstack([baseline, sample]), correction=False)
        assert test.statistic[row] == pytest.approx(expected.statistic)
        assert test.p_value[row] == pytest.approx(expected.pvalue)
        assert test.degrees_of_freedom[row] == expected.dof == 3
    # And a sample in exactly the training proportions does not differ at all
    assert (float(test.statistic[1]), float(test.p_value[1])) == (pytest.approx(0.0, abs=1e-12), 1.0)


def test_the_baselines_own_sample_size_counts() -> None:
    # Given 800 recent rows split 55/45, and two baselines with the same 60/40 shares: 10,000 rows, or 500
    recent = np.array([440, 360])
    # When the recent counts are tested against each
    large = two_sample_chi_square([6_000, 4_000], recent)
    small = two_sample_chi_square([300, 200], recent)
    # Then the difference is significant against the large baseline, whose shares are nearly exact, but not
    # against the small one, whose shares are themselves noisy (a one-sample test would judge both alike)
    assert large.p_value < 0.01 < small.p_value
    assert float(small.p_value) == pytest.approx(
        stats.chi2_contingency([[300, 200], [440, 360]], correction=False).pvalue
    )


def test_sparse_bins_are_pooled_before_the_test() -> None:
    # Given 1,000 training and 200 recent rows over five bins, two of them rare (2 and 3 rows in all)
    # When they are tested
    rare = two_sample_chi_square([500, 300, 198, 2, 0], [80, 70, 47, 0, 3])
    # Then the rare bins (under 1 recent row expected) are pooled; still under 5 rows expected, the pool joins
    # the least populated other bin, and the test is that of the 2 x 3 table left
    expected = stats.chi2_contingency([[500, 300, 200], [80, 70, 50]], correction=False)
    assert (float(rare.statistic), int(rare.degrees_of_freedom)) == (pytest.approx(expected.statistic), 2)
    # And a pool expected to hold 5 recent rows or more stays a bin of its own
    pooled = two_sample_chi_square([500, 300, 100, 10, 10, 10, 10], [100, 60, 20, 2, 3, 4, 5])
    expected = stats.chi2_contingency([[500, 300, 100, 40], [100, 60, 20, 14]], correction=False)
    assert (float(pooled.statistic), int(pooled.degrees_of_freedom)) == (pytest.approx(expected.statistic), 3)
    # And with no rows on one side there is nothing to compare
    assert float(two_sample_chi_square([500, 500], [0, 0]).p_value) == 1.0


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
        # And the training counts behind the shares, which the two-sample test needs
        assert numeric.counts is not None
        assert (sum(numeric.counts), numeric.missing_count) == (3200, 0)
        assert numeric.proportions == pytest.approx(np.array(numeric.counts) / 3200)
    # And a column with few distinct values gets few bins (service calls are mostly 0 to 3)
    assert len(baseline.numeric["number_customer_service_calls"].edges) < 9
    # And every categorical baseline has the OTHER bucket, even when no category was rare
    for categorical in baseline.categorical.values():
        assert OTHER in categorical.proportions
        assert sum(categorical.proportions.values()) == pytest.approx(1.0)
        assert categorical.counts is not None
        assert list(categorical.counts) == list(categorical.proportions)
        assert (sum(categorical.counts.values()), categorical.missing_count) == (3200, 0)
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


def test_a_baseline_stored_before_counts_were_kept_gives_the_same_report(telecom: Telecom) -> None:
    # Given the baseline as a model version stored before counts were kept has it: shares only
    old = DriftBaseline.model_validate(stored_before_counts(telecom.baseline))
    assert old.numeric["total_day_minutes"].counts is None
    assert old.categorical["state"].counts is None
    # When its training counts are asked for, with the baseline's rows as the sample size
    # Then they are the counts the shares were computed from, exactly
    for name, numeric in old.numeric.items():
        counts, missing = numeric.training_counts(old.rows) or (None, None)
        assert (counts.tolist(), missing) == (telecom.baseline.numeric[name].counts, 0)
    for name, categorical in old.categorical.items():
        counts, missing = categorical.training_counts(old.rows) or (None, None)
        assert (counts.tolist(), missing) == (list(telecom.baseline.categorical[name].counts.values()), 0)
    # And the held-out rows get the same report as from the baseline with its counts
    held_out, scores = telecom.held_out, stand_in_churn_score(telecom.held_out)
    assert detect_drift(old, held_out, scores) == detect_drift(telecom.baseline, held_out, scores)


def test_a_score_baseline_of_unknown_sample_size_is_judged_by_its_psi_alone(telecom: Telecom) -> None:
    # Given a baseline stored before counts and the score's row count were kept (score_rows defaults to 0)
    stored = stored_before_counts(telecom.baseline)
    del stored["score_rows"]
    old = DriftBaseline.model_validate(stored)
    assert old.score.training_counts(old.score_rows) is None
    # When shifted rows, scored by the same model, are compared with it
    recent = shifted(telecom.held_out)
    report = detect_drift(old, recent, stand_in_churn_score(recent))
    # Then the score has no test (its sample size is unknown): its PSI alone over 0.2 makes it drift
    assert report.score is not None
    assert (report.score.test, report.score.chi_square, report.score.p_value) == ("psi", None, None)
    assert report.score.psi > 0.2
    assert report.score.drifted
    # And the features are tested as ever: their sample size is the baseline's training rows
    assert all(feature.test == "chi_square" and feature.p_value is not None for feature in report.features)
    assert report.drifted_features == ["total_day_minutes", "international_plan"]


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
    # And every feature, and the score, is tested against the baseline's counts, none significant at 1%
    # (measured: every p-value at least 0.19)
    for feature in [*report.features, report.score]:
        assert feature.test == "chi_square"
        assert feature.p_value is not None
        assert feature.p_value > 0.01, feature


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
    assert by_name(report, "total_day_minutes").p_value < 1e-10
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
