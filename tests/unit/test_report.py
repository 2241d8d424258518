"""The pilot report (mlops.pilot.report.render): one self-contained HTML page with every section and one embedded
PNG per figure, nothing loaded from the network, "not run" for the parts a pilot skipped, and every text escaped.
The inputs (tests/report_inputs.py) come from a small model on the telecom data and the recorded pilot state."""

from __future__ import annotations

import base64
import copy
import re
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlops.monitoring.drift import DriftReport
from mlops.pilot.payloads import CriteriaReport, Criterion
from mlops.pilot.report.inputs import ReportInputs
from mlops.pilot.report.render import render_report, write_report
from report_inputs import FIGURES, SECTIONS, build_report_inputs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DATA_URL_PREFIX = "data:image/png;base64,"
MIN_PNG_BYTES = 5_000
HOSTILE = '<script>alert("x")</script>'
ESCAPED_HOSTILE = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"


class _Tags(HTMLParser):
    """Every start tag with its attributes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(document: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(document)
    parser.close()
    return parser.tags


def _images(document: str) -> list[dict[str, str | None]]:
    return [attrs for tag, attrs in _tags(document) if tag == "img"]


def _sections(document: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="([^"]+)"[^>]*>(.*?)</section>', document, flags=re.DOTALL))


@pytest.fixture(scope="module")
def inputs() -> ReportInputs:
    return build_report_inputs()


@pytest.fixture(scope="module")
def report_path(inputs: ReportInputs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # write_report into a directory that does not exist yet: the other tests read what it wrote
    return write_report(inputs, tmp_path_factory.mktemp("report") / "out" / "report.html")


@pytest.fixture(scope="module")
def report(report_path: Path) -> str:
    return report_path.read_text(encoding="utf-8")


def test_report_has_every_section_and_one_image_per_figure(report: str) -> None:
    # Given realistic inputs with every part of the pilot present (rendered by the fixture)
    # When the sections and the images of the page are read
    sections = _sections(report)
    images = _images(report)

    # Then every section is there, in order, and each figure is one <img> with a name and a meaningful alt
    assert tuple(sections) == SECTIONS
    assert tuple(image["data-figure"] for image in images) == FIGURES
    for image in images:
        assert len(image["alt"] or "") > 20, image["data-figure"]
    assert report.count("<figure ") == len(FIGURES)
    assert "not run" not in report


def test_every_figure_is_a_valid_png(report: str) -> None:
    # Given the rendered report
    # When each image's data URL is decoded
    for image in _images(report):
        source = image["src"] or ""
        assert source.startswith(DATA_URL_PREFIX), image["data-figure"]
        png = base64.b64decode(source.removeprefix(DATA_URL_PREFIX), validate=True)

        # Then it is a PNG of a real chart, at least as large as the size the page shows it at
        assert png.startswith(PNG_SIGNATURE), image["data-figure"]
        assert len(png) > MIN_PNG_BYTES, image["data-figure"]
        width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk follows the signature
        assert width >= int(image["width"] or 0) >= 400
        assert height >= int(image["height"] or 0) >= 250


def test_nothing_is_loaded_from_the_network(report: str) -> None:
    # Given the rendered report
    # When every src and href is read
    references = [
        value for _, attrs in _tags(report) for name, value in attrs.items() if name in {"src", "href"} and value
    ]

    # Then all are data: URLs or in-page anchors, the CSS imports nothing and there is no script
    assert references
    assert all(value.startswith(("data:", "#")) for value in references), references
    assert not re.search(r"https?://", report)
    assert "url(" not in report
    assert "@import" not in report
    assert "<script" not in report.lower()


def test_header_shows_the_run_and_the_overall_verdict(inputs: ReportInputs, report: str) -> None:
    # Given inputs whose criteria all passed (rendered by the fixture)
    # Then the title and the header name the model, its version and the execution, with a PASS badge
    assert f"<title>Pilot report: churn {inputs.model_version} (PASS)</title>" in report
    assert inputs.execution_name in report
    assert '<span class="badge pass" id="verdict">PASS</span>' in report
    assert report.count('<tr class="pass">') == len(inputs.criteria.criteria)


def test_a_failed_criterion_makes_the_report_fail(inputs: ReportInputs) -> None:
    # Given the same run with a latency criterion that failed
    criteria = dict(inputs.criteria.criteria)
    criteria["latency_p95_ms"] = Criterion(value=120.0, target=80.0, comparison="<=", passed=False)
    failing = inputs.model_copy(
        update={"criteria": CriteriaReport(all_passed=False, criteria=criteria, failed=["latency_p95_ms"])}
    )

    # When it is rendered
    report = render_report(failing)

    # Then the verdict is FAIL, names the failed criterion, and only its row is coloured as failed
    assert '<span class="badge fail" id="verdict">FAIL</span> <span>failed: latency_p95_ms</span>' in report
    assert "(FAIL)</title>" in report
    assert report.count('<tr class="fail">') == 1
    assert re.search(r'<tr class="fail"><td>latency_p95_ms</td>.*?<td class="result">FAIL</td>', report)


def test_parts_the_pilot_did_not_run_say_not_run(inputs: ReportInputs) -> None:
    # Given a run without an experiment, a drift check or monitoring
    skipped = inputs.model_copy(update={"campaign": None, "drift": None, "monitoring": None})

    # When it is rendered
    report = render_report(skipped)
    sections = _sections(report)

    # Then those sections say "not run", have no figure, and the rest of the report is unchanged
    assert tuple(sections) == SECTIONS
    for name in ("experiment", "drift", "monitoring"):
        assert "not run" in sections[name], name
        assert "<img" not in sections[name], name
    expected = tuple(name for name in FIGURES if name not in {"ab_results", "drift_psi", "score_drift"})
    assert tuple(image["data-figure"] for image in _images(report)) == expected
    assert "not run" not in sections["criteria"] + sections["performance"] + sections["latency"]


def test_a_drift_check_without_score_drift_says_so(inputs: ReportInputs) -> None:
    # Given a drift report whose score was not compared
    assert inputs.drift is not None
    drift = inputs.drift.model_copy(update={"score": None, "score_psi": None})

    # When the report is rendered
    report = render_report(inputs.model_copy(update={"drift": drift}))

    # Then the features are still charted and score drift is "not run"
    section = _sections(report)["drift"]
    assert 'data-figure="drift_psi"' in section
    assert 'data-figure="score_drift"' not in section
    assert "not run: score drift was not computed" in section


def test_every_text_is_escaped(inputs: ReportInputs) -> None:
    # Given a feature, a lineage value and a model card that contain markup
    explainability = copy.deepcopy(inputs.explainability)
    explainability["global_importance"][0]["feature"] = HOSTILE
    example = copy.deepcopy(inputs.example_explanation)
    example["contributions"][0].update(feature=HOSTILE, value=HOSTILE)
    assert inputs.drift is not None
    drift_features = [inputs.drift.features[0].model_copy(update={"feature": HOSTILE}), *inputs.drift.features[1:]]
    hostile = inputs.model_copy(
        update={
            "model_name": HOSTILE,
            "explainability": explainability,
            "example_explanation": example,
            "drift": DriftReport.model_validate(
                {**inputs.drift.model_dump(), "features": [item.model_dump() for item in drift_features]}
            ),
            "lineage": {**inputs.lineage, HOSTILE: {"nested": HOSTILE}},
            "monitoring": {HOSTILE: 1},
            "model_card_markdown": f"# Card\n{HOSTILE} & <b>bold</b>\n",
        }
    )

    # When it is rendered
    report = render_report(hostile)

    # Then no markup got through: it shows as text, in every place it was given
    assert "<script" not in report.lower()
    assert "<b>" not in report
    assert "&lt;b&gt;bold&lt;/b&gt;" in report
    assert report.count(ESCAPED_HOSTILE) >= 5
    assert all(image["data-figure"] for image in _images(report))


def test_write_report_writes_one_utf8_document(report_path: Path, report: str) -> None:
    # Given the report the fixture wrote with write_report into a new directory
    # Then the file is there, UTF-8, one complete HTML document
    assert report_path.name == "report.html"
    assert report_path.parent.name == "out"
    assert report.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert '<meta charset="utf-8">' in report
    assert report.rstrip().endswith("</html>")
    assert report.count("<html") == report.count("<body") == 1


def test_labels_and_probabilities_must_match(inputs: ReportInputs) -> None:
    # Given held-out labels and probabilities of different lengths, or labels that are not 0/1
    data = inputs.model_dump()

    # Then the inputs are refused
    with pytest.raises(ValidationError, match="same length"):
        ReportInputs.model_validate({**data, "test_probabilities": data["test_probabilities"][:-1]})
    with pytest.raises(ValidationError, match="0 or 1"):
        ReportInputs.model_validate({**data, "test_labels": [2, *data["test_labels"][1:]]})
