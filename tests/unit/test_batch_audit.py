"""The batch-scoring run's audit record, left by its join step on moto (S3 with versions, the audit table): one
record with the SHA-256 of the input the plan pinned and of the joined output, the rows and the model version;
when the record cannot be written, the output is withdrawn and the run fails."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from audit_helpers import TABLE, FailingPuts, TickingClock, mocked_audit_aws, no_sleep
from mlops.audit.queries import query_audit
from mlops.audit.trail import AuditTrail
from mlops.core.errors import AuditUnavailableError
from mlops.serving.batch_plan import BatchPlan, BatchScoringRequest, join_and_audit, part_key, plan_chunks

DATA = "data-bucket"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:BatchScoringStateMachine-x:run-1"
INPUT = b"id,value\n" + b"".join(f"C{i:05d},{i % 7}\n".encode() for i in range(300))


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mocked_audit_aws() as clients:
        s3 = clients["s3"]
        s3.create_bucket(Bucket=DATA)
        s3.put_bucket_versioning(Bucket=DATA, VersioningConfiguration={"Status": "Enabled"})
        yield clients


def scored_plan(s3: Any) -> tuple[BatchPlan, bytes]:
    """The input planned in chunks of about 1 kB, and each chunk's part written as ScoreChunk writes it."""
    s3.put_object(Bucket=DATA, Key="in.csv", Body=INPUT)
    request = BatchScoringRequest(input_key="in.csv", output_key="out.csv", chunk_bytes=1024)
    plan = plan_chunks(s3, DATA, request, "run-1", "v7", "work")
    rows = INPUT.decode().splitlines()[1:]
    per_part = -(-len(rows) // plan.chunks)
    parts = []
    for index in range(plan.chunks):
        chunk = rows[index * per_part : (index + 1) * per_part]
        body = ("id,churn_probability\n" if index == 0 else "") + "".join(f"{r.split(',')[0]},0.5\n" for r in chunk)
        s3.put_object(Bucket=DATA, Key=part_key(plan, index), Body=body.encode(), Metadata={"rows": str(len(chunk))})
        parts.append(body.encode())
    return plan, b"".join(parts)


def batch_records(dynamodb: Any) -> list[dict[str, Any]]:
    page = query_audit(TABLE, dynamodb, entity="batch:run-1", sleep=no_sleep)
    return [record.model_dump(mode="json") for record in page.records]


def test_a_joined_run_leaves_one_record_with_both_hashes_the_rows_and_the_model_version(
    aws: dict[str, Any],
) -> None:
    # Given a planned and scored run, whose input key is overwritten after planning
    s3, dynamodb = aws["s3"], aws["dynamodb"]
    plan, joined = scored_plan(s3)
    assert plan.input_version_id is not None
    s3.put_object(Bucket=DATA, Key="in.csv", Body=b"id,value\nsomething else\n")
    trail = AuditTrail(TABLE, dynamodb, chain="batch-scoring-test", clock=TickingClock(), sleep=no_sleep)

    # When the join step runs
    result = join_and_audit(s3, plan, trail, actor=EXECUTION)

    # Then the output is the parts joined, and the run has exactly one audit record
    output = s3.get_object(Bucket=DATA, Key="out.csv")
    assert output["Body"].read() == joined
    (record,) = batch_records(dynamodb)
    event = record["event"]
    assert (event["event_type"], event["entity"], event["actor"]) == ("batch_scoring", "batch:run-1", EXECUTION)
    # And it names the planned input version and the stored output with their SHA-256, the rows and the version
    details = event["details"]
    assert details["input"] == {
        "bucket": DATA,
        "key": "in.csv",
        "version_id": plan.input_version_id,
        "sha256": hashlib.sha256(INPUT).hexdigest(),
    }
    assert details["output"] == {
        "bucket": DATA,
        "key": "out.csv",
        "version_id": output["VersionId"],
        "sha256": hashlib.sha256(joined).hexdigest(),
    }
    assert (details["rows"], details["model_version"], details["run_id"]) == (300, "v7", "run-1")
    # And the step's result says the same
    assert result.model_dump() == {
        "rows": 300,
        "output_key": "out.csv",
        "model_version": "v7",
        "input_sha256": details["input"]["sha256"],
        "output_sha256": details["output"]["sha256"],
    }


def test_no_output_is_left_without_its_audit_record(aws: dict[str, Any]) -> None:
    # Given a scored run, and an audit table that throttles every record write past the trail's retries
    s3, dynamodb = aws["s3"], aws["dynamodb"]
    plan, _ = scored_plan(s3)
    failing = FailingPuts(dynamodb, lambda _: "throttle")
    trail = AuditTrail(TABLE, failing, chain="batch-scoring-test", clock=TickingClock(), sleep=no_sleep)

    # When the join step runs, then it fails (and with it the run)
    with pytest.raises(AuditUnavailableError):
        join_and_audit(s3, plan, trail, actor=EXECUTION)

    # And the joined output is withdrawn: nothing is served at the output key, and nothing was recorded
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=DATA, Key="out.csv")
    assert batch_records(dynamodb) == []
