"""The pilot report in a real browser: headless Chromium (Debian's, driven by Playwright) opens the written HTML
file offline and every figure decodes, nothing errors and nothing is fetched. Without /usr/bin/chromium the test
is skipped (`make browser` installs it), except in CI, where it must run."""

from __future__ import annotations

from pathlib import Path

from browser import open_in_chromium

from mlops.pilot.report.render import write_report
from report_inputs import FIGURES, build_report_inputs


def test_every_figure_loads_in_chromium(chromium: Path, tmp_path: Path) -> None:
    # Given the pilot report written to a file
    inputs = build_report_inputs()
    report = write_report(inputs, tmp_path / "report.html")

    # When headless Chromium opens it from disk (and takes a full-page screenshot)
    screenshot = tmp_path / "report.png"
    page = open_in_chromium(report, screenshot=screenshot)

    # Then the page is the report, every figure decoded to a real image, and nothing failed or overflowed
    assert page["title"] == f"Pilot report: churn {inputs.model_version} (PASS)"
    assert [image["name"] for image in page["images"]] == list(FIGURES)
    for image in page["images"]:
        assert image["complete"], image["name"]
        assert image["naturalWidth"] > 0, image["name"]
        assert image["naturalHeight"] > 0, image["name"]
    assert page["console_errors"] == []
    assert page["page_errors"] == []
    assert page["failed_requests"] == []
    assert page["page_width"] <= page["viewport_width"]
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
