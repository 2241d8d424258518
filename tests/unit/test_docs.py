"""The README and docs/ pages: a short front door, links that lead somewhere, and measured figures that are
quoted from bench/results.md rather than retyped.

A section whose heading starts with "From bench/results.md" quotes that file: each of its table rows and
block quotes must be a line of bench/results.md, verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"
DOC_PAGES = sorted(DOCS.glob("*.md"))
BENCH_RESULTS = PROJECT_ROOT / "bench" / "results.md"
MAKEFILE = PROJECT_ROOT / "Makefile"
README_MAX_LINES = 250
QUOTE_MARKER = "From bench/results.md"

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`[^`]*`")
MAKE_TARGET_USE = re.compile(r"\bmake ([a-z][a-z0-9-]*)")
MAKE_TARGET_RULE = re.compile(r"^([a-z][a-z0-9-]*)\s*:(?!=)", re.MULTILINE)


def _prose_lines(path: Path) -> list[str]:
    """The page's lines outside fenced code blocks (a `# comment` in a bash block is not a heading)."""
    lines, in_fence = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            lines.append(line)
    return lines


def _github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: its text, lowercased, punctuation removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """Every anchor of a page, with GitHub's -1, -2 suffixes for repeated headings."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in _prose_lines(path):
        match = HEADING.match(line)
        if not match:
            continue
        anchor = _github_anchor(match.group(2))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        anchors.add(anchor if count == 0 else f"{anchor}-{count}")
    return anchors


def _relative_links(path: Path) -> list[str]:
    links = []
    for line in _prose_lines(path):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target) and target not in links:  # http:, mailto:, ...
                links.append(target)
    return links


def _quoted_lines(path: Path) -> list[str]:
    """Table rows and block quotes in the sections whose heading starts with the quote marker."""
    quoted, quoting = [], False
    for line in _prose_lines(path):
        heading = HEADING.match(line)
        if heading:
            quoting = heading.group(2).startswith(QUOTE_MARKER)
        elif quoting and line.startswith("|"):
            quoted.append(line)
        elif quoting and line.startswith(">"):
            quoted.append(line.removeprefix(">").strip())
    return quoted


def test_the_readme_is_a_short_front_door() -> None:
    # Given the README
    lines = README.read_text().splitlines()

    # Then it stays short enough to read at once; the detail lives in docs/
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines, at most {README_MAX_LINES}"


@pytest.mark.parametrize("page", [README, *DOC_PAGES], ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_relative_link_leads_to_an_existing_file_and_heading(page: Path) -> None:
    # Given every relative link of the page (outside code blocks)
    links = _relative_links(page)

    # When each is resolved against the page's folder, anchors against the target's headings
    broken = []
    for link in links:
        path_part, _, anchor = link.partition("#")
        target = (page.parent / path_part).resolve() if path_part else page
        if not target.exists():
            broken.append(f"{link}: no file {target}")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {target.name}")

    # Then none is broken
    assert not broken, "\n".join(broken)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    # Given the files the README links to
    linked = {(README.parent / link.partition("#")[0]).resolve() for link in _relative_links(README)}

    # Then every docs page is among them
    unlinked = [page.name for page in DOC_PAGES if page.resolve() not in linked]
    assert DOC_PAGES, "docs/ has no pages"
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: p.name)
def test_quoted_benchmark_rows_are_verbatim_lines_of_bench_results(page: Path) -> None:
    # Given the lines of bench/results.md and the page's quoted rows
    results = set(BENCH_RESULTS.read_text().splitlines())
    quoted = _quoted_lines(page)

    # Then each quoted row is a line of bench/results.md, character for character (a figure is never retyped)
    retyped = [line for line in quoted if line not in results]
    assert not retyped, "not in bench/results.md:\n" + "\n".join(retyped)


def test_the_benchmarks_page_quotes_bench_results_and_has_no_other_table() -> None:
    # Given the benchmarks page
    page = DOCS / "benchmarks.md"
    table_rows = [line for line in _prose_lines(page) if line.startswith("|")]
    quoted = _quoted_lines(page)

    # Then it quotes bench/results.md, and every table row it has is in a quoted section
    assert any(line.startswith("|") for line in quoted), f"no '{QUOTE_MARKER}' table in {page.name}"
    unquoted = [line for line in table_rows if line not in quoted]
    assert not unquoted, "table rows outside a quoted section:\n" + "\n".join(unquoted)


def test_every_make_target_the_readme_names_exists() -> None:
    # Given the targets of the Makefile and every `make <target>` the README names
    targets = set(MAKE_TARGET_RULE.findall(MAKEFILE.read_text()))
    named = set(MAKE_TARGET_USE.findall(README.read_text()))

    # Then each named target is a rule of the Makefile
    assert targets, "no rules found in the Makefile"
    assert named, "the README names no make target"
    assert named <= targets, f"make targets the Makefile lacks: {sorted(named - targets)}"
