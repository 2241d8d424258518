"""The model card (mlops.registry.model_card): the segments its schema declares unless the caller names others,
automatic limitations, the intended use and the JSON round trip. The telecom card (tests/model_card_examples.py) is
built from a logistic regression on a few numerical columns, so the module runs in about a second."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops.data.schema import DataSchema
from mlops.registry.model_card import ModelCard
from mlops.registry.segments import SegmentFlag
from mlops.registry.store import ModelStatus
from model_card_examples import MODEL_FEATURES, TelecomExample, synthetic_card, telecom_example


@pytest.fixture(scope="module")
def telecom() -> TelecomExample:
    return telecom_example()


def _plan_data() -> tuple[np.ndarray, np.ndarray, pd.DataFrame, DataSchema]:
    # A plan segment whose "premium" customers (40 of 200) never churned.
    rng = np.random.default_rng(1)
    plan = np.array(["basic"] * 160 + ["premium"] * 40, dtype=object)
    y = np.concatenate([rng.integers(0, 2, 160), np.zeros(40, dtype=int)])
    probabilities = rng.random(200)
    schema = DataSchema(id_column="id", target="churn", positive_label="yes", numerical=["x"], categorical=["plan"])
    frame = pd.DataFrame({"id": [f"C{i}" for i in range(200)], "x": rng.random(200), "plan": plan})
    return probabilities, y, frame, schema


def test_a_segment_with_one_class_has_no_auc_and_becomes_a_limitation() -> None:
    # Given a plan segment whose "premium" customers (40 of them) never churned
    probabilities, y, frame, schema = _plan_data()
    # When the card is built with the plan as its segment
    card = synthetic_card(probabilities, y, frame, schema, segments={"plan": "plan"})
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


def test_a_card_reports_the_segments_its_schema_declares_by_default() -> None:
    # Given the same data, whose schema declares the plan as a segment with "premium" in a named group
    probabilities, y, frame, schema = _plan_data()
    declared = DataSchema.model_validate(
        {**schema.model_dump(), "segments": {"tier": {"column": "plan", "groups": {"paying": ["Premium"]}}}}
    )
    # When the card is built without segments from the caller
    card = synthetic_card(probabilities, y, frame, declared)
    # Then its segments are the declared grouping: the premium rows in their group, the others in "other"
    assert [(item.segment, item.value, item.n) for item in card.segments] == [
        ("tier", "other", 160),
        ("tier", "paying", 40),
    ]
    assert any("tier = paying has only negative rows" in limitation for limitation in card.limitations)


def test_a_card_falls_back_on_small_categorical_columns_and_the_caller_can_ask_for_none() -> None:
    # Given the same data, whose schema declares no segments
    probabilities, y, frame, schema = _plan_data()
    # When the card is built without segments, and again with an empty mapping of them
    by_default = synthetic_card(probabilities, y, frame, schema)
    none = synthetic_card(probabilities, y, frame, schema, segments={})
    # Then by default the small categorical plan column is the segment; asked for none, the card has none
    assert {item.segment for item in by_default.segments} == {"plan"}
    assert none.segments == []
    assert not any(limitation.startswith("Segment ") for limitation in none.limitations)


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
