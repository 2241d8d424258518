"""The pilot report's A/B experiment section: the experiment's state and sample-ratio check, its chart and
comparison table, the campaign's outcome per variant and the projected annual impact."""

from __future__ import annotations

from collections.abc import Sequence

from mlops.experiments.models import MetricResult, VariantComparison
from mlops.pilot.payloads import CampaignReport
from mlops.pilot.report.experiment_figures import ab_results_figure
from mlops.pilot.report.formatting import (
    escape_html,
    format_interval,
    format_metric_value,
    format_p_value,
    format_percent,
    format_usd,
)
from mlops.pilot.report.markup import facts_list, html_table, not_run, note, number_cell


def experiment_section(campaign: CampaignReport | None) -> str:
    if campaign is None:
        return not_run("no A/B experiment was analysed")
    results = campaign.results
    ratio = results.sample_ratio
    confidence = 1 - results.alpha
    facts = [
        ("Experiment", results.experiment_id),
        ("Status", results.status.value),
        ("Units", f"{results.units:,} of {results.plan.total_units:,} planned ({results.plan_progress:.1%})"),
        (
            "Sample ratio check",
            f"{'MISMATCH' if ratio.mismatch else 'ok'} "
            f"(chi-square {ratio.chi_square:.3g}, p = {format_p_value(ratio.p_value)})",
        ),
        ("Significance level", f"alpha = {results.alpha:g}"),
    ]
    parts = [facts_list(facts)]
    if results.metrics:
        parts.append(ab_results_figure(results.metrics, confidence))
        parts.append(_comparison_table(results.metrics, confidence))
    else:
        parts.append(note("The experiment has no metric results yet."))

    parts.append("<h3>Campaign outcome per variant</h3>")
    parts.append(
        html_table(
            ("Variant", "Customers", "Offers", "Would churn", "Saved", "Churned", "Net value", "Net / customer"),
            [
                f"<tr><td>{escape_html(name)}</td>{number_cell(outcome.customers)}{number_cell(outcome.offers)}{number_cell(outcome.would_churn)}"
                f"{number_cell(outcome.saved)}{number_cell(outcome.churned)}{number_cell(format_usd(outcome.net_value_usd))}"
                f"{number_cell(format_usd(outcome.net_value_per_customer_usd, cents=True))}</tr>"
                for name, outcome in campaign.variants.items()
            ],
        )
    )
    impact = campaign.business_impact
    measured, truth, primary = impact.measured_by_experiment, impact.simulated_truth, impact.primary_effect
    primary_metric = next(m for m in results.metrics if m.metric == primary.metric)
    parts.append("<h3>Projected annual impact</h3>")
    parts.append(
        note(
            f"{campaign.customers:,} customers: {campaign.held_out_customers:,} held-out and "
            f"{campaign.simulated_customers:,} simulated ({campaign.generator}). The primary metric "
            f"({primary.metric}) moved by {format_metric_value(primary_metric, primary.difference, signed=True)}, "
            f"p = {format_p_value(primary.p_value)} (always-valid p = {format_p_value(primary.always_valid_p_value)}): "
            f"{'significant' if primary.significant_at_planned_size else 'not significant'} at alpha = "
            f"{primary.alpha:g} with {primary.units:,} of {primary.planned_units:,} planned units."
        )
    )
    parts.append(
        html_table(
            ("Estimate", "Value", f"{confidence:.0%} interval"),
            [
                _impact_row(
                    f"Measured by the experiment ({'CUPED' if measured.estimate == 'cuped' else 'unadjusted'}): "
                    "the criterion",
                    measured.projected_annual_impact_usd,
                    measured.projected_annual_impact_ci_usd,
                ),
                _impact_row(
                    "Measured by the experiment (unadjusted)",
                    measured.unadjusted_projected_annual_impact_usd,
                    measured.unadjusted_projected_annual_impact_ci_usd,
                ),
                _impact_row(
                    "Measured net value per customer",
                    measured.net_value_per_customer_usd,
                    measured.net_value_per_customer_ci_usd,
                    cents=True,
                ),
                _impact_row(
                    "Simulated ground truth (who was saved; a check of the estimate)",
                    truth.projected_annual_impact_usd,
                    truth.projected_annual_impact_ci_usd,
                ),
            ],
        )
    )
    assumptions = impact.assumptions
    parts.append(
        f'<p class="note">Method: {escape_html(impact.method.rstrip("."))}. '
        f"Assumptions: {assumptions.customer_base:,} customers, "
        f"{escape_html(format_usd(assumptions.annual_value_per_customer_usd))} a year per retained customer, "
        f"{escape_html(format_usd(assumptions.offer_cost_usd))} per offer, "
        f"{assumptions.offer_acceptance_rate:.0%} acceptance.</p>"
    )
    return "\n".join(parts)


def _comparison_table(metrics: Sequence[MetricResult], confidence: float) -> str:
    level = f"{confidence:.0%}"
    return html_table(
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
        return "<br>".join([escape_html(first), *(f"<small>{escape_html(note)}</small>" for note in notes)])

    def mean(variant: str) -> str:
        values = metric.variants.get(variant)
        return f"{variant}: {format_metric_value(metric, values.mean if values else None)}"

    cuped = comparison.cuped
    cuped_cell = (
        "n/a"
        if cuped is None or cuped.difference is None
        else lines(
            format_metric_value(metric, cuped.difference, signed=True),
            format_interval(metric, cuped.confidence_interval),
            f"p = {format_p_value(cuped.p_value)} ({cuped.covariate})",
        )
    )
    difference = lines(
        format_metric_value(metric, comparison.difference, signed=True),
        format_interval(metric, comparison.confidence_interval),
    )
    breached = ["guardrail breached"] if metric.guardrail_breached else []
    significant = '<td class="significant">yes</td>' if comparison.significant else "<td>no</td>"
    described = lines(metric.metric, f"{metric.role}, better: {metric.direction.value}", comparison.test, *breached)
    return (
        f"<tr><td>{described}</td>"
        f"<td>{escape_html(mean(comparison.control))}<br>{escape_html(mean(comparison.treatment))}</td>"
        f'<td class="num">{difference}</td>'
        f"{number_cell(format_percent(comparison.relative_lift, signed=True))}"
        f"{number_cell(format_p_value(comparison.p_value))}"
        f"{significant}"
        f'<td class="num">{cuped_cell}</td>'
        f"{number_cell(format_percent(comparison.probability_treatment_better))}</tr>"
    )


def _impact_row(label: str, value: float, interval: tuple[float | None, float | None], cents: bool = False) -> str:
    low, high = interval
    bounds = (
        f"[{format_usd(low, cents=cents)}, {format_usd(high, cents=cents)}]"
        if low is not None and high is not None
        else "n/a"
    )
    return f"<tr><td>{escape_html(label)}</td>{number_cell(format_usd(value, cents=cents))}{number_cell(bounds)}</tr>"
