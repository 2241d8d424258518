"""The batch-scoring state machine (Distributed Map over byte-range chunks) on the local stack: its output
equals `make score` on the same file with the same model, and the run's result holds both objects' SHA-256
(its audit record is read through GET /audit in test_audit_api.py)."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

import pytest

from helpers import TELECOM_CSV
from local_cloud.cli import cmd_score
from local_cloud.platform import LocalPlatform

pytestmark = pytest.mark.slow


def run_batch(platform: LocalPlatform, request: dict[str, Any]) -> Any:
    arn = platform.start_execution("BatchScoringStateMachine", request)
    return platform.wait_for_execution(arn, timeout_s=300)


def test_a_distributed_map_over_chunks_scores_the_file_exactly_as_make_score(
    platform: LocalPlatform, pilot: dict[str, Any], tmp_path: Path
) -> None:
    # Given the telecom file in the data bucket (where the pilot put it) and the deployed model
    s3, bucket = platform.client("s3"), platform.stack.physical_id("DataBucket")
    request = {"input_key": "datasets/telecom_churn.csv", "output_key": "batch-scores/out.csv", "chunk_bytes": 50_000}
    # When the batch-scoring state machine scores it in chunks of about 50 kB
    result = run_batch(platform, request)
    # Then it succeeds over several chunks, with the production version
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    plan = result.output["plan"]
    assert plan["chunks"] == (TELECOM_CSV.stat().st_size // 50_000) + 1
    assert plan["model_version"] == pilot["results"]["model_version"]
    assert result.output["result"]["rows"] == 4000
    # And its output is byte for byte what `make score` writes for the same file
    expected = tmp_path / "scores.csv"
    cmd_score(argparse.Namespace(model_dir=pilot["output_dir"] / "model", input=TELECOM_CSV, output=expected))
    produced = s3.get_object(Bucket=bucket, Key="batch-scores/out.csv")["Body"].read()
    assert produced == expected.read_bytes()
    # And the run's result (as its audit record) holds the SHA-256 of that output and of the input scored
    assert result.output["result"]["output_sha256"] == hashlib.sha256(produced).hexdigest()
    assert result.output["result"]["input_sha256"] == hashlib.sha256(TELECOM_CSV.read_bytes()).hexdigest()


def test_a_chunk_that_was_not_scored_fails_the_run(platform: LocalPlatform, pilot: dict[str, Any]) -> None:
    # Given an input that is not a CSV of customers (every chunk fails to score)
    s3, bucket = platform.client("s3"), platform.stack.physical_id("DataBucket")
    s3.put_object(Bucket=bucket, Key="datasets/broken.csv", Body=b"customer_id,foo\nC1,2\n" * 50)
    # When it is batch-scored, then the run fails rather than writing a partial output
    result = run_batch(
        platform, {"input_key": "datasets/broken.csv", "output_key": "batch-scores/broken.csv", "chunk_bytes": 1024}
    )
    assert result.status == "FAILED"
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key="batch-scores/broken.csv")
