"""The model card as Markdown (mlops.registry.model_card_markdown): every section in order, a row per segment,
determinism, and tables that survive awkward values and empty sections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops.data.schema import DataSchema
from mlops.registry.model_card import ModelCard
from mlops.registry.model_card_markdown import SECTION_TITLES, render_markdown
from model_card_examples import TelecomExample, synthetic_card, telecom_example


@pytest.fixture(scope="module")
def telecom() -> TelecomExample:
    return telecom_example()


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
    card = synthetic_card(rng.random(60), np.tile([0, 1], 30), frame, schema, segments={"plan": "plan"})
    # When it is rendered
    markdown = render_markdown(card)
    # Then the pipe is escaped and the empty sections say so
    assert "| plan | a\\|b | 30 |" in markdown
    assert "No explainability summary was recorded." in markdown
    assert "No status changes recorded." in markdown


def test_a_card_without_segments_says_so() -> None:
    # Given a card whose schema declares no segments, on data without a categorical column to fall back on
    rng = np.random.default_rng(6)
    schema = DataSchema(id_column="id", target="churn", positive_label="yes", numerical=["x"], categorical=[])
    frame = pd.DataFrame({"id": [str(i) for i in range(40)], "x": rng.random(40)})
    card = synthetic_card(rng.random(40), np.tile([0, 1], 20), frame, schema)
    # When it is rendered
    lines = render_markdown(card).splitlines()
    # Then the segment section holds one sentence instead of a table
    start = lines.index(f"## {SECTION_TITLES['segments']}")
    assert lines[start + 2] == (
        "No segments: the schema declares none and the data has no small categorical column to group rows by."
    )
    assert lines[start + 4] == f"## {SECTION_TITLES['limitations']}"
