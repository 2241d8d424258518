"""The model card as a Markdown document (:func:`render_markdown`): one function per section, in the order of
:data:`SECTION_TITLES`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mlops.registry.model_card import (
    DataSection,
    IntendedUse,
    Lineage,
    ModelCard,
    ModelDetails,
    OverallMetrics,
    ranked_importance,
)
from mlops.registry.segments import SegmentMetrics
from mlops.registry.store import StatusChange

TOP_FEATURES = 10

SECTION_TITLES: dict[str, str] = {
    "model_details": "Model details",
    "intended_use": "Intended use",
    "data": "Data",
    "metrics": "Metrics",
    "segments": "Segment metrics",
    "limitations": "Limitations",
    "explainability": "Explainability",
    "lineage": "Lineage",
    "approval_history": "Approval history",
}
"""The Markdown heading (level 2) of each card section, in document order."""


def render_markdown(card: ModelCard) -> str:
    """The card as a Markdown document; depends only on `card`, so the same card renders the same text."""
    sections = {
        "model_details": _model_details(card.model_details),
        "intended_use": _intended_use(card.intended_use),
        "data": _data(card.data),
        "metrics": _metrics(card.metrics),
        "segments": _segments(card.segments),
        "limitations": _limitations(card.limitations),
        "explainability": _explainability(card.explainability),
        "lineage": _lineage(card.lineage),
        "approval_history": _approval_history(card.approval_history),
    }
    lines = [f"# Model card: {card.model_details.name} {card.model_details.version}"]
    for section, title in SECTION_TITLES.items():
        lines += ["", f"## {title}", "", *sections[section]]
    return "\n".join(lines) + "\n"


def _model_details(details: ModelDetails) -> list[str]:
    lines = _table(
        ("Field", "Value"),
        [
            ("Model", details.name),
            ("Version", details.version),
            ("Algorithm", details.algorithm),
            ("Created at", details.created_at),
            ("Decision threshold", _number(details.threshold)),
        ],
    )
    if details.artifacts:
        lines += ["", "Artifacts:", ""]
        lines += _table(
            ("Artifact", "Key", "SHA-256", "Bytes"),
            [(name, f"`{ref.key}`", f"`{ref.sha256}`", str(ref.size_bytes)) for name, ref in details.artifacts.items()],
        )
    return lines


def _intended_use(use: IntendedUse) -> list[str]:
    return [
        f"**Primary use.** {use.primary_use}",
        "",
        "**Users:**",
        "",
        *(f"- {user}" for user in use.users),
        "",
        "**Out of scope:**",
        "",
        *(f"- {item}" for item in use.out_of_scope),
    ]


def _data(data: DataSection) -> list[str]:
    return _table(
        ("Field", "Value"),
        [
            ("Data set", data.dataset_name),
            ("Key", f"`{data.key}`"),
            ("SHA-256", f"`{data.sha256}`"),
            ("Rows", str(data.rows)),
            ("Train / test rows", f"{data.train_rows} / {data.test_rows}"),
            ("Positive rate", _percent(data.positive_rate)),
            ("Feature source", data.feature_source),
            ("Id column", f"`{data.id_column}`"),
            ("Target", f"`{data.target}` = `{data.positive_label}`"),
            ("Numerical features", ", ".join(data.numerical_features) or "none"),
            ("Categorical features", ", ".join(data.categorical_features) or "none"),
        ],
    )


def _metrics(metrics: OverallMetrics) -> list[str]:
    summary = (
        f"Held-out rows: {metrics.n} ({_percent(metrics.positive_rate)} positive), "
        f"threshold {_number(metrics.threshold)}."
    )
    return [
        summary,
        "",
        *_table(
            ("Metric", "Value"),
            [
                ("AUC-ROC", _number(metrics.auc_roc)),
                ("PR-AUC", _number(metrics.pr_auc)),
                ("Accuracy", _number(metrics.accuracy)),
                ("Precision", _number(metrics.precision)),
                ("Recall", _number(metrics.recall)),
                ("F1", _number(metrics.f1)),
            ],
        ),
    ]


def _segments(segments: Sequence[SegmentMetrics]) -> list[str]:
    if not segments:
        return ["No segments: the schema declares none and the data has no small categorical column to group rows by."]
    header = ("Segment", "Value", "n", "Positives", "Positive rate", "AUC-ROC", "Recall", "Precision", "Accuracy")
    return _table(
        (*header, "Flags"),
        [
            (
                item.segment,
                item.value,
                str(item.n),
                str(item.positives),
                _percent(item.positive_rate),
                _number(item.auc_roc),
                _number(item.recall),
                _number(item.precision),
                _number(item.accuracy),
                ", ".join(flag.value for flag in item.flags),
            )
            for item in segments
        ],
    )


def _limitations(limitations: Sequence[str]) -> list[str]:
    return [f"- {limitation}" for limitation in limitations] or ["None recorded."]


def _explainability(summary: Mapping[str, Any]) -> list[str]:
    if not summary:
        return ["No explainability summary was recorded."]
    lines: list[str] = []
    if summary.get("method"):
        lines += [f"Method: {summary['method']}", ""]
    facts = [
        f"{label} {_number(value) if isinstance(value, float) else value}"
        for label, key in (("output space", "output_space"), ("base value", "base_value"), ("rows", "rows"))
        if (value := summary.get(key)) is not None
    ]
    if facts:
        lines += [f"Global importance on the held-out rows ({', '.join(facts)}):", ""]
    importance = ranked_importance(summary.get("global_importance"))[:TOP_FEATURES]
    if importance:
        lines += _table(
            ("Rank", "Feature", "Mean abs contribution"),
            [(str(rank), feature, _number(value)) for rank, (feature, value) in enumerate(importance, 1)],
        )
    else:
        lines.append("No global importance was recorded.")
    return lines


def _lineage(lineage: Lineage) -> list[str]:
    fields = (
        ("Dataset SHA-256", f"`{lineage.dataset_sha256}`"),
        ("Execution ARN", lineage.execution_arn),
        ("Execution name", lineage.execution_name),
        ("Feature group", lineage.feature_group),
        ("Feature group version", _text(lineage.feature_group_version)),
        ("Features as of", lineage.features_as_of),
        ("Previous production version", lineage.previous_production_version),
        ("Seed", _text(lineage.seed)),
    )
    return _table(("Field", "Value"), [(label, value) for label, value in fields if value is not None])


def _approval_history(history: Sequence[StatusChange]) -> list[str]:
    if not history:
        return ["No status changes recorded."]
    return _table(
        ("Status", "At", "By", "Reason"),
        [(change.status.value, change.at, change.by, change.reason) for change in history],
    )


def _table(header: Sequence[str], rows: Iterable[Sequence[str | None]]) -> list[str]:
    def line(cells: Sequence[str | None]) -> str:
        return "| " + " | ".join(_cell(cell) for cell in cells) + " |"

    return [line(header), "|" + "|".join("---" for _ in header) + "|", *(line(row) for row in rows)]


def _cell(value: str | None) -> str:
    # A pipe or a newline would break the table row.
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _number(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
