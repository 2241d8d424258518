"""The pilot report: one self-contained HTML page that shows what a pilot run trained, deployed and measured.

`render_report(ReportInputs)` returns the page as a string: success criteria, held-out performance (ROC,
precision-recall, calibration, confusion matrix at the chosen threshold), the business-value curve the
threshold was read from, SHAP explanations, the A/B experiment, data drift, monitoring, smoke-test latency, the
model card and the lineage. Every chart is a matplotlib `Figure` (no pyplot, so no global figure registry and
no backend to select) saved as a PNG and embedded as a `data:` URL; the CSS is inline and there is no script,
so the file opens offline and can be archived or attached as it is. Every piece of text is HTML-escaped.
A section whose input is missing (no experiment, no drift check, no monitoring) says "not run".
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter
from pydantic import BaseModel, model_validator
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from mlops.experiments.models import Direction, Interval, MetricKind, MetricResult, VariantComparison
from mlops.monitoring.drift import DriftReport, FeatureDrift
from mlops.pilot.payloads import CampaignReport, CriteriaReport, LatencySummary
from mlops.registry.model_card import ranked_importance
from mlops.training.threshold import ThresholdChoice


class ReportInputs(BaseModel):
    """Everything the report shows; the pilot collects it from its state, its artifacts and the model card."""

    model_name: str
    model_version: str
    execution_name: str
    generated_at: dt.datetime
    criteria: CriteriaReport
    test_labels: list[int]
    test_probabilities: list[float]
    threshold: ThresholdChoice
    explainability: dict[str, Any]
    example_explanation: dict[str, Any]
    campaign: CampaignReport | None
    drift: DriftReport | None
    monitoring: dict[str, Any] | None
    latencies_ms: list[float]
    latency_summary: LatencySummary
    model_card_markdown: str
    lineage: dict[str, Any]

    @model_validator(mode="after")
    def _held_out_split_is_consistent(self) -> ReportInputs:
        if len(self.test_labels) != len(self.test_probabilities):
            raise ValueError(
                f"test_labels ({len(self.test_labels)}) and test_probabilities ({len(self.test_probabilities)}) "
                "must have the same length"
            )
        if not set(self.test_labels) <= {0, 1}:
            raise ValueError("test_labels must be 0 or 1")
        return self


# Figures are laid out in inches at CSS_PX_PER_INCH (so a 9-inch figure fills the 900 px content column) and
# saved at SAVE_DPI, so they stay sharp on high-density screens.
CSS_PX_PER_INCH = 100
SAVE_DPI = 150
FULL_WIDTH_IN = 9.0
HALF_WIDTH_IN = 4.45
TOP_IMPORTANCE = 15
TOP_CONTRIBUTIONS = 10
RAISES_COLOUR = "#d62728"  # a contribution that raises churn risk
LOWERS_COLOUR = "#1f77b4"
MODEL_COLOUR = "#1f77b4"
REFERENCE_COLOUR = "#7f7f7f"
CHOSEN_COLOUR = "#2ca02c"
CLASS_NAMES = ("stays (0)", "churns (1)")

CSS = """
:root { --pass: #137333; --pass-bg: #e6f4ea; --fail: #a50e0e; --fail-bg: #fce8e6; --line: #d0d7de; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f8fa; color: #1f2328; font: 15px/1.5 system-ui, -apple-system, "Segoe UI",
       Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 960px; margin: 0 auto; padding: 24px 30px 48px; background: #fff; }
header h1 { margin: 0 0 8px; font-size: 26px; }
h2 { margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 1px solid var(--line); font-size: 20px; }
h3 { margin: 20px 0 8px; font-size: 16px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0 0 12px; }
dl.facts dt { color: #57606a; }
dl.facts dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 14px; }
.badge { display: inline-block; padding: 2px 12px; border-radius: 12px; font-weight: 700; letter-spacing: .04em; }
.badge.pass { background: var(--pass-bg); color: var(--pass); border: 1px solid var(--pass); }
.badge.fail { background: var(--fail-bg); color: var(--fail); border: 1px solid var(--fail); }
nav ol { columns: 2; margin: 8px 0 0; padding-left: 20px; font-size: 14px; }
a { color: #0969da; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.table-wrap { overflow-x: auto; }
table.compact { font-size: 13px; }
table.compact td { white-space: nowrap; }
small { color: #57606a; }
tr.pass td.result { background: var(--pass-bg); color: var(--pass); font-weight: 700; }
tr.fail td.result { background: var(--fail-bg); color: var(--fail); font-weight: 700; }
td.yes { color: var(--fail); font-weight: 700; }
td.significant { font-weight: 700; }
figure { margin: 8px 0 16px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: 13px; margin-top: 4px; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; }
.pair figure { margin: 0 0 12px; }
p.not-run, p.note { color: #57606a; font-style: italic; }
p.not-run { padding: 8px 12px; background: #f6f8fa; border-left: 4px solid var(--line); }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f8fa; padding: 8px 12px; margin: 0;
      font-size: 13px; }
td pre { padding: 0; background: none; }
details summary { cursor: pointer; font-weight: 600; margin-bottom: 8px; }
""".strip()


# ---------------------------------------------------------------------------------------------- public API
def render_report(inputs: ReportInputs) -> str:
    """The pilot report as one self-contained HTML document."""
    sections = [
        ("criteria", "Success criteria", _criteria_section(inputs.criteria)),
        ("performance", "Held-out performance", _performance_section(inputs)),
        ("threshold", "Decision threshold and business value", _threshold_section(inputs)),
        ("explainability", "Explainability (SHAP)", _explainability_section(inputs)),
        ("experiment", "A/B experiment", _experiment_section(inputs.campaign)),
        ("drift", "Data drift", _drift_section(inputs.drift)),
        ("monitoring", "Monitoring (logged outcomes)", _monitoring_section(inputs.monitoring)),
        ("latency", "Smoke-test latency", _latency_section(inputs.latencies_ms, inputs.latency_summary)),
        ("model-card", "Model card", _model_card_section(inputs.model_card_markdown)),
        ("lineage", "Lineage", _lineage_section(inputs.lineage)),
    ]
    verdict = "PASS" if inputs.criteria.all_passed else "FAIL"
    title = f"Pilot report: {inputs.model_name} {inputs.model_version} ({verdict})"
    body = "\n".join(
        f'<section id="{section_id}" data-section="{section_id}">\n<h2>{_e(heading)}</h2>\n{content}\n</section>'
        for section_id, heading, content in sections
    )
    nav = "".join(f'<li><a href="#{section_id}">{_e(heading)}</a></li>' for section_id, heading, _ in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<link rel="icon" href="data:,">
<style>
{CSS}
</style>
</head>
<body>
<main>
{_header(inputs, verdict)}
<nav aria-label="Sections"><ol>{nav}</ol></nav>
{body}
</main>
</body>
</html>
"""


def write_report(inputs: ReportInputs, path: Path) -> Path:
    """Render the report to ``path`` (parent directories created); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(inputs), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- header
def _header(inputs: ReportInputs, verdict: str) -> str:
    failed = inputs.criteria.failed
    failed_html = f" <span>failed: {_e(', '.join(failed))}</span>" if failed else ""
    facts = [
        ("Model", inputs.model_name),
        ("Version", inputs.model_version),
        ("Execution", inputs.execution_name),
        ("Generated", inputs.generated_at.isoformat(timespec="seconds")),
    ]
    return (
        "<header>\n"
        f"<h1>Pilot report: {_e(inputs.model_name)}</h1>\n"
        f"{_facts(facts)}\n"
        f'<p>Overall: <span class="badge {verdict.lower()}" id="verdict">{verdict}</span>{failed_html}</p>\n'
        "</header>"
    )


# ---------------------------------------------------------------------------------------------- sections
def _criteria_section(criteria: CriteriaReport) -> str:
    rows = []
    for name, criterion in criteria.criteria.items():
        outcome = "pass" if criterion.passed else "fail"
        rows.append(
            f'<tr class="{outcome}"><td>{_e(name)}</td><td class="num">{_e(_fmt(criterion.value))}</td>'
            f'<td>{_e(criterion.comparison)}</td><td class="num">{_e(_fmt(criterion.target))}</td>'
            f'<td class="result">{outcome.upper()}</td></tr>'
        )
    if not rows:
        return _not_run("no success criteria were evaluated")
    return _table_html(("Criterion", "Value", "Comparison", "Target", "Result"), rows)


def _performance_section(inputs: ReportInputs) -> str:
    labels = np.asarray(inputs.test_labels, dtype=np.int64)
    probabilities = np.asarray(inputs.test_probabilities, dtype=np.float64)
    if labels.size == 0:
        return _not_run("no held-out predictions were given")
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
    parts = [_facts(facts)]
    if both_classes:
        parts.append(
            _pair(
                _roc_figure(labels, probabilities, threshold),
                _precision_recall_figure(labels, probabilities, threshold),
            )
        )
    else:
        parts.append(_note("ROC and precision-recall curves need both classes in the held-out labels."))
    parts.append(_pair(_calibration_figure(labels, probabilities), _confusion_figure(tn, fp, fn, tp, threshold)))
    return "\n".join(parts)


def _threshold_section(inputs: ReportInputs) -> str:
    choice = inputs.threshold
    facts = [
        ("Chosen threshold", f"{choice.threshold:.2f}"),
        ("Chosen on", f"{choice.source} ({choice.rows:,} rows)"),
        ("Net value at the threshold", _usd(choice.net_value_usd)),
        ("Net value per customer", _usd(choice.net_value_per_customer_usd, cents=True)),
        ("Value of a saved customer", _usd(choice.value_per_saved_customer_usd)),
        ("Cost of an offer", _usd(choice.offer_cost_usd)),
    ]
    if not choice.curve:
        return _facts(facts) + "\n" + _note("No threshold curve was recorded.")
    return _facts(facts) + "\n" + _threshold_figure(choice)


def _explainability_section(inputs: ReportInputs) -> str:
    summary = inputs.explainability
    parts = ["<h3>Global importance</h3>"]
    importance = ranked_importance(summary.get("global_importance"))
    if importance:
        facts = [
            (label, _fmt(summary[key]))
            for label, key in (("Method", "method"), ("Output space", "output_space"), ("Base value", "base_value"))
            if summary.get(key) is not None
        ]
        parts += [_facts(facts), _importance_figure(importance, str(summary.get("output_space", "model output")))]
    else:
        parts.append(_not_run("no global importance was recorded"))

    parts.append("<h3>One customer's explanation</h3>")
    example = inputs.example_explanation
    contributions = example.get("contributions") or []
    if contributions:
        facts = [
            ("Customer", _fmt(example.get("customer_id"))),
            ("Churn probability", _fmt(example.get("churn_probability"))),
            ("Base value", _fmt(example.get("base_value"))),
            ("Output space", _fmt(example.get("output_space"))),
        ]
        parts += [_facts(facts), _explanation_figure(example)]
    else:
        parts.append(_not_run("no example explanation was recorded"))
    return "\n".join(parts)


def _experiment_section(campaign: CampaignReport | None) -> str:
    if campaign is None:
        return _not_run("no A/B experiment was analysed")
    results = campaign.results
    ratio = results.sample_ratio
    confidence = 1 - results.alpha
    facts = [
        ("Experiment", results.experiment_id),
        ("Status", results.status.value),
        ("Units", f"{results.units:,} of {results.plan.total_units:,} planned ({results.plan_progress:.1%})"),
        (
            "Sample ratio check",
            f"{'MISMATCH' if ratio.mismatch else 'ok'} (chi-square {ratio.chi_square:.3g}, p = {_p(ratio.p_value)})",
        ),
        ("Significance level", f"alpha = {results.alpha:g}"),
    ]
    parts = [_facts(facts)]
    if results.metrics:
        parts.append(_experiment_figure(results.metrics, confidence))
        parts.append(_comparison_table(results.metrics, confidence))
    else:
        parts.append(_note("The experiment has no metric results yet."))

    parts.append("<h3>Campaign outcome per variant</h3>")
    parts.append(
        _table_html(
            ("Variant", "Customers", "Offers", "Would churn", "Saved", "Churned", "Net value", "Net / customer"),
            [
                f"<tr><td>{_e(name)}</td>{_num(outcome.customers)}{_num(outcome.offers)}{_num(outcome.would_churn)}"
                f"{_num(outcome.saved)}{_num(outcome.churned)}{_num(_usd(outcome.net_value_usd))}"
                f"{_num(_usd(outcome.net_value_per_customer_usd, cents=True))}</tr>"
                for name, outcome in campaign.variants.items()
            ],
        )
    )
    impact = campaign.business_impact
    measured = impact.measured_by_experiment
    parts.append("<h3>Projected annual impact</h3>")
    parts.append(
        _table_html(
            ("Estimate", "Value", f"{confidence:.0%} interval"),
            [
                _impact_row(
                    "Projected annual impact (simulation ground truth)",
                    impact.projected_annual_impact_usd,
                    impact.projected_annual_impact_ci_usd,
                ),
                _impact_row(
                    f"Measured by the experiment ({'CUPED' if measured.estimate == 'cuped' else 'unadjusted'})",
                    measured.projected_annual_impact_usd,
                    measured.projected_annual_impact_ci_usd,
                ),
                _impact_row(
                    "Measured by the experiment (unadjusted)",
                    measured.unadjusted_projected_annual_impact_usd,
                    measured.unadjusted_projected_annual_impact_ci_usd,
                ),
                _impact_row(
                    "Incremental net value per customer",
                    impact.incremental_net_value_per_customer_usd,
                    impact.incremental_net_value_per_customer_ci_usd,
                    cents=True,
                ),
            ],
        )
    )
    assumptions = impact.assumptions
    parts.append(
        f'<p class="note">Method: {_e(impact.method.rstrip("."))}. '
        f"Assumptions: {assumptions.customer_base:,} customers, "
        f"{_e(_usd(assumptions.annual_value_per_customer_usd))} a year per retained customer, "
        f"{_e(_usd(assumptions.offer_cost_usd))} per offer, {assumptions.offer_acceptance_rate:.0%} acceptance.</p>"
    )
    return "\n".join(parts)


def _drift_section(drift: DriftReport | None) -> str:
    if drift is None:
        return _not_run("no drift check was run")
    thresholds = drift.thresholds
    facts = [
        ("Recent rows", f"{drift.rows:,}"),
        ("Enough data for a verdict", "yes" if drift.sufficient_data else f"no (fewer than {thresholds.min_rows:,})"),
        ("Drift detected", "yes" if drift.drift_detected else "no"),
        ("Drifted features", ", ".join(drift.drifted_features) or "none"),
        ("Max feature PSI", f"{drift.max_feature_psi:.3f} (threshold {thresholds.psi:g})"),
        ("Score PSI", "n/a" if drift.score_psi is None else f"{drift.score_psi:.3f}"),
    ]
    parts = [_facts(facts)]
    if drift.features:
        parts.append(_psi_figure(drift.features, thresholds.psi))
        parts.append(
            _table_html(
                ("Feature", "Kind", "Test", "PSI", "Chi-square", "p-value", "Drifted"),
                [
                    f"<tr><td>{_e(item.feature)}</td><td>{_e(item.kind)}</td><td>{_e(item.test)}</td>"
                    f"{_num(f'{item.psi:.4f}')}{_num(_fmt(item.chi_square))}{_num(_p(item.p_value))}"
                    f'<td class="{"yes" if item.drifted else "no"}">{"yes" if item.drifted else "no"}</td></tr>'
                    for item in drift.features
                ],
            )
        )
        parts.append(
            _note(
                f"Numeric features drift when PSI > {thresholds.psi:g}; categorical ones when the chi-square "
                f"p-value < {thresholds.chi_square_p_value:g}."
            )
        )
    else:
        parts.append(_note("No feature was compared."))
    parts.append("<h3>Score drift</h3>")
    if drift.score is not None and drift.score.bins:
        parts.append(_score_drift_figure(drift.score))
    else:
        parts.append(_not_run("score drift was not computed"))
    return "\n".join(parts)


def _monitoring_section(monitoring: Mapping[str, Any] | None) -> str:
    if monitoring is None:
        return _not_run("no logged outcomes were matched to predictions")
    return _key_value_table(monitoring, ("Measure", "Value"))


def _latency_section(latencies_ms: Sequence[float], summary: LatencySummary) -> str:
    table = _table_html(
        ("Calls", "p50", "p95", "p99", "Mean", "Max"),
        [
            f"<tr>{_num(f'{len(latencies_ms):,}')}"
            + "".join(
                _num(f"{value:.1f} ms") for value in (summary.p50, summary.p95, summary.p99, summary.mean, summary.max)
            )
            + "</tr>"
        ],
    )
    if not latencies_ms:
        return table + "\n" + _note("No per-call latencies were recorded.")
    return table + "\n" + _latency_figure(latencies_ms, summary)


def _model_card_section(markdown: str) -> str:
    if not markdown.strip():
        return _not_run("no model card was given")
    lines = markdown.count("\n") + 1
    return (
        f"<details><summary>Model card (Markdown, {lines} lines)</summary>\n"
        f'<pre id="model-card-markdown">{_e(markdown)}</pre>\n</details>'
    )


def _lineage_section(lineage: Mapping[str, Any]) -> str:
    if not lineage:
        return _not_run("no lineage was recorded")
    return _key_value_table(lineage, ("Field", "Value"))


# ---------------------------------------------------------------------------------------------- figures
def _roc_figure(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> str:
    fpr, tpr, _ = roc_curve(labels, probabilities)
    auc = roc_auc_score(labels, probabilities)
    flagged = probabilities >= threshold
    point = (flagged[labels == 0].mean(), flagged[labels == 1].mean())
    fig = _new_figure(HALF_WIDTH_IN, 3.9)
    ax = fig.subplots()
    ax.plot(fpr, tpr, color=MODEL_COLOUR, lw=2, label=f"model (AUC = {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color=REFERENCE_COLOUR, lw=1, label="chance (AUC = 0.5)")
    ax.plot(*point, "o", color=CHOSEN_COLOUR, label=f"threshold {threshold:.2f}")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate", ylabel="True positive rate", title="ROC curve")
    ax.legend(loc="lower right", fontsize=9)
    ax.grid(alpha=0.3)
    return _embed(fig, "roc", f"ROC curve of the held-out predictions, AUC {auc:.3f}")


def _precision_recall_figure(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> str:
    precision, recall, _ = precision_recall_curve(labels, probabilities)
    average_precision = average_precision_score(labels, probabilities)
    flagged = probabilities >= threshold
    prevalence = labels.mean()
    fig = _new_figure(HALF_WIDTH_IN, 3.9)
    ax = fig.subplots()
    ax.step(recall, precision, where="post", color=MODEL_COLOUR, lw=2, label=f"model (AP = {average_precision:.3f})")
    ax.axhline(prevalence, ls="--", color=REFERENCE_COLOUR, lw=1, label=f"no skill (AP = {prevalence:.3f})")
    if flagged.any():
        ax.plot(
            flagged[labels == 1].mean(),
            labels[flagged].mean(),
            "o",
            color=CHOSEN_COLOUR,
            label=f"threshold {threshold:.2f}",
        )
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="Recall", ylabel="Precision", title="Precision-recall curve")
    ax.legend(loc="lower left", fontsize=9)
    ax.grid(alpha=0.3)
    return _embed(
        fig,
        "precision_recall",
        f"Precision-recall curve of the held-out predictions, average precision {average_precision:.3f}",
    )


def _calibration_figure(labels: np.ndarray, probabilities: np.ndarray) -> str:
    observed, predicted = calibration_curve(labels, probabilities, n_bins=10, strategy="quantile")
    brier = brier_score_loss(labels, probabilities)
    fig = _new_figure(HALF_WIDTH_IN, 3.9)
    curve_ax, hist_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    curve_ax.plot([0, 1], [0, 1], ls="--", color=REFERENCE_COLOUR, lw=1, label="perfectly calibrated")
    curve_ax.plot(predicted, observed, "o-", color=MODEL_COLOUR, label=f"model (Brier = {brier:.3f})")
    curve_ax.set(xlim=(0, 1), ylim=(0, 1.01), ylabel="Observed churn rate", title="Calibration (10 quantile bins)")
    curve_ax.legend(loc="upper left", fontsize=9)
    curve_ax.grid(alpha=0.3)
    hist_ax.hist(probabilities, bins=20, range=(0, 1), color=MODEL_COLOUR, alpha=0.7)
    hist_ax.set(xlabel="Predicted churn probability", ylabel="Rows")
    return _embed(fig, "calibration", f"Reliability diagram of the held-out predictions, Brier score {brier:.3f}")


def _confusion_figure(tn: int, fp: int, fn: int, tp: int, threshold: float) -> str:
    counts = np.array([[tn, fp], [fn, tp]])
    # Coloured by the share of each actual class (so the rare churners' row is as readable as the stayers').
    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros((2, 2)), where=row_totals > 0)
    fig = _new_figure(HALF_WIDTH_IN, 3.9)
    ax = fig.subplots()
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    names = [["true negatives", "false positives"], ["false negatives", "true positives"]]
    for row in range(2):
        for column in range(2):
            share = shares[row, column]
            colour = "white" if share > 0.5 else "black"
            text = f"{counts[row, column]:,}\n{share:.1%} of row\n{names[row][column]}"
            ax.text(column, row, text, ha="center", va="center", color=colour, fontsize=10)
    ax.set_xticks([0, 1], [f"predicted {name}" for name in CLASS_NAMES], fontsize=9)
    ax.set_yticks([0, 1], [f"actual\n{name}" for name in CLASS_NAMES], fontsize=9)
    ax.set_title(f"Confusion matrix at threshold {threshold:.2f}")
    return _embed(
        fig,
        "confusion_matrix",
        f"Confusion matrix at threshold {threshold:.2f}: {tn} true negatives, {fp} false positives, "
        f"{fn} false negatives, {tp} true positives",
    )


def _threshold_figure(choice: ThresholdChoice) -> str:
    thresholds = np.array([point.threshold for point in choice.curve])
    values = np.array([point.net_value_usd for point in choice.curve])
    fig = _new_figure(FULL_WIDTH_IN, 3.6)
    ax = fig.subplots()
    ax.plot(thresholds, values, color=MODEL_COLOUR, lw=2, label="net value")
    ax.axhline(0, color="black", lw=0.8)
    ax.axvline(
        choice.threshold,
        color=CHOSEN_COLOUR,
        lw=2,
        label=_plain(f"chosen {choice.threshold:.2f}: {_usd(choice.net_value_usd)}"),
    )
    reference = min(choice.curve, key=lambda point: abs(point.threshold - 0.5))
    ax.axvline(
        0.5,
        color=REFERENCE_COLOUR,
        ls="--",
        lw=1.5,
        label=_plain(f"0.5 for reference: {_usd(reference.net_value_usd)}"),
    )
    ax.plot([choice.threshold], [choice.net_value_usd], "o", color=CHOSEN_COLOUR)
    ax.plot([reference.threshold], [reference.net_value_usd], "o", color=REFERENCE_COLOUR)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: _plain(_usd(value))))
    ax.set(
        xlim=(0, 1),
        xlabel="Decision threshold (offer when churn probability >= threshold)",
        ylabel="Net value",
        title=f"Net value of the retention campaign by decision threshold ({choice.rows:,} validation rows)",
    )
    ax.legend(loc="best", fontsize=9)
    ax.grid(alpha=0.3)
    return _embed(
        fig,
        "threshold_value",
        f"Net value against decision threshold; chosen threshold {choice.threshold:.2f} gives "
        f"{_usd(choice.net_value_usd)}, 0.5 gives {_usd(reference.net_value_usd)}",
    )


def _importance_figure(importance: Sequence[tuple[str, float]], output_space: str) -> str:
    top = list(importance[:TOP_IMPORTANCE])
    names = [_plain(name) for name, _ in reversed(top)]  # barh draws bottom-up: largest last, i.e. on top
    values = [value for _, value in reversed(top)]
    fig = _new_figure(FULL_WIDTH_IN, 0.32 * len(top) + 1.1)
    ax = fig.subplots()
    ax.barh(names, values, color=MODEL_COLOUR)
    ax.set(
        xlabel=f"Mean |SHAP contribution| ({_plain(output_space)})",
        title=f"Global importance: top {len(top)} of {len(importance)} features on the held-out rows",
    )
    ax.grid(axis="x", alpha=0.3)
    ax.margins(y=0.01)
    leader = ", ".join(name for name, _ in top[:3])
    return _embed(fig, "global_importance", f"Mean absolute SHAP contribution per feature; largest: {leader}")


def _explanation_figure(example: Mapping[str, Any]) -> str:
    base_value = float(example.get("base_value") or 0.0)
    output_space = str(example.get("output_space", "model output"))
    contributions = sorted(example["contributions"], key=lambda item: -abs(float(item["contribution"])))
    shown, rest = contributions[:TOP_CONTRIBUTIONS], contributions[TOP_CONTRIBUTIONS:]
    rows = [
        (f"{_plain(item['feature'])} = {_plain(_fmt(item.get('value')))}", float(item["contribution"]))
        for item in shown
    ]
    if rest:
        rows.append((f"{len(rest)} other features", math.fsum(float(item["contribution"]) for item in rest)))
    output = base_value + math.fsum(value for _, value in rows)

    fig = _new_figure(FULL_WIDTH_IN, 0.36 * len(rows) + 1.6)
    ax = fig.subplots()
    start = base_value
    positions = [base_value]
    for position, (_, value) in enumerate(rows):  # a waterfall read top-down: base value -> model output
        colour = RAISES_COLOUR if value > 0 else LOWERS_COLOUR
        ax.barh(position, value, left=start, color=colour, height=0.7)
        ax.text(
            start + value,
            position,
            f" {value:+.3f} ",
            va="center",
            ha="left" if value > 0 else "right",
            fontsize=8,
            color=colour,
        )
        start += value
        positions.append(start)
    ax.axvline(base_value, color=REFERENCE_COLOUR, ls="--", lw=1, label=f"base value {base_value:.3f}")
    ax.axvline(output, color="black", lw=1, label=f"model output {output:.3f}")
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=9)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    # Bars are sticky at their left end, so margins() would not pad: leave room for the value labels by hand.
    low, high = min(positions), max(positions)
    padding = 0.12 * (high - low or 1.0)
    ax.set_xlim(low - padding, high + padding)
    probability = example.get("churn_probability")
    customer = _plain(str(example.get("customer_id", "?")))
    headline = f"Customer {customer}" + (f": churn probability {probability:.1%}" if probability is not None else "")
    ax.set(xlabel=f"Model output ({_plain(output_space)}); red raises churn risk, blue lowers it", title=headline)
    fig.legend(loc="outside lower center", ncols=2, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    raising = [str(item["feature"]) for item in shown if float(item["contribution"]) > 0][:3]
    return _embed(
        fig,
        "example_explanation",
        f"SHAP contributions for customer {customer} from base value {base_value:.3f} to {output:.3f} "
        f"({output_space}); red raises churn risk, blue lowers it; largest raising: {', '.join(raising) or 'none'}",
    )


def _experiment_figure(metrics: Sequence[MetricResult], confidence: float) -> str:
    fig = _new_figure(FULL_WIDTH_IN, 2.0 * len(metrics) + 0.5)
    axes = fig.subplots(len(metrics), 2, squeeze=False, width_ratios=[1, 1.5])
    for (variant_ax, difference_ax), metric in zip(axes, metrics, strict=True):
        _variant_means(variant_ax, metric)
        _differences(difference_ax, metric, confidence)
    names = ", ".join(metric.metric for metric in metrics)
    return _embed(
        fig,
        "ab_results",
        f"Per-variant values and treatment minus control differences with {confidence:.0%} intervals for {names}",
    )


def _variant_means(ax: Axes, metric: MetricResult) -> None:
    names = list(metric.variants)
    means = [metric.variants[name].mean or 0.0 for name in names]
    controls = {comparison.control for comparison in metric.comparisons}
    colours = [REFERENCE_COLOUR if name in controls else MODEL_COLOUR for name in names]
    bars = ax.barh([_plain(name) for name in names], means, color=colours)
    rate = metric.kind is MetricKind.CONVERSION
    ax.bar_label(bars, labels=[_plain(_metric_value(metric, mean)) for mean in means], padding=3, fontsize=8)
    ax.invert_yaxis()
    ax.margins(x=0.25)
    if rate:
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    elif metric.metric.endswith("_usd"):
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _plain(_usd(value))))
    label = "rate" if rate else "mean per unit"
    ax.set_title(f"{_plain(metric.metric)} ({metric.role}): {label}", fontsize=10)
    ax.tick_params(labelsize=8)


def _differences(ax: Axes, metric: MetricResult, confidence: float) -> None:
    rows: list[tuple[str, float | None, Interval, bool]] = []
    for comparison in metric.comparisons:
        pair = f"{comparison.treatment} - {comparison.control}"
        rows.append((f"{pair}\n{comparison.test}", comparison.difference, comparison.confidence_interval, False))
        if comparison.cuped is not None:
            cuped = comparison.cuped
            rows.append((f"{pair}\nCUPED ({cuped.covariate})", cuped.difference, cuped.confidence_interval, False))
        rows.append((f"{pair}\nsequential", comparison.difference, comparison.sequential.confidence_sequence, True))
    for position, (_, difference, interval, sequential) in enumerate(rows):
        if difference is None:
            continue
        colour = _comparison_colour(metric, interval)
        low = difference - interval.low if interval.low is not None else 0.0
        high = interval.high - difference if interval.high is not None else 0.0
        ax.errorbar(
            difference,
            position,
            xerr=[[max(low, 0.0)], [max(high, 0.0)]],
            fmt="s" if not sequential else "o",
            color=colour,
            ecolor=colour,
            elinewidth=2,
            capsize=4,
            alpha=0.6 if sequential else 1.0,
        )
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)), [_plain(label) for label, *_ in rows], fontsize=7)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _plain(_difference_tick(metric, value))))
    ax.set_title(f"difference, {confidence:.0%} interval (better: {metric.direction.value})", fontsize=10)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", alpha=0.3)


def _comparison_colour(metric: MetricResult, interval: Interval) -> str:
    """Green when the interval excludes 0 on the good side, red on the bad side, grey otherwise."""
    if interval.low is None or interval.high is None or interval.low <= 0 <= interval.high:
        return REFERENCE_COLOUR
    increased = interval.low > 0
    good = increased == (metric.direction is Direction.INCREASE)
    return CHOSEN_COLOUR if good else RAISES_COLOUR


def _psi_figure(features: Sequence[FeatureDrift], threshold: float) -> str:
    ranked = sorted(features, key=lambda item: item.psi)  # barh draws bottom-up: largest PSI on top
    fig = _new_figure(FULL_WIDTH_IN, 0.3 * len(ranked) + 1.3)
    ax = fig.subplots()
    ax.barh(
        [_plain(item.feature) for item in ranked],
        [item.psi for item in ranked],
        color=[RAISES_COLOUR if item.drifted else MODEL_COLOUR for item in ranked],
    )
    ax.axvline(threshold, color="black", ls="--", lw=1.2, label=f"PSI threshold {threshold:g}")
    ax.set(xlabel="Population stability index (PSI)", title="Drift per feature (red: drifted)")
    ax.legend(loc="lower right", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.margins(y=0.01)
    drifted = [item.feature for item in features if item.drifted]
    return _embed(
        fig,
        "drift_psi",
        f"PSI per feature against the threshold {threshold:g}; drifted: {', '.join(drifted) or 'none'}",
    )


def _score_drift_figure(score: FeatureDrift) -> str:
    positions = np.arange(len(score.bins))
    width = 0.4
    fig = _new_figure(FULL_WIDTH_IN, 3.4)
    ax = fig.subplots()
    ax.bar(positions - width / 2, score.expected, width, color=REFERENCE_COLOUR, label="expected (training)")
    ax.bar(positions + width / 2, score.actual, width, color=MODEL_COLOUR, label="actual (recent)")
    many = len(score.bins) > 8
    ax.set_xticks(
        positions, [_plain(name) for name in score.bins], rotation=30 if many else 0, ha="right" if many else "center"
    )
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    verdict = "drifted" if score.drifted else "stable"
    ax.set(xlabel="Churn probability bin", ylabel="Share of rows", title=f"Score PSI {score.psi:.3f} ({verdict})")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _embed(
        fig,
        "score_drift",
        f"Share of rows per churn probability bin, training against recent; score PSI {score.psi:.3f} ({verdict})",
    )


def _latency_figure(latencies_ms: Sequence[float], summary: LatencySummary) -> str:
    fig = _new_figure(FULL_WIDTH_IN, 3.3)
    ax = fig.subplots()
    ax.hist(latencies_ms, bins=min(40, max(10, len(latencies_ms) // 5)), color=MODEL_COLOUR, alpha=0.75)
    for label, value, style in (("p50", summary.p50, "-"), ("p95", summary.p95, "--"), ("p99", summary.p99, ":")):
        ax.axvline(value, color=RAISES_COLOUR, ls=style, lw=1.6, label=f"{label} {value:.1f} ms")
    ax.set(
        xlabel="Latency per call (ms)",
        ylabel="Calls",
        title=f"Smoke-test latency over {len(latencies_ms):,} calls",
    )
    ax.legend(fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _embed(
        fig,
        "latency",
        f"Histogram of {len(latencies_ms)} smoke-test latencies; p50 {summary.p50:.1f} ms, "
        f"p95 {summary.p95:.1f} ms, p99 {summary.p99:.1f} ms",
    )


def _new_figure(width_in: float, height_in: float) -> Figure:
    # A bare Figure needs no pyplot: nothing is registered globally, so nothing has to be closed.
    return Figure(figsize=(width_in, height_in), layout="constrained")


def _embed(fig: Figure, name: str, alt: str) -> str:
    """The figure as an <img> with a base64 PNG data URL; the figure is cleared once saved."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=SAVE_DPI, facecolor="white")
        width, height = (round(size * CSS_PX_PER_INCH) for size in fig.get_size_inches())
    finally:
        fig.clear()
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f'<figure id="figure-{name}">'
        f'<img data-figure="{name}" src="data:image/png;base64,{encoded}" alt="{_e(alt)}" '
        f'width="{width}" height="{height}"></figure>'
    )


# ---------------------------------------------------------------------------------------------- HTML helpers
def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _plain(text: object) -> str:
    """Text for matplotlib, which would read `$...$` as mathtext."""
    return str(text).replace("$", r"\$")


def _pair(left: str, right: str) -> str:
    return f'<div class="pair">{left}{right}</div>'


def _facts(facts: Iterable[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>" for label, value in facts)
    return f'<dl class="facts">{items}</dl>'


def _table_html(header: Sequence[str], rows: Iterable[str], *, css_class: str = "") -> str:
    head = "".join(f"<th>{_e(name)}</th>" for name in header)
    table = f'<table class="{css_class}">' if css_class else "<table>"
    return f'<div class="table-wrap">{table}<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _num(value: object) -> str:
    return f'<td class="num">{_e(value)}</td>'


def _key_value_table(values: Mapping[str, Any], header: tuple[str, str]) -> str:
    return _table_html(header, [f"<tr><td>{_e(key)}</td>{_value_cell(value)}</tr>" for key, value in values.items()])


def _value_cell(value: Any) -> str:
    if isinstance(value, Mapping | list | tuple):
        return f"<td><pre>{_e(json.dumps(value, indent=2, sort_keys=True, default=str))}</pre></td>"
    return f"<td>{_e(_fmt(value))}</td>"


def _not_run(reason: str) -> str:
    return f'<p class="not-run">not run: {_e(reason)}.</p>'


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _comparison_table(metrics: Sequence[MetricResult], confidence: float) -> str:
    level = f"{confidence:.0%}"
    return _table_html(
        (
            "Metric",
            "Variants",
            f"Difference [{level} CI]",
            "Relative lift",
            "p-value",
            "Significant",
            f"CUPED difference [{level} CI]",
            "P(treatment better)",
        ),
        [_comparison_row(metric, comparison) for metric in metrics for comparison in metric.comparisons],
        css_class="compact",
    )


def _comparison_row(metric: MetricResult, comparison: VariantComparison) -> str:
    def lines(first: str, *notes: str) -> str:
        return "<br>".join([_e(first), *(f"<small>{_e(note)}</small>" for note in notes)])

    def mean(variant: str) -> str:
        values = metric.variants.get(variant)
        return f"{variant}: {_metric_value(metric, values.mean if values else None)}"

    cuped = comparison.cuped
    cuped_cell = (
        "n/a"
        if cuped is None or cuped.difference is None
        else lines(
            _metric_value(metric, cuped.difference, signed=True),
            _interval(metric, cuped.confidence_interval),
            f"p = {_p(cuped.p_value)} ({cuped.covariate})",
        )
    )
    difference = lines(
        _metric_value(metric, comparison.difference, signed=True), _interval(metric, comparison.confidence_interval)
    )
    breached = ["guardrail breached"] if metric.guardrail_breached else []
    significant = '<td class="significant">yes</td>' if comparison.significant else "<td>no</td>"
    described = lines(metric.metric, f"{metric.role}, better: {metric.direction.value}", comparison.test, *breached)
    return (
        f"<tr><td>{described}</td>"
        f"<td>{_e(mean(comparison.control))}<br>{_e(mean(comparison.treatment))}</td>"
        f'<td class="num">{difference}</td>'
        f"{_num(_percent(comparison.relative_lift, signed=True))}"
        f"{_num(_p(comparison.p_value))}"
        f"{significant}"
        f'<td class="num">{cuped_cell}</td>'
        f"{_num(_percent(comparison.probability_treatment_better))}</tr>"
    )


def _impact_row(label: str, value: float, interval: tuple[float | None, float | None], cents: bool = False) -> str:
    low, high = interval
    bounds = f"[{_usd(low, cents=cents)}, {_usd(high, cents=cents)}]" if low is not None and high is not None else "n/a"
    return f"<tr><td>{_e(label)}</td>{_num(_usd(value, cents=cents))}{_num(bounds)}</tr>"


# ---------------------------------------------------------------------------------------------- number formats
def _fmt(value: object) -> str:
    """A value for a table cell; numpy scalars (as explanations carry them) read like Python numbers."""
    if value is None:
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.3g}"
        return f"{value:,.4f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.1f}"
    return str(value)


def _usd(value: float | None, *, cents: bool = False) -> str:
    if value is None:
        return "n/a"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}" if cents else f"{sign}${abs(value):,.0f}"


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _percent(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def _metric_value(metric: MetricResult, value: float | None, *, signed: bool = False) -> str:
    """A rate as a percentage (difference in points), a `_usd` metric in dollars, anything else as a number."""
    if value is None:
        return "n/a"
    if metric.kind is MetricKind.CONVERSION:
        return f"{value * 100:+.2f} pp" if signed else f"{value:.2%}"
    if metric.metric.endswith("_usd"):
        return ("+" if signed and value >= 0 else "") + _usd(value, cents=True)
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def _interval(metric: MetricResult, interval: Interval) -> str:
    if interval.low is None or interval.high is None:
        return "[n/a]"
    if metric.kind is MetricKind.CONVERSION:  # the unit once: [-0.55, +8.41] pp
        return f"[{interval.low * 100:+.2f}, {interval.high * 100:+.2f}] pp"
    return f"[{_metric_value(metric, interval.low, signed=True)}, {_metric_value(metric, interval.high, signed=True)}]"


def _difference_tick(metric: MetricResult, value: float) -> str:
    """An axis label of a difference: fewer digits than `_metric_value`."""
    if metric.kind is MetricKind.CONVERSION:
        return f"{value * 100:+.3g} pp" if value else "0"
    if metric.metric.endswith("_usd"):
        return ("+" if value > 0 else "") + _usd(value)
    return f"{value:+.3g}" if value else "0"
