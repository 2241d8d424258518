"""Feature store benchmark: online lookup latency and ingestion throughput against the local store.

The local store is moto's DynamoDB and S3, in process, as `make pilot` and `make serve` use them. Measures:

* ingestion of the 4,000-customer telecom file through `mlops.feature_store.ingestion.ingest_file` (catalog,
  offline Parquet append, conditional newest-wins online writes), first into an empty store, then again
  (re-ingestion: nothing to write), in rows/s;
* single-customer lookups (`OnlineFeatureStore.get`, every feature), p50/p99;
* 100-id batch lookups (`batch_get`, one BatchGetItem), p50/p99 per call and per id.

Writes bench/feature_store.json. These are moto's figures: they measure the code path and moto's own cost
(about 3 ms per conditional put, GIL-bound), not DynamoDB's network latency.

    PYTHONPATH=layers/platform .venv/bin/python bench/feature_store.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

import boto3
from moto import mock_aws

from mlops.data.schema import DataSchema
from mlops.feature_store.ingestion import ingest_file
from mlops.feature_store.offline import OfflineFeatureStore
from mlops.feature_store.online import FeatureGroupCatalog, OnlineFeatureStore, feature_group_from_schema

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA = PROJECT_ROOT / "data" / "telecom_churn.csv"
SCHEMA = PROJECT_ROOT / "data" / "telecom_churn.schema.json"
OUTPUT = PROJECT_ROOT / "bench" / "feature_store.json"
SINGLE_READS = 1000
BATCH_READS = 200
WARMUP = 50


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
        "samples": len(ordered),
    }


def timed(call: object, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    os.environ.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"})
    schema = DataSchema.from_file(SCHEMA)
    group = feature_group_from_schema(schema)
    raw = DATA.read_bytes()
    as_of = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    with mock_aws():
        dynamodb, s3 = boto3.client("dynamodb"), boto3.client("s3")
        dynamodb.create_table(
            TableName="features",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
        s3.create_bucket(Bucket="offline")
        online = OnlineFeatureStore("features", dynamodb)
        offline = OfflineFeatureStore("offline", s3)
        catalog = FeatureGroupCatalog("features", dynamodb)

        first = ingest_file(raw, DATA.name, schema, group, as_of, online, offline, catalog, workers=1)
        again = ingest_file(raw, DATA.name, schema, group, as_of, online, offline, catalog, workers=1)

        ids = [line.split(",", 1)[0] for line in DATA.read_text().splitlines()[1:]]
        rng = random.Random(7)
        timed(lambda: online.get(group, rng.choice(ids)), WARMUP)
        single = timed(lambda: online.get(group, rng.choice(ids)), SINGLE_READS)
        batch = timed(lambda: online.batch_get(group, rng.sample(ids, 100)), BATCH_READS)

    results = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "store": "moto 5 in process (DynamoDB + S3), as make pilot / make serve use it",
        "data": f"{DATA.name}: {first.rows} customers, {len(group.features)} features",
        "ingestion": {
            "first_rows_per_second": round(first.rows / first.seconds, 1),
            "first_seconds": first.seconds,
            "first_written": first.written,
            "reingest_rows_per_second": round(again.rows / again.seconds, 1),
            "reingest_seconds": again.seconds,
            "reingest_written": again.written,
        },
        "lookup_single": percentiles(single),
        "lookup_batch_100": {
            **percentiles(batch),
            "per_id_p50_ms": round(statistics.median(batch) / 100, 4),
        },
    }
    OUTPUT.write_text(json.dumps(results, indent=2) + "\n")
    ingestion = results["ingestion"]
    print(f"Feature store on {results['store']} ({results['machine']})")
    print(
        f"  ingestion: {ingestion['first_rows_per_second']:,.0f} rows/s into an empty store "
        f"({first.rows} rows in {first.seconds:.2f} s); re-ingestion {ingestion['reingest_rows_per_second']:,.0f} "
        f"rows/s ({again.written} written)"
    )
    for name in ("lookup_single", "lookup_batch_100"):
        figures = results[name]
        print(f"  {name}: p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms ({figures['samples']} calls)")
    print(f"Wrote {OUTPUT.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()
