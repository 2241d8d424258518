"""The pilot report's model-quality charts: held-out ROC, precision-recall, calibration and confusion matrix,
the business value by decision threshold, and the SHAP explanations (global importance, one customer's waterfall).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.ticker import FuncFormatter
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from mlops.pilot.report.figures import (
    CHOSEN_COLOUR,
    FULL_WIDTH_IN,
    HALF_WIDTH_IN,
    LOWERS_COLOUR,
    MODEL_COLOUR,
    RAISES_COLOUR,
    REFERENCE_COLOUR,
    embed_figure,
    escape_mathtext,
    new_figure,
)
from mlops.pilot.report.formatting import format_usd, format_value
from mlops.training.threshold import ThresholdChoice

TOP_IMPORTANCE = 15
TOP_CONTRIBUTIONS = 10
CLASS_NAMES = ("stays (0)", "churns (1)")


def roc_figure(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> str:
    fpr, tpr, _ = roc_curve(labels, probabilities)
    auc = roc_auc_score(labels, probabilities)
    flagged = probabilities >= threshold
    point = (flagged[labels == 0].mean(), flagged[labels == 1].mean())
    fig = new_figure(HALF_WIDTH_IN, 3.9)
    ax = fig.subplots()
    ax.plot(fpr, tpr, color=MODEL_COLOUR, lw=2, label=f"model (AUC = {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color=REFERENCE_COLOUR, lw=1, label="chance (AUC = 0.5)")
    ax.plot(*point, "o", color=CHOSEN_COLOUR, label=f"threshold {threshold:.2f}")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate", ylabel="True positive rate", title="ROC curve")
    ax.legend(loc="lower right", fontsize=9)
    ax.grid(alpha=0.3)
    return embed_figure(fig, "roc", f"ROC curve of the held-out predictions, AUC {auc:.3f}")


def precision_recall_figure(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> str:
    precision, recall, _ = precision_recall_curve(labels, probabilities)
    average_precision = average_precision_score(labels, probabilities)
    flagged = probabilities >= threshold
    prevalence = labels.mean()
    fig = new_figure(HALF_WIDTH_IN, 3.9)
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
    return embed_figure(
        fig,
        "precision_recall",
        f"Precision-recall curve of the held-out predictions, average precision {average_precision:.3f}",
    )


def calibration_figure(labels: np.ndarray, probabilities: np.ndarray) -> str:
    observed, predicted = calibration_curve(labels, probabilities, n_bins=10, strategy="quantile")
    brier = brier_score_loss(labels, probabilities)
    fig = new_figure(HALF_WIDTH_IN, 3.9)
    curve_ax, hist_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    curve_ax.plot([0, 1], [0, 1], ls="--", color=REFERENCE_COLOUR, lw=1, label="perfectly calibrated")
    curve_ax.plot(predicted, observed, "o-", color=MODEL_COLOUR, label=f"model (Brier = {brier:.3f})")
    curve_ax.set(xlim=(0, 1), ylim=(0, 1.01), ylabel="Observed churn rate", title="Calibration (10 quantile bins)")
    curve_ax.legend(loc="upper left", fontsize=9)
    curve_ax.grid(alpha=0.3)
    hist_ax.hist(probabilities, bins=20, range=(0, 1), color=MODEL_COLOUR, alpha=0.7)
    hist_ax.set(xlabel="Predicted churn probability", ylabel="Rows")
    return embed_figure(fig, "calibration", f"Reliability diagram of the held-out predictions, Brier score {brier:.3f}")


def confusion_matrix_figure(tn: int, fp: int, fn: int, tp: int, threshold: float) -> str:
    counts = np.array([[tn, fp], [fn, tp]])
    # Coloured by the share of each actual class (so the rare churners' row is as readable as the stayers').
    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros((2, 2)), where=row_totals > 0)
    fig = new_figure(HALF_WIDTH_IN, 3.9)
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
    return embed_figure(
        fig,
        "confusion_matrix",
        f"Confusion matrix at threshold {threshold:.2f}: {tn} true negatives, {fp} false positives, "
        f"{fn} false negatives, {tp} true positives",
    )


def threshold_value_figure(choice: ThresholdChoice) -> str:
    thresholds = np.array([point.threshold for point in choice.curve])
    values = np.array([point.net_value_usd for point in choice.curve])
    fig = new_figure(FULL_WIDTH_IN, 3.6)
    ax = fig.subplots()
    ax.plot(thresholds, values, color=MODEL_COLOUR, lw=2, label="net value")
    ax.axhline(0, color="black", lw=0.8)
    ax.axvline(
        choice.threshold,
        color=CHOSEN_COLOUR,
        lw=2,
        label=escape_mathtext(f"chosen {choice.threshold:.2f}: {format_usd(choice.net_value_usd)}"),
    )
    reference = min(choice.curve, key=lambda point: abs(point.threshold - 0.5))
    ax.axvline(
        0.5,
        color=REFERENCE_COLOUR,
        ls="--",
        lw=1.5,
        label=escape_mathtext(f"0.5 for reference: {format_usd(reference.net_value_usd)}"),
    )
    ax.plot([choice.threshold], [choice.net_value_usd], "o", color=CHOSEN_COLOUR)
    ax.plot([reference.threshold], [reference.net_value_usd], "o", color=REFERENCE_COLOUR)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: escape_mathtext(format_usd(value))))
    ax.set(
        xlim=(0, 1),
        xlabel="Decision threshold (offer when churn probability >= threshold)",
        ylabel="Net value",
        title=f"Net value of the retention campaign by decision threshold ({choice.rows:,} validation rows)",
    )
    ax.legend(loc="best", fontsize=9)
    ax.grid(alpha=0.3)
    return embed_figure(
        fig,
        "threshold_value",
        f"Net value against decision threshold; chosen threshold {choice.threshold:.2f} gives "
        f"{format_usd(choice.net_value_usd)}, 0.5 gives {format_usd(reference.net_value_usd)}",
    )


def global_importance_figure(importance: Sequence[tuple[str, float]], output_space: str) -> str:
    top = list(importance[:TOP_IMPORTANCE])
    names = [escape_mathtext(name) for name, _ in reversed(top)]  # barh draws bottom-up: largest last, i.e. on top
    values = [value for _, value in reversed(top)]
    fig = new_figure(FULL_WIDTH_IN, 0.32 * len(top) + 1.1)
    ax = fig.subplots()
    ax.barh(names, values, color=MODEL_COLOUR)
    ax.set(
        xlabel=f"Mean |SHAP contribution| ({escape_mathtext(output_space)})",
        title=f"Global importance: top {len(top)} of {len(importance)} features on the held-out rows",
    )
    ax.grid(axis="x", alpha=0.3)
    ax.margins(y=0.01)
    leader = ", ".join(name for name, _ in top[:3])
    return embed_figure(fig, "global_importance", f"Mean absolute SHAP contribution per feature; largest: {leader}")


def example_explanation_figure(example: Mapping[str, Any]) -> str:
    base_value = float(example.get("base_value") or 0.0)
    output_space = str(example.get("output_space", "model output"))
    contributions = sorted(example["contributions"], key=lambda item: -abs(float(item["contribution"])))
    shown, rest = contributions[:TOP_CONTRIBUTIONS], contributions[TOP_CONTRIBUTIONS:]
    rows = [
        (
            f"{escape_mathtext(item['feature'])} = {escape_mathtext(format_value(item.get('value')))}",
            float(item["contribution"]),
        )
        for item in shown
    ]
    if rest:
        rows.append((f"{len(rest)} other features", math.fsum(float(item["contribution"]) for item in rest)))
    output = base_value + math.fsum(value for _, value in rows)

    fig = new_figure(FULL_WIDTH_IN, 0.36 * len(rows) + 1.6)
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
    customer = escape_mathtext(str(example.get("customer_id", "?")))
    headline = f"Customer {customer}" + (f": churn probability {probability:.1%}" if probability is not None else "")
    ax.set(
        xlabel=f"Model output ({escape_mathtext(output_space)}); red raises churn risk, blue lowers it", title=headline
    )
    fig.legend(loc="outside lower center", ncols=2, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    raising = [str(item["feature"]) for item in shown if float(item["contribution"]) > 0][:3]
    return embed_figure(
        fig,
        "example_explanation",
        f"SHAP contributions for customer {customer} from base value {base_value:.3f} to {output:.3f} "
        f"({output_space}); red raises churn risk, blue lowers it; largest raising: {', '.join(raising) or 'none'}",
    )
