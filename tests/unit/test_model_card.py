"""The model card (mlops.registry.model_card): segments by international plan and Census region, segment metrics that
match scikit-learn, automatic limitations, the Markdown rendering and the JSON round trip. The telecom card
is built from a logistic regression on a few numerical columns, so the module runs in about a second."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

from helpers import TELECOM_CSV, TELECOM_SCHEMA
from mlops.core.artifacts import ArtifactRef
from mlops.data.dataset import labels, read_dataset, split_dataset
from mlops.data.schema import DataSchema
from mlops.registry.model_card import (
    MISSING_VALUE,
    SECTION_TITLES,
    STATE_REGIONS,
    UNKNOWN_REGION,
    ModelCard,
    SegmentFlag,
    build_model_card,
    render_markdown,
    segment_metrics,
    state_region,
    telecom_segments,
)
from mlops.registry.store import ModelStatus, StatusChange
from mlops.training.evaluation import evaluate

US_STATES = (
    *("AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY"),
    *("LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND"),
    *("OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY"),
)
MODEL_FEATURES = ["total_day_minutes", "number_customer_service_calls", "total_intl_calls", "total_eve_minutes"]
THRESHOLD = 0.5


@dataclass(frozen=True)
class TelecomExample:
    schema: DataSchema
    frame: pd.DataFrame
    test: pd.DataFrame
    probabilities: np.ndarray
    labels: np.ndarray
    card: ModelCard


def _ref(name: str) -> ArtifactRef:
    return ArtifactRef(key=f"models/churn/v1/{name}", sha256=f"{len(name):x}".rjust(64, "0"), size_bytes=100)


def _linear_summary(model: LogisticRegression, x: pd.DataFrame) -> dict[str, Any]:
    # The exact SHAP values of a linear model (coefficient x centred value), shaped like explainability_summary.
    contributions = (x - x.mean()).to_numpy() * model.coef_[0]
    mean_abs = np.abs(contributions).mean(axis=0)
    ranked = sorted(zip(x.columns, mean_abs, strict=True), key=lambda item: (-item[1], item[0]))
    return {
        "method": "exact linear attributions in log-odds space",
        "output_space": "log_odds",
        "base_value": float(model.intercept_[0]),
        "global_importance": [{"feature": name, "mean_abs_contribution": float(value)} for name, value in ranked],
        "rows": len(x),
        "max_additivity_error": 0.0,
    }


def _history() -> list[StatusChange]:
    return [
        StatusChange(
            status=ModelStatus.PENDING_APPROVAL, at="2024-05-01T10:00:00.000Z", by="pilot:run-1", reason="registered"
        ),
        StatusChange(
            status=ModelStatus.APPROVED,
            at="2024-05-01T10:00:00.000Z",
            by="pilot quality gate",
            reason="auc_roc >= target",
        ),
    ]


@pytest.fixture(scope="module")
def telecom() -> TelecomExample:
    schema = DataSchema.from_file(TELECOM_SCHEMA)
    frame = read_dataset(TELECOM_CSV, schema, require_target=True)
    train, test = split_dataset(frame, schema, test_size=0.2, seed=42)
    model = LogisticRegression(max_iter=1000).fit(train[MODEL_FEATURES], labels(train, schema))
    probabilities = model.predict_proba(test[MODEL_FEATURES])[:, 1]
    y_test = labels(test, schema)
    card = build_model_card(
        model_name="churn",
        version="v20240501100000-abc123",
        algorithm="logistic_regression",
        created_at="2024-05-01T10:00:00.000Z",
        threshold=THRESHOLD,
        artifacts={name: _ref(name) for name in ("onnx", "sklearn", "feature_spec")},
        data_key="data/telecom_churn.csv",
        dataset_sha256="f" * 64,
        rows=len(frame),
        train_rows=len(train),
        test_rows=len(test),
        positive_rate=float(labels(frame, schema).mean()),
        feature_source="file",
        metrics=evaluate(probabilities, y_test, threshold=THRESHOLD).model_dump(),
        probabilities=probabilities,
        labels=y_test,
        test_frame=test,
        schema=schema,
        explainability=_linear_summary(model, test[MODEL_FEATURES]),
        status_history=_history(),
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:pilot:run-1",
        execution_name="run-1",
        previous_production_version="v20240401000000-0a0b0c",
        seed=42,
    )
    return TelecomExample(schema, frame, test, probabilities, y_test, card)


def _synthetic_card(probabilities: np.ndarray, y: np.ndarray, frame: pd.DataFrame, schema: DataSchema) -> ModelCard:
    return build_model_card(
        model_name="churn",
        version="v1",
        algorithm="random_forest",
        created_at="2024-05-01T10:00:00.000Z",
        threshold=THRESHOLD,
        artifacts={},
        data_key="data/accounts.csv",
        dataset_sha256="0" * 64,
        rows=len(frame) * 5,
        train_rows=len(frame) * 4,
        test_rows=len(frame),
        positive_rate=float(y.mean()),
        feature_source="file",
        metrics=evaluate(probabilities, y, threshold=THRESHOLD).model_dump(),
        probabilities=probabilities,
        labels=y,
        test_frame=frame,
        schema=schema,
        explainability={},
        status_history=[],
    )


# ------------------------------------------------------------------------------------------------ regions


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


# ------------------------------------------------------------------------------------------------ segment metrics


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


def test_a_segment_with_one_class_has_no_auc_and_becomes_a_limitation() -> None:
    # Given a plan segment whose "premium" customers (40 of them) never churned
    rng = np.random.default_rng(1)
    plan = np.array(["basic"] * 160 + ["premium"] * 40, dtype=object)
    y = np.concatenate([rng.integers(0, 2, 160), np.zeros(40, dtype=int)])
    probabilities = rng.random(200)
    schema = DataSchema(id_column="id", target="churn", positive_label="yes", numerical=["x"], categorical=["plan"])
    frame = pd.DataFrame({"id": [f"C{i}" for i in range(200)], "x": rng.random(200), "plan": plan})
    # When the card is built
    card = _synthetic_card(probabilities, y, frame, schema)
    # Then the premium segment has no AUC (nor recall), says why, and the limitations name it
    premium = next(item for item in card.segments if item.value == "premium")
    assert premium.auc_roc is None
    assert premium.recall is None
    assert premium.flags == [SegmentFlag.SINGLE_CLASS]
    assert premium.note is not None
    assert "AUC undefined" in premium.note
    assert any("plan = premium has only negative rows" in limitation for limitation in card.limitations)
    basic = next(item for item in card.segments if item.value == "basic")
    assert basic.auc_roc is not None


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


# ------------------------------------------------------------------------------------------------ telecom


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
    # Given the card of a model scored on the telecom test split
    card = telecom.card
    # Then each segmentation's rows add up to the split's rows, and the positives to its positives
    for name in ("international_plan", "state_region"):
        items = [item for item in card.segments if item.segment == name]
        assert items
        assert sum(item.n for item in items) == len(telecom.test)
        assert sum(item.positives for item in items) == int(telecom.labels.sum())
    assert card.metrics.n == len(telecom.test)
    assert card.metrics.auc_roc == pytest.approx(roc_auc_score(telecom.labels, telecom.probabilities))


def test_the_card_says_what_predicting_no_churn_scores(telecom: TelecomExample) -> None:
    # Given the telecom card
    # Then its first limitation gives the accuracy of predicting no churn for everyone on the held-out rows
    expected = 1 - telecom.labels.mean()
    assert telecom.card.limitations[0].startswith("Accuracy is not the measure: predicting no churn for everyone")
    assert f"{expected:.1%}" in telecom.card.limitations[0]


def test_intended_use_names_the_dataset(telecom: TelecomExample) -> None:
    # Given the telecom card
    # Then its intended use names the data set the schema names and rules out decisions with legal effect
    use = telecom.card.intended_use
    assert "telecom_churn" in use.primary_use
    assert any("legal" in item for item in use.out_of_scope)
    assert use.users


def test_other_data_sets_are_segmented_by_their_small_categorical_columns() -> None:
    # Given a data set without telecom columns: a 3-value and a 12-value categorical
    schema = DataSchema(
        id_column="id", target="churned", positive_label="1", numerical=["x"], categorical=["tier", "branch"]
    )
    frame = pd.DataFrame(
        {
            "id": [str(i) for i in range(24)],
            "x": np.arange(24.0),
            "tier": ["gold", "silver", "bronze"] * 8,
            "branch": [f"b{i % 12}" for i in range(24)],
        }
    )
    # When it is segmented
    segments = telecom_segments(frame, schema)
    # Then only the column with at most 10 values is a segment
    assert list(segments) == ["tier"]


# ------------------------------------------------------------------------------------------------ rendering


def test_the_markdown_has_every_section_and_a_row_per_segment(telecom: TelecomExample) -> None:
    # Given the telecom card
    card = telecom.card
    # When it is rendered
    markdown = render_markdown(card)
    lines = markdown.splitlines()
    # Then it has a title and every section, in order
    assert lines[0] == "# Model card: churn v20240501100000-abc123"
    positions = [lines.index(f"## {title}") for title in SECTION_TITLES.values()]
    assert positions == sorted(positions)
    # And the segment table has one row per segment
    for item in card.segments:
        assert sum(line.startswith(f"| {item.segment} | {item.value} | {item.n} |") for line in lines) == 1
    # And the importance table ranks the top features, and every approval is a row
    assert "| 1 | number_customer_service_calls |" in markdown or "| 1 | total_day_minutes |" in markdown
    assert "| Approved | 2024-05-01T10:00:00.000Z | pilot quality gate | auc_roc >= target |" in lines


def test_the_markdown_is_deterministic(telecom: TelecomExample) -> None:
    # Given the telecom card and its JSON round trip
    restored = ModelCard.model_validate_json(telecom.card.model_dump_json())
    # Then both render the same text
    assert render_markdown(telecom.card) == render_markdown(restored)


def test_the_markdown_keeps_tables_intact_and_handles_empty_sections() -> None:
    # Given a card with a pipe in a segment value, no explainability and no history
    rng = np.random.default_rng(4)
    schema = DataSchema(id_column="id", target="churn", positive_label="yes", numerical=["x"], categorical=["plan"])
    frame = pd.DataFrame(
        {"id": [str(i) for i in range(60)], "x": rng.random(60), "plan": ["a|b", "c"] * 30}, dtype=object
    )
    card = _synthetic_card(rng.random(60), np.tile([0, 1], 30), frame, schema)
    # When it is rendered
    markdown = render_markdown(card)
    # Then the pipe is escaped and the empty sections say so
    assert "| plan | a\\|b | 30 |" in markdown
    assert "No explainability summary was recorded." in markdown
    assert "No status changes recorded." in markdown


def test_the_card_round_trips_through_json(telecom: TelecomExample) -> None:
    # Given the telecom card
    card = telecom.card
    # When it is written as JSON and read back
    restored = ModelCard.model_validate_json(card.model_dump_json())
    # Then nothing is lost
    assert restored == card
    assert restored.approval_history[1].status is ModelStatus.APPROVED
    assert restored.model_details.artifacts["onnx"].key == "models/churn/v1/onnx"
    assert restored.explainability["global_importance"][0]["feature"] in MODEL_FEATURES
