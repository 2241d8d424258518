"""Scan what the functions logged (CloudWatch's view: one JSON document a line) for a data set's customer data.

Three kinds of leak are looked for: a customer id of the data set anywhere in the text; a log field named
after a column of the data set or after a request payload (`features`, `records`, `body`...), which is how an
event or a feature vector gets logged; and three or more of one customer's decimal feature values in the same
log record, which is how a row gets logged under other names.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAYLOAD_KEYS = frozenset({"features", "records", "body", "headers", "multiValueHeaders", "queryStringParameters"})
_TOKEN = re.compile(r"[A-Za-z0-9_.:@-]+")
_ROW_VALUES_IN_ONE_RECORD = 3


@dataclass
class LogScan:
    records: int = 0
    findings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CustomerData:
    ids: frozenset[str]
    columns: frozenset[str]
    rows_by_decimal: dict[str, frozenset[int]]  # "265.1" -> the rows that hold it

    @classmethod
    def read(cls, csv_path: Path, schema_path: Path) -> CustomerData:
        schema = json.loads(schema_path.read_text())
        with csv_path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        rows_by_decimal: dict[str, set[int]] = {}
        for index, row in enumerate(rows):
            for column in schema["numerical"]:
                if "." in (value := row[column]) and value.strip():
                    rows_by_decimal.setdefault(str(float(value)), set()).add(index)
        columns = {schema["id_column"], schema["target"], *schema["numerical"], *schema["categorical"]}
        return cls(
            ids=frozenset(row[schema["id_column"]] for row in rows),
            columns=frozenset(columns),
            rows_by_decimal={value: frozenset(found) for value, found in rows_by_decimal.items()},
        )


def scan_logs(text: str, customers: CustomerData) -> LogScan:
    scan = LogScan()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        leaked_ids = sorted(set(_TOKEN.findall(line)) & customers.ids)
        if leaked_ids:
            scan.findings.append(f"line {number}: customer ids {leaked_ids[:3]}")
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            scan.findings.append(f"line {number}: not a JSON log record: {line[:80]!r}")
            continue
        scan.records += 1
        keys, decimals = _leaves(record)
        if named := sorted(keys & (customers.columns | PAYLOAD_KEYS)):
            scan.findings.append(f"line {number}: fields named after customer data {named}")
        row_hits = Counter(row for value in decimals for row in customers.rows_by_decimal.get(value, ()))
        if row_hits and max(row_hits.values()) >= _ROW_VALUES_IN_ONE_RECORD:
            row, hits = row_hits.most_common(1)[0]
            scan.findings.append(f"line {number}: {hits} feature values of data set row {row}")
    return scan


def _leaves(value: Any) -> tuple[set[str], set[str]]:
    """The keys of every nested object, and every decimal number (as str(float)), of a JSON document."""
    keys: set[str] = set()
    decimals: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            keys.update(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) or (isinstance(item, str) and re.fullmatch(r"-?\d+\.\d+", item)):
            decimals.add(str(float(item)))
    return keys, decimals
