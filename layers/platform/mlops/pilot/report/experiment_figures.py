"""The pilot report's A/B experiment chart: per metric, each variant's value and each treatment's difference from
its control with its intervals (fixed-sample, CUPED and sequential), coloured by whether it helps or hurts."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from mlops.experiments.models import Direction, Interval, MetricKind, MetricResult
from mlops.pilot.report.figures import (
    CHOSEN_COLOUR,
    FULL_WIDTH_IN,
    MODEL_COLOUR,
    RAISES_COLOUR,
    REFERENCE_COLOUR,
    embed_figure,
    escape_mathtext,
    new_figure,
)
from mlops.pilot.report.formatting import format_difference_tick, format_metric_value, format_usd


def ab_results_figure(metrics: Sequence[MetricResult], confidence: float) -> str:
    fig = new_figure(FULL_WIDTH_IN, 2.0 * len(metrics) + 0.5)
    axes = fig.subplots(len(metrics), 2, squeeze=False, width_ratios=[1, 1.5])
    for (variant_ax, difference_ax), metric in zip(axes, metrics, strict=True):
        _plot_variant_means(variant_ax, metric)
        _plot_differences(difference_ax, metric, confidence)
    names = ", ".join(metric.metric for metric in metrics)
    return embed_figure(
        fig,
        "ab_results",
        f"Per-variant values and treatment minus control differences with {confidence:.0%} intervals for {names}",
    )


def _plot_variant_means(ax: Axes, metric: MetricResult) -> None:
    names = list(metric.variants)
    means = [metric.variants[name].mean or 0.0 for name in names]
    controls = {comparison.control for comparison in metric.comparisons}
    colours = [REFERENCE_COLOUR if name in controls else MODEL_COLOUR for name in names]
    bars = ax.barh([escape_mathtext(name) for name in names], means, color=colours)
    rate = metric.kind is MetricKind.CONVERSION
    ax.bar_label(
        bars, labels=[escape_mathtext(format_metric_value(metric, mean)) for mean in means], padding=3, fontsize=8
    )
    ax.invert_yaxis()
    ax.margins(x=0.25)
    if rate:
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    elif metric.metric.endswith("_usd"):
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: escape_mathtext(format_usd(value))))
    label = "rate" if rate else "mean per unit"
    ax.set_title(f"{escape_mathtext(metric.metric)} ({metric.role}): {label}", fontsize=10)
    ax.tick_params(labelsize=8)


def _plot_differences(ax: Axes, metric: MetricResult, confidence: float) -> None:
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
    ax.set_yticks(range(len(rows)), [escape_mathtext(label) for label, *_ in rows], fontsize=7)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: escape_mathtext(format_difference_tick(metric, value))))
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
