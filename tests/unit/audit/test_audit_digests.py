"""Digests of audit chains in S3 on moto: chained, written once, refused for a broken chain, and what they catch."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from audit_helpers import (
    BUCKET,
    TABLE,
    FailingHeadUpdates,
    attacker_hash,
    event,
    key,
    no_sleep,
    set_head,
    stored_document,
    write_document,
)
from mlops.audit.digests import write_digests
from mlops.audit.trail import AuditTrail
from mlops.core.errors import AuditIntegrityError, InvalidRequestError


# ---------------------------------------------------------------------- digests
def test_digests_are_chained_and_written_once_per_head(aws: dict[str, Any], trail: AuditTrail) -> None:
    s3 = aws["s3"]
    # Given five records and a first digest
    trail.append_many([event(i) for i in range(5)])
    first = trail.write_digest(s3, BUCKET)
    assert first.key == "audit-digests/main/000000000005.json"
    assert (first.digest.first_sequence, first.digest.last_sequence, first.digest.records_since_previous) == (1, 5, 5)
    assert first.digest.previous_digest_key is None
    assert first.digest.head_hash == trail.head()[1]
    # When nothing was appended, writing again returns the same digest
    assert trail.write_digest(s3, BUCKET) == first
    # When three more records are appended and a second digest written
    trail.append_many([event(i) for i in range(5, 8)])
    second = trail.write_digest(s3, BUCKET)
    # Then it continues the first: sequences, key and the SHA-256 of the first digest's bytes
    first_body = s3.get_object(Bucket=BUCKET, Key=first.key)["Body"].read()
    assert second.digest.previous_digest_key == first.key
    assert second.digest.previous_digest_sha256 == hashlib.sha256(first_body).hexdigest() == first.sha256
    assert (second.digest.first_sequence, second.digest.last_sequence) == (6, 8)
    assert second.digest.records_since_previous == 3
    assert json.loads(s3.get_object(Bucket=BUCKET, Key=second.key)["Body"].read()) == second.digest.model_dump()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="audit-digests/")["Contents"]]
    assert keys == [first.key, second.key]
    verification = trail.verify(digest_s3_client=s3, bucket=BUCKET)
    assert verification.valid
    assert verification.digests_checked == 2


def test_a_consistent_tail_rewrite_is_caught_against_the_digest(aws: dict[str, Any], trail: AuditTrail) -> None:
    dynamodb, s3 = aws["dynamodb"], aws["s3"]
    # Given digests at 5 and 8
    trail.append_many([event(i) for i in range(5)])
    trail.write_digest(s3, BUCKET)
    trail.append_many([event(i) for i in range(5, 8)])
    trail.write_digest(s3, BUCKET)
    # When records 7 and 8 are rewritten consistently: hashes recomputed, links and head updated
    previous_hash = stored_document(dynamodb, 6)["record_hash"]
    for sequence in (7, 8):
        document = stored_document(dynamodb, sequence)
        document["event"]["actor"] = "user:mallory"
        document["previous_hash"] = previous_hash
        document["record_hash"] = previous_hash = attacker_hash(document)
        write_document(dynamodb, sequence, document)
    set_head(dynamodb, 8, previous_hash)
    # Then records and head agree, but record 7 is not what the writer sealed with its event's marker
    alone = trail.verify().first_broken
    assert alone is not None
    assert (alone.sequence, alone.reason) == (7, "modified")
    assert "the record was rewritten" in alone.detail
    # And against the digests, the rewrite shows between the digested records 6 and 8
    broken = trail.verify(digest_s3_client=s3, bucket=BUCKET).first_broken
    assert broken is not None
    assert (broken.sequence, broken.reason) == (8, "modified")
    assert "between records 6 and 8" in broken.detail
    # And no new digest will vouch for the rewritten tail, even once more records follow it
    AuditTrail(TABLE, dynamodb).append(event(8))
    with pytest.raises(AuditIntegrityError, match="record 8 differs from digest"):
        trail.write_digest(s3, BUCKET)


def test_a_truncation_behind_the_digest_is_missing(aws: dict[str, Any], trail: AuditTrail) -> None:
    dynamodb, s3 = aws["dynamodb"], aws["s3"]
    # Given a digest at 5, then the last two records deleted and the head moved back consistently
    records = trail.append_many([event(i) for i in range(5)])
    trail.write_digest(s3, BUCKET)
    for sequence in (4, 5):
        dynamodb.delete_item(TableName=TABLE, Key=key(sequence))
    set_head(dynamodb, 3, records[2].record_hash)
    # Then the digest shows records 4 and 5 gone
    assert trail.verify().valid
    broken = trail.verify(digest_s3_client=s3, bucket=BUCKET).first_broken
    assert broken is not None
    assert (broken.sequence, broken.reason) == (4, "missing")
    with pytest.raises(AuditIntegrityError, match="record 5, attested by digest"):
        trail.write_digest(s3, BUCKET)


def test_a_truncation_after_a_failed_head_update_is_only_caught_by_the_next_digest(
    aws: dict[str, Any], trail: AuditTrail
) -> None:
    dynamodb, s3 = aws["dynamodb"], aws["s3"]
    # Given three records (head at 3), then a fourth whose head update failed
    trail.append_many([event(i) for i in range(3)])
    AuditTrail(TABLE, FailingHeadUpdates(dynamodb), sleep=no_sleep).append(event(3))
    assert trail.verify().head_sequence == 3
    # And a digest written after it: digests attest the records, not the head
    digest = trail.write_digest(s3, BUCKET)
    assert digest.digest.last_sequence == 4
    # When record 4 is deleted
    dynamodb.delete_item(TableName=TABLE, Key=key(4))
    # Then the chain and its lagging head alone look intact, but the digest shows record 4 missing
    assert trail.verify().valid
    broken = trail.verify(digest_s3_client=s3, bucket=BUCKET).first_broken
    assert broken is not None
    assert (broken.sequence, broken.reason) == (4, "missing")


def test_an_altered_or_removed_digest_breaks_the_digest_chain(aws: dict[str, Any], trail: AuditTrail) -> None:
    s3 = aws["s3"]
    trail.append_many([event(i) for i in range(5)])
    first = trail.write_digest(s3, BUCKET)
    trail.append_many([event(i) for i in range(5, 8)])
    trail.write_digest(s3, BUCKET)
    # When the first digest is rewritten (still valid JSON, same attested head)
    altered = first.digest.model_copy(update={"created_at": "2020-01-01T00:00:00.000Z"})
    s3.put_object(Bucket=BUCKET, Key=first.key, Body=altered.model_dump_json().encode())
    # Then the second digest no longer matches it
    broken = trail.verify(digest_s3_client=s3, bucket=BUCKET).first_broken
    assert broken is not None
    assert (broken.sequence, broken.reason) == (8, "digest_mismatch")
    # And when the first digest is removed altogether, the second names a digest that is not there
    s3.delete_object(Bucket=BUCKET, Key=first.key)
    broken = trail.verify(digest_s3_client=s3, bucket=BUCKET).first_broken
    assert broken is not None
    assert broken.reason == "digest_mismatch"


def test_no_digest_is_written_for_a_broken_chain(aws: dict[str, Any], trail: AuditTrail) -> None:
    # Given a chain with a modified record
    trail.append_many([event(i) for i in range(3)])
    document = stored_document(aws["dynamodb"], 2)
    document["event"]["entity"] = "customer:C99999"
    write_document(aws["dynamodb"], 2, document)
    # Then writing a digest is refused and nothing lands in S3
    with pytest.raises(AuditIntegrityError, match="record 2"):
        trail.write_digest(aws["s3"], BUCKET)
    assert aws["s3"].list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    # And an empty chain has nothing to digest
    with pytest.raises(InvalidRequestError):
        AuditTrail(TABLE, aws["dynamodb"], chain="empty").write_digest(aws["s3"], BUCKET)


# ---------------------------------------------------------------------- the hourly job
def test_the_digest_job_digests_every_chain_with_records_and_refuses_a_broken_one(aws: dict[str, Any]) -> None:
    dynamodb, s3 = aws["dynamodb"], aws["s3"]
    # Given an intact chain, a chain with a modified record, and a registered chain whose only record is gone
    AuditTrail(TABLE, dynamodb, chain="intact").append_many([event(i) for i in range(3)])
    AuditTrail(TABLE, dynamodb, chain="broken").append_many([event(i) for i in range(2)])
    document = stored_document(dynamodb, 1, "broken")
    document["event"]["actor"] = "user:mallory"
    write_document(dynamodb, 1, document, "broken")
    AuditTrail(TABLE, dynamodb, chain="emptied").append(event(0))
    dynamodb.delete_item(TableName=TABLE, Key=key(1, "emptied"))
    # When the job runs
    run = write_digests(TABLE, dynamodb, s3, BUCKET, sleep=no_sleep)
    # Then the intact chain is digested, the broken one refused, and the one without records skipped
    assert run.written == ["audit-digests/intact/000000000003.json"]
    assert run.refused == ["broken"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="audit-digests/")["Contents"]]
    assert keys == run.written
