"""The pilot report: one self-contained HTML page that shows what a pilot run trained, deployed and measured.

`render_report(ReportInputs)` returns the page as a string: success criteria, held-out performance (ROC,
precision-recall, calibration, confusion matrix at the chosen threshold), the business-value curve the
threshold was read from, SHAP explanations, the A/B experiment, data drift, monitoring, smoke-test latency, the
model card and the lineage. Every chart is a matplotlib `Figure` (no pyplot, so no global figure registry and
no backend to select) saved as a PNG and embedded as a `data:` URL; the CSS (style.css) is inline and there is no
script, so the file opens offline and can be archived or attached as it is. Every piece of text is HTML-escaped.
A section whose input is missing (no experiment, no drift check, no monitoring) says "not run".
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from mlops.pilot.report.experiment_section import experiment_section
from mlops.pilot.report.formatting import escape_html
from mlops.pilot.report.inputs import ReportInputs
from mlops.pilot.report.markup import facts_list
from mlops.pilot.report.model_sections import (
    criteria_section,
    explainability_section,
    lineage_section,
    model_card_section,
    performance_section,
    threshold_section,
)
from mlops.pilot.report.monitoring_sections import drift_section, latency_section, monitoring_section

STYLESHEET = files(__package__).joinpath("style.css").read_text(encoding="utf-8").strip()


def render_report(inputs: ReportInputs) -> str:
    """The pilot report as one self-contained HTML document."""
    sections = [
        ("criteria", "Success criteria", criteria_section(inputs.criteria)),
        ("performance", "Held-out performance", performance_section(inputs)),
        ("threshold", "Decision threshold and business value", threshold_section(inputs)),
        ("explainability", "Explainability (SHAP)", explainability_section(inputs)),
        ("experiment", "A/B experiment", experiment_section(inputs.campaign)),
        ("drift", "Data drift", drift_section(inputs.drift)),
        ("monitoring", "Monitoring (logged outcomes)", monitoring_section(inputs.monitoring)),
        ("latency", "Smoke-test latency", latency_section(inputs.latencies_ms, inputs.latency_summary)),
        ("model-card", "Model card", model_card_section(inputs.model_card_markdown)),
        ("lineage", "Lineage", lineage_section(inputs.lineage)),
    ]
    verdict = "PASS" if inputs.criteria.all_passed else "FAIL"
    title = f"Pilot report: {inputs.model_name} {inputs.model_version} ({verdict})"
    body = "\n".join(
        f'<section id="{section_id}" data-section="{section_id}">\n'
        f"<h2>{escape_html(heading)}</h2>\n{content}\n</section>"
        for section_id, heading, content in sections
    )
    nav = "".join(f'<li><a href="#{section_id}">{escape_html(heading)}</a></li>' for section_id, heading, _ in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape_html(title)}</title>
<link rel="icon" href="data:,">
<style>
{STYLESHEET}
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


def _header(inputs: ReportInputs, verdict: str) -> str:
    failed = inputs.criteria.failed
    failed_html = f" <span>failed: {escape_html(', '.join(failed))}</span>" if failed else ""
    facts = [
        ("Model", inputs.model_name),
        ("Version", inputs.model_version),
        ("Execution", inputs.execution_name),
        ("Generated", inputs.generated_at.isoformat(timespec="seconds")),
    ]
    return (
        "<header>\n"
        f"<h1>Pilot report: {escape_html(inputs.model_name)}</h1>\n"
        f"{facts_list(facts)}\n"
        f'<p>Overall: <span class="badge {verdict.lower()}" id="verdict">{verdict}</span>{failed_html}</p>\n'
        "</header>"
    )
