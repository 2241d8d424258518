"""The pilot report's sections about the deployed model: data drift, monitoring of logged outcomes and the
smoke test's latency."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlops.monitoring.drift import DriftReport
from mlops.pilot.payloads import LatencySummary
from mlops.pilot.report.formatting import escape_html, format_p_value, format_value
from mlops.pilot.report.markup import facts_list, html_table, key_value_table, not_run, note, number_cell
from mlops.pilot.report.monitoring_figures import drift_psi_figure, latency_figure, score_drift_figure


def drift_section(drift: DriftReport | None) -> str:
    if drift is None:
        return not_run("no drift check was run")
    thresholds = drift.thresholds
    facts = [
        ("Recent rows", f"{drift.rows:,}"),
        ("Enough data for a verdict", "yes" if drift.sufficient_data else f"no (fewer than {thresholds.min_rows:,})"),
        ("Drift detected", "yes" if drift.drift_detected else "no"),
        ("Drifted features", ", ".join(drift.drifted_features) or "none"),
        ("Max feature PSI", f"{drift.max_feature_psi:.3f} (threshold {thresholds.psi:g})"),
        ("Score PSI", "n/a" if drift.score_psi is None else f"{drift.score_psi:.3f}"),
    ]
    parts = [facts_list(facts)]
    if drift.features:
        parts.append(drift_psi_figure(drift.features, thresholds.psi))
        parts.append(
            html_table(
                ("Feature", "Kind", "Test", "PSI", "Chi-square", "p-value", "Drifted"),
                [
                    f"<tr><td>{escape_html(item.feature)}</td><td>{escape_html(item.kind)}</td><td>{escape_html(item.test)}</td>"
                    f"{number_cell(f'{item.psi:.4f}')}{number_cell(format_value(item.chi_square))}{number_cell(format_p_value(item.p_value))}"
                    f'<td class="{"yes" if item.drifted else "no"}">{"yes" if item.drifted else "no"}</td></tr>'
                    for item in drift.features
                ],
            )
        )
        parts.append(
            note(
                f"Numeric features drift when PSI > {thresholds.psi:g}; categorical ones when the chi-square "
                f"p-value < {thresholds.chi_square_p_value:g}."
            )
        )
    else:
        parts.append(note("No feature was compared."))
    parts.append("<h3>Score drift</h3>")
    if drift.score is not None and drift.score.bins:
        parts.append(score_drift_figure(drift.score))
    else:
        parts.append(not_run("score drift was not computed"))
    return "\n".join(parts)


def monitoring_section(monitoring: Mapping[str, Any] | None) -> str:
    if monitoring is None:
        return not_run("no logged outcomes were matched to predictions")
    return key_value_table(monitoring, ("Measure", "Value"))


def latency_section(latencies_ms: Sequence[float], summary: LatencySummary) -> str:
    table = html_table(
        ("Calls", "p50", "p95", "p99", "Mean", "Max"),
        [
            f"<tr>{number_cell(f'{len(latencies_ms):,}')}"
            + "".join(
                number_cell(f"{value:.1f} ms")
                for value in (summary.p50, summary.p95, summary.p99, summary.mean, summary.max)
            )
            + "</tr>"
        ],
    )
    if not latencies_ms:
        return table + "\n" + note("No per-call latencies were recorded.")
    return table + "\n" + latency_figure(latencies_ms, summary)
