"""The HTML building blocks of the pilot report's sections: fact lists, tables, cells and notes, all escaped."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mlops.pilot.report.formatting import escape_html, format_value


def facts_list(facts: Iterable[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{escape_html(label)}</dt><dd>{escape_html(value)}</dd>" for label, value in facts)
    return f'<dl class="facts">{items}</dl>'


def html_table(header: Sequence[str], rows: Iterable[str], *, css_class: str = "") -> str:
    head = "".join(f"<th>{escape_html(name)}</th>" for name in header)
    table = f'<table class="{css_class}">' if css_class else "<table>"
    return f'<div class="table-wrap">{table}<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def number_cell(value: object) -> str:
    return f'<td class="num">{escape_html(value)}</td>'


def key_value_table(values: Mapping[str, Any], header: tuple[str, str]) -> str:
    return html_table(
        header, [f"<tr><td>{escape_html(key)}</td>{_value_cell(value)}</tr>" for key, value in values.items()]
    )


def _value_cell(value: Any) -> str:
    if isinstance(value, Mapping | list | tuple):
        return f"<td><pre>{escape_html(json.dumps(value, indent=2, sort_keys=True, default=str))}</pre></td>"
    return f"<td>{escape_html(format_value(value))}</td>"


def figure_pair(left: str, right: str) -> str:
    """Two figures side by side."""
    return f'<div class="pair">{left}{right}</div>'


def not_run(reason: str) -> str:
    return f'<p class="not-run">not run: {escape_html(reason)}.</p>'


def note(text: str) -> str:
    return f'<p class="note">{escape_html(text)}</p>'
