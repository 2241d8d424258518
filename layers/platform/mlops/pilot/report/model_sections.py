"""The pilot report's sections about the model: success criteria, held-out performance, the decision threshold,
the SHAP explanations, the model card and the lineage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, confusion_matrix, roc_auc_score

from mlops.pilot.payloads import CriteriaReport
from mlops.pilot.report.formatting import escape_html, format_usd, format_value
from mlops.pilot.report.inputs import ReportInputs
from mlops.pilot.report.markup import (
    facts_list,
    figure_pair,
    html_table,
    key_value_table,
    not_run,
    note,
    number_cell,
)
from mlops.pilot.report.model_figures import (
    calibration_figure,
    confusion_matrix_figure,
    example_explanation_figure,
    global_importance_figure,
    precision_recall_figure,
    roc_figure,
    threshold_value_figure,
)
from mlops.registry.model_card import ranked_importance


def criteria_section(criteria: CriteriaReport) -> str:
    rows = []
    for name, criterion in criteria.criteria.items():
        outcome = "pass" if criterion.passed else "fail"
        rows.append(
            f'<tr class="{outcome}"><td>{escape_html(name)}</td>{number_cell(format_value(criterion.value))}'
            f"<td>{escape_html(criterion.comparison)}</td>{number_cell(format_value(criterion.target))}"
            f'<td class="result">{outcome.upper()}</td></tr>'
        )
    if not rows:
        return not_run("no success criteria were evaluated")
    return html_table(("Criterion", "Value", "Comparison", "Target", "Result"), rows)


def performance_section(inputs: ReportInputs) -> str:
    labels = np.asarray(inputs.test_labels, dtype=np.int64)
    probabilities = np.asarray(inputs.test_probabilities, dtype=np.float64)
    if labels.size == 0:
        return not_run("no held-out predictions were given")
    threshold = inputs.threshold.threshold
    predictions = (probabilities >= threshold).astype(np.int64)
    tn, fp, fn, tp = confusion_matrix(labels, predictions, labels=[0, 1]).ravel().tolist()
    both_classes = 0 < labels.sum() < labels.size
    facts = [
        ("Held-out rows", f"{labels.size:,}"),
        ("Churn rate", f"{labels.mean():.1%}"),
        ("ROC AUC", f"{roc_auc_score(labels, probabilities):.4f}" if both_classes else "n/a (one class)"),
        ("Average precision", f"{average_precision_score(labels, probabilities):.4f}" if both_classes else "n/a"),
        ("Brier score", f"{brier_score_loss(labels, probabilities):.4f}"),
        (f"Accuracy at {threshold:.2f}", f"{(tp + tn) / labels.size:.4f}"),
        (f"Precision at {threshold:.2f}", f"{tp / (tp + fp):.4f}" if tp + fp else "n/a (no offers)"),
        (f"Recall at {threshold:.2f}", f"{tp / (tp + fn):.4f}" if tp + fn else "n/a"),
    ]
    parts = [facts_list(facts)]
    if both_classes:
        parts.append(
            figure_pair(
                roc_figure(labels, probabilities, threshold),
                precision_recall_figure(labels, probabilities, threshold),
            )
        )
    else:
        parts.append(note("ROC and precision-recall curves need both classes in the held-out labels."))
    parts.append(
        figure_pair(calibration_figure(labels, probabilities), confusion_matrix_figure(tn, fp, fn, tp, threshold))
    )
    return "\n".join(parts)


def threshold_section(inputs: ReportInputs) -> str:
    choice = inputs.threshold
    facts = [
        ("Chosen threshold", f"{choice.threshold:.2f}"),
        ("Chosen on", f"{choice.source} ({choice.rows:,} rows)"),
        ("Net value at the threshold", format_usd(choice.net_value_usd)),
        ("Net value per customer", format_usd(choice.net_value_per_customer_usd, cents=True)),
        ("Value of a saved customer", format_usd(choice.value_per_saved_customer_usd)),
        ("Cost of an offer", format_usd(choice.offer_cost_usd)),
    ]
    if not choice.curve:
        return facts_list(facts) + "\n" + note("No threshold curve was recorded.")
    return facts_list(facts) + "\n" + threshold_value_figure(choice)


def explainability_section(inputs: ReportInputs) -> str:
    summary = inputs.explainability
    parts = ["<h3>Global importance</h3>"]
    importance = ranked_importance(summary.get("global_importance"))
    if importance:
        facts = [
            (label, format_value(summary[key]))
            for label, key in (("Method", "method"), ("Output space", "output_space"), ("Base value", "base_value"))
            if summary.get(key) is not None
        ]
        parts += [
            facts_list(facts),
            global_importance_figure(importance, str(summary.get("output_space", "model output"))),
        ]
    else:
        parts.append(not_run("no global importance was recorded"))

    parts.append("<h3>One customer's explanation</h3>")
    example = inputs.example_explanation
    contributions = example.get("contributions") or []
    if contributions:
        facts = [
            ("Customer", format_value(example.get("customer_id"))),
            ("Churn probability", format_value(example.get("churn_probability"))),
            ("Base value", format_value(example.get("base_value"))),
            ("Output space", format_value(example.get("output_space"))),
        ]
        parts += [facts_list(facts), example_explanation_figure(example)]
    else:
        parts.append(not_run("no example explanation was recorded"))
    return "\n".join(parts)


def model_card_section(markdown: str) -> str:
    if not markdown.strip():
        return not_run("no model card was given")
    lines = markdown.count("\n") + 1
    return (
        f"<details><summary>Model card (Markdown, {lines} lines)</summary>\n"
        f'<pre id="model-card-markdown">{escape_html(markdown)}</pre>\n</details>'
    )


def lineage_section(lineage: Mapping[str, Any]) -> str:
    if not lineage:
        return not_run("no lineage was recorded")
    return key_value_table(lineage, ("Field", "Value"))
