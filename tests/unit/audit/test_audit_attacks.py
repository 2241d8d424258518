"""Attacks on the audit trail, each expected to be refused or detected (the other named attacks: a scoring client
approving a model in tests/integration/test_local_api_auth.py, a scoring role writing the audit table in
tests/unit/test_template_security.py, a queued record delivered twice and the queue unavailable in
test_audit_queue.py and tests/integration/test_fault_injection.py).

The attacker here holds raw write access to the table or the bucket (an administrator's, or a leaked audit writer
role's), since no function's role but the writer's may write the table at all.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from botocore.exceptions import ClientError

from audit_helpers import TABLE, TickingClock, attacker_hash, event, no_sleep, set_head, stored_document, write_document
from mlops.audit.digests import DEFAULT_DIGEST_PREFIX, digest_event, digest_keys, write_digests
from mlops.audit.trail import AuditTrail
from mlops.audit.verification import verify_chains
from mlops.core.canonical_json import canonical_dumps
from mlops.core.errors import AuditIntegrityError

LOCKED_BUCKET = "audit-digests-locked"


@pytest.fixture
def locked_bucket(aws: dict[str, Any]) -> str:
    """The digest bucket as the template declares it: versioned, Object Lock in compliance mode."""
    s3 = aws["s3"]
    s3.create_bucket(Bucket=LOCKED_BUCKET, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=LOCKED_BUCKET,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 365}},
        },
    )
    return LOCKED_BUCKET


def digest_and_record(aws: dict[str, Any], bucket: str, writer: AuditTrail) -> list[str]:
    """The hourly job: a digest of every chain, each recorded in the trail (here appended directly, as the
    writer would from the queue). Returns the digest keys written."""
    run = write_digests(TABLE, aws["dynamodb"], aws["s3"], bucket, sleep=no_sleep)
    writer.append_many([digest_event(ref, actor="function:audit-digest") for ref in run.digests])
    return run.written


def test_attack_a_record_rewritten_in_place_after_the_last_digest_is_detected(
    aws: dict[str, Any], trail: AuditTrail, locked_bucket: str
) -> None:
    dynamodb, s3 = aws["dynamodb"], aws["s3"]
    # Given a digest at record 5, then records 6 to 8
    trail.append_many([event(i) for i in range(5)])
    trail.write_digest(s3, locked_bucket)
    trail.append_many([event(i) for i in range(5, 8)])
    # When records 7 and 8, newer than the digest, are rewritten consistently: hashes recomputed, head moved
    previous_hash = stored_document(dynamodb, 6)["record_hash"]
    for sequence in (7, 8):
        document = stored_document(dynamodb, sequence)
        document["event"]["details"]["churn_probability"] = 0.01
        document["previous_hash"] = previous_hash
        document["record_hash"] = previous_hash = attacker_hash(document)
        write_document(dynamodb, sequence, document)
    set_head(dynamodb, 8, previous_hash)
    # Then verify finds record 7 is not what the writer sealed with its event (the digest cannot show it)
    broken = trail.verify(digest_s3_client=s3, bucket=locked_bucket).first_broken
    assert broken is not None
    assert (broken.sequence, broken.reason) == (7, "modified")
    assert "the record was rewritten" in broken.detail
    # And the next digest refuses to attest the forgery
    with pytest.raises(AuditIntegrityError, match="record 7"):
        trail.write_digest(s3, locked_bucket)


def test_attack_the_newest_digest_deleted_is_detected(aws: dict[str, Any], locked_bucket: str) -> None:
    dynamodb, s3 = aws["dynamodb"], aws["s3"]
    # Given a chain digested twice by the hourly job, each digest recorded in the trail by the writer
    writer = AuditTrail(TABLE, dynamodb, chain="audit-writer-0", clock=TickingClock(), sleep=no_sleep)
    records = AuditTrail(TABLE, dynamodb, chain="scoring", clock=TickingClock(), sleep=no_sleep)
    records.append_many([event(i) for i in range(3)])
    digest_and_record(aws, locked_bucket, writer)
    records.append_many([event(i) for i in range(3, 6)])
    written = digest_and_record(aws, locked_bucket, writer)
    assert verify_chains(TABLE, dynamodb, s3, locked_bucket).valid
    newest = next(key for key in written if "/scoring/" in key)

    # When the newest digest of the chain is deleted (a delete marker: Object Lock refuses to remove the version)
    version = s3.list_object_versions(Bucket=locked_bucket, Prefix=newest)["Versions"][0]["VersionId"]
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=locked_bucket, Key=newest, VersionId=version)
    s3.delete_object(Bucket=locked_bucket, Key=newest)
    assert newest not in digest_keys(s3, locked_bucket, DEFAULT_DIGEST_PREFIX, "scoring")

    # Then verify reports the digest the trail recorded as missing, although the remaining digests chain up
    verification = verify_chains(TABLE, dynamodb, s3, locked_bucket)
    assert not verification.valid
    assert verification.first_broken is not None
    assert (verification.first_broken.chain, verification.first_broken.reason) == ("scoring", "digest_missing")
    assert newest in verification.first_broken.detail


def test_attack_a_digest_that_does_not_match_its_records_is_detected(
    aws: dict[str, Any], trail: AuditTrail, locked_bucket: str
) -> None:
    dynamodb, s3 = aws["dynamodb"], aws["s3"]
    # Given a digest at record 3, and records 4 to 6 not digested yet
    trail.append_many([event(i) for i in range(3)])
    first = trail.write_digest(s3, locked_bucket)
    trail.append_many([event(i) for i in range(3, 6)])
    # When a forged digest of record 6, properly chained to the first, attests a hash record 6 does not have
    forged = {
        **first.digest.model_dump(mode="json"),
        "first_sequence": 4,
        "last_sequence": 6,
        "records_since_previous": 3,
        "head_hash": hashlib.sha256(b"forged").hexdigest(),
        "previous_digest_key": first.key,
        "previous_digest_sha256": first.sha256,
    }
    s3.put_object(
        Bucket=locked_bucket, Key=first.key.replace("000000000003", "000000000006"), Body=canonical_dumps(forged)
    )
    # Then verify reports record 6 differing from the digest that claims to cover it
    broken = trail.verify(digest_s3_client=s3, bucket=locked_bucket).first_broken
    assert broken is not None
    assert (broken.sequence, broken.reason) == (6, "modified")
    assert "differs from digest" in broken.detail
    assert stored_document(dynamodb, 6)["record_hash"] != forged["head_hash"]
