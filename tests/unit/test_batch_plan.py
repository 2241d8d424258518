"""Planning and joining of the batch-scoring state machine on moto S3: chunks end at row boundaries and cover
the file once; parts join in plan order, inside S3 when they are large; a missing part fails the run."""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from helpers import PROJECT_ROOT, load_template
from mlops.core.errors import DataValidationError
from mlops.serving.batch_plan import BatchPlan, BatchScoringRequest, join_parts, part_key, plan_chunks

BATCH_ASL = PROJECT_ROOT / "statemachines" / "batch_scoring.asl.json"


@pytest.fixture
def s3() -> Iterator[Any]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="data")
        yield client


def plan_for(s3: Any, body: bytes, chunk_bytes: int) -> BatchPlan:
    s3.put_object(Bucket="data", Key="in.csv", Body=body)
    request = BatchScoringRequest(input_key="in.csv", output_key="out.csv", chunk_bytes=chunk_bytes)
    return plan_chunks(s3, "data", request, "run-1", "v1", "work")


@pytest.mark.parametrize("trailing_newline", [True, False])
def test_chunks_end_at_rows_and_cover_the_file_once(s3: Any, trailing_newline: bool) -> None:
    # Given a CSV of rows of varying length
    rows = [f"C{i:05d},{'x' * (i % 37)}" for i in range(2000)]
    body = ("id,value\n" + "\n".join(rows) + ("\n" if trailing_newline else "")).encode()
    # When it is planned in chunks of about 1 kB
    plan = plan_for(s3, body, 1024)
    chunks = json.loads(s3.get_object(Bucket="data", Key=plan.manifest_key)["Body"].read())
    # Then the chunks are contiguous, each a whole number of rows, and together every row once
    assert plan.header == "id,value"
    assert plan.chunks == len(chunks) > 10
    assert chunks[0]["start_byte"] == len("id,value\n")
    assert all(a["end_byte"] + 1 == b["start_byte"] for a, b in itertools.pairwise(chunks))
    assert chunks[-1]["end_byte"] == len(body) - 1
    pieces = [body[c["start_byte"] : c["end_byte"] + 1] for c in chunks]
    assert all(piece.endswith(b"\n") for piece in pieces[:-1])
    assert b"".join(pieces).decode().split() == rows


def test_large_parts_are_joined_inside_s3_in_plan_order(s3: Any) -> None:
    # Given three scored parts of 5 MiB or more (only the first with the header)
    plan = plan_for(s3, b"id,value\n" + b"C1,1\n" * 10, 1024).model_copy(update={"chunks": 3})
    parts = [b"id,p\n" + b"a,1\n" * 1_400_000, b"b,2\n" * 1_400_000, b"c,3\n"]
    for index, part in enumerate(parts):
        rows = part.count(b"\n") - (index == 0)
        s3.put_object(Bucket="data", Key=part_key(plan, index), Body=part, Metadata={"rows": str(rows)})
    # When they are joined, then the output is their concatenation in order, copied by S3
    assert join_parts(s3, plan) == 2_800_001
    assert s3.get_object(Bucket="data", Key="out.csv")["Body"].read() == b"".join(parts)
    assert "PartsCount" in s3.head_object(Bucket="data", Key="out.csv", PartNumber=1)


def test_a_missing_part_fails_the_join(s3: Any) -> None:
    plan = plan_for(s3, b"id,value\n" + b"C1,1\n" * 1000, 1024)
    s3.put_object(Bucket="data", Key=part_key(plan, 0), Body=b"id,p\nC1,1\n", Metadata={"rows": "1"})
    with pytest.raises(DataValidationError, match=f"chunk 1 of {plan.chunks} was not scored"):
        join_parts(s3, plan)


def test_the_state_machine_is_a_distributed_map_over_the_plan_with_every_placeholder_substituted() -> None:
    text = BATCH_ASL.read_text()
    substitutions = load_template()["Resources"]["BatchScoringStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(substitutions)
    for name in substitutions:
        text = text.replace("${" + name + "}", "1" if name in {"RetryIntervalSeconds", "BatchConcurrency"} else "arn")
    states = json.loads(text)["States"]
    scoring = states["ScoreChunks"]
    assert scoring["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert scoring["ItemReader"]["Parameters"]["Key.$"] == "$.plan.manifest_key"
    assert scoring["ResultPath"] is None  # results stay in S3: the state payload cannot overflow
    assert [states[n]["Catch"][0]["Next"] for n in ("PlanChunks", "ScoreChunks", "JoinParts")] == ["BatchFailed"] * 3
