"""Text for the pilot report: HTML escaping and how numbers, money, p-values and metric values read."""

from __future__ import annotations

import html
import math
import numbers

import numpy as np

from mlops.experiments.models import Interval, MetricKind, MetricResult


def escape_html(text: object) -> str:
    return html.escape(str(text), quote=True)


def format_value(value: object) -> str:
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


def format_usd(value: float | None, *, cents: bool = False) -> str:
    if value is None:
        return "n/a"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}" if cents else f"{sign}${abs(value):,.0f}"


def format_p_value(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def format_percent(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def format_metric_value(metric: MetricResult, value: float | None, *, signed: bool = False) -> str:
    """A rate as a percentage (difference in points), a `_usd` metric in dollars, anything else as a number."""
    if value is None:
        return "n/a"
    if metric.kind is MetricKind.CONVERSION:
        return f"{value * 100:+.2f} pp" if signed else f"{value:.2%}"
    if metric.metric.endswith("_usd"):
        return ("+" if signed and value >= 0 else "") + format_usd(value, cents=True)
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def format_interval(metric: MetricResult, interval: Interval) -> str:
    if interval.low is None or interval.high is None:
        return "[n/a]"
    if metric.kind is MetricKind.CONVERSION:  # the unit once: [-0.55, +8.41] pp
        return f"[{interval.low * 100:+.2f}, {interval.high * 100:+.2f}] pp"
    low = format_metric_value(metric, interval.low, signed=True)
    high = format_metric_value(metric, interval.high, signed=True)
    return f"[{low}, {high}]"


def format_difference_tick(metric: MetricResult, value: float) -> str:
    """An axis label of a difference: fewer digits than `format_metric_value`."""
    if metric.kind is MetricKind.CONVERSION:
        return f"{value * 100:+.3g} pp" if value else "0"
    if metric.metric.endswith("_usd"):
        return ("+" if value > 0 else "") + format_usd(value)
    return f"{value:+.3g}" if value else "0"
