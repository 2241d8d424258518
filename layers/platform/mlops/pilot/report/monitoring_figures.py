"""The pilot report's monitoring charts: feature drift (PSI per feature), score drift (training against recent
score bins) and the smoke test's latency histogram."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.ticker import PercentFormatter

from mlops.monitoring.drift import FeatureDrift
from mlops.pilot.payloads import LatencySummary
from mlops.pilot.report.figures import (
    FULL_WIDTH_IN,
    MODEL_COLOUR,
    RAISES_COLOUR,
    REFERENCE_COLOUR,
    embed_figure,
    escape_mathtext,
    new_figure,
)


def drift_psi_figure(features: Sequence[FeatureDrift], threshold: float) -> str:
    ranked = sorted(features, key=lambda item: item.psi)  # barh draws bottom-up: largest PSI on top
    fig = new_figure(FULL_WIDTH_IN, 0.3 * len(ranked) + 1.3)
    ax = fig.subplots()
    ax.barh(
        [escape_mathtext(item.feature) for item in ranked],
        [item.psi for item in ranked],
        color=[RAISES_COLOUR if item.drifted else MODEL_COLOUR for item in ranked],
    )
    ax.axvline(threshold, color="black", ls="--", lw=1.2, label=f"PSI threshold {threshold:g}")
    ax.set(xlabel="Population stability index (PSI)", title="Drift per feature (red: drifted)")
    ax.legend(loc="lower right", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.margins(y=0.01)
    drifted = [item.feature for item in features if item.drifted]
    return embed_figure(
        fig,
        "drift_psi",
        f"PSI per feature against the threshold {threshold:g}; drifted: {', '.join(drifted) or 'none'}",
    )


def score_drift_figure(score: FeatureDrift) -> str:
    positions = np.arange(len(score.bins))
    width = 0.4
    fig = new_figure(FULL_WIDTH_IN, 3.4)
    ax = fig.subplots()
    ax.bar(positions - width / 2, score.expected, width, color=REFERENCE_COLOUR, label="expected (training)")
    ax.bar(positions + width / 2, score.actual, width, color=MODEL_COLOUR, label="actual (recent)")
    many = len(score.bins) > 8
    ax.set_xticks(
        positions,
        [escape_mathtext(name) for name in score.bins],
        rotation=30 if many else 0,
        ha="right" if many else "center",
    )
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    verdict = "drifted" if score.drifted else "stable"
    ax.set(xlabel="Churn probability bin", ylabel="Share of rows", title=f"Score PSI {score.psi:.3f} ({verdict})")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return embed_figure(
        fig,
        "score_drift",
        f"Share of rows per churn probability bin, training against recent; score PSI {score.psi:.3f} ({verdict})",
    )


def latency_figure(latencies_ms: Sequence[float], summary: LatencySummary) -> str:
    fig = new_figure(FULL_WIDTH_IN, 3.3)
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
    return embed_figure(
        fig,
        "latency",
        f"Histogram of {len(latencies_ms)} smoke-test latencies; p50 {summary.p50:.1f} ms, "
        f"p95 {summary.p95:.1f} ms, p99 {summary.p99:.1f} ms",
    )
