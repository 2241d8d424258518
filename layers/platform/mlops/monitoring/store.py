"""The S3 store under inference capture and outcomes: JSON-lines objects in one bucket, read back by key prefix,
under prefixes partitioned by day or hour (`hours_between`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from typing import Any


def hours_between(since: dt.datetime, until: dt.datetime) -> Iterator[dt.datetime]:
    """Every whole hour from the one `since` falls in up to `until`."""
    hour = since.replace(minute=0, second=0, microsecond=0)
    while hour <= until:
        yield hour
        hour += dt.timedelta(hours=1)


class JsonLinesStore:
    """JSON-lines objects in one bucket, read back by key prefix."""

    def __init__(self, bucket: str, s3_client: Any) -> None:
        self.bucket = bucket
        self.s3 = s3_client

    def put_lines(self, key: str, rows: Sequence[dict[str, Any]]) -> None:
        body = "\n".join(json.dumps(row, separators=(",", ":")) for row in rows).encode()
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/x-ndjson")

    def read_lines(self, prefix: str) -> Iterator[dict[str, Any]]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                body = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                yield from (json.loads(line) for line in body.splitlines() if line.strip())
