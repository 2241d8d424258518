"""Verifying audit chains on moto: every kind of tampering is found at its position, across every chain."""

from __future__ import annotations

import json
from typing import Any

import pytest

from audit_helpers import (
    BUCKET,
    TABLE,
    attacker_hash,
    event,
    head_key,
    key,
    set_head,
    stored_document,
    stored_item,
    write_document,
)
from mlops.audit.records import AuditRecord
from mlops.audit.trail import AuditTrail
from mlops.audit.verification import verify_chains
from mlops.core.errors import AuditIntegrityError


# ---------------------------------------------------------------------- tamper detection
@pytest.fixture
def five(trail: AuditTrail) -> list[AuditRecord]:
    return trail.append_many([event(i) for i in range(5)])


def test_verify_finds_a_modified_record(aws: dict[str, Any], trail: AuditTrail, five: list[AuditRecord]) -> None:
    # Given record 3's details changed in place
    document = stored_document(aws["dynamodb"], 3)
    document["event"]["details"]["i"] = 999
    write_document(aws["dynamodb"], 3, document)
    # When the chain is verified
    verification = trail.verify()
    # Then it is broken at 3, as modified
    assert not verification.valid
    assert verification.first_broken is not None
    assert (verification.first_broken.sequence, verification.first_broken.reason) == (3, "modified")


def test_verify_finds_a_record_rewritten_with_a_recomputed_hash(
    aws: dict[str, Any], trail: AuditTrail, five: list[AuditRecord]
) -> None:
    # Given record 3 rewritten by someone who recomputed its hash (it checks out on its own)
    document = stored_document(aws["dynamodb"], 3)
    document["event"]["actor"] = "user:mallory"
    document["record_hash"] = attacker_hash(document)
    write_document(aws["dynamodb"], 3, document)
    # Then record 4 no longer links to it
    broken = trail.verify().first_broken
    assert broken is not None
    assert (broken.sequence, broken.reason) == (4, "modified")
    assert "previous_hash" in broken.detail


def test_verify_finds_an_index_key_that_disagrees_with_the_document(
    aws: dict[str, Any], trail: AuditTrail, five: list[AuditRecord]
) -> None:
    # Given record 2 moved out of its day in the by_day index (hiding it from queries)
    aws["dynamodb"].update_item(
        TableName=TABLE,
        Key=key(2),
        UpdateExpression="SET day_pk = :d",
        ExpressionAttributeValues={":d": {"S": "DAY#1999-01-01"}},
    )
    broken = trail.verify().first_broken
    assert broken is not None
    assert (broken.sequence, broken.reason) == (2, "modified")
    assert "top-level attributes" in broken.detail


def test_verify_finds_a_deleted_record(aws: dict[str, Any], trail: AuditTrail, five: list[AuditRecord]) -> None:
    # Given the middle record deleted
    aws["dynamodb"].delete_item(TableName=TABLE, Key=key(3))
    # Then the chain is missing sequence 3
    broken = trail.verify().first_broken
    assert broken is not None
    assert (broken.sequence, broken.reason) == (3, "missing")


def test_verify_finds_two_swapped_records(aws: dict[str, Any], trail: AuditTrail, five: list[AuditRecord]) -> None:
    # Given the documents of records 2 and 3 swapped
    second, third = stored_item(aws["dynamodb"], 2), stored_item(aws["dynamodb"], 3)
    write_document(aws["dynamodb"], 2, json.loads(third["document"]["S"]))
    write_document(aws["dynamodb"], 3, json.loads(second["document"]["S"]))
    # Then position 2 holds an intact record that belongs elsewhere
    broken = trail.verify().first_broken
    assert broken is not None
    assert (broken.sequence, broken.reason) == (2, "reordered")


def test_verify_finds_a_truncated_tail_through_the_head(
    aws: dict[str, Any], trail: AuditTrail, five: list[AuditRecord]
) -> None:
    # Given the newest record deleted (what is left is a perfectly linked chain of 4)
    aws["dynamodb"].delete_item(TableName=TABLE, Key=key(5))
    # Then the head, still at 5, shows record 5 missing
    verification = trail.verify()
    assert (verification.head_sequence, verification.last_sequence) == (5, 4)
    assert verification.first_broken is not None
    assert (verification.first_broken.sequence, verification.first_broken.reason) == (5, "missing")
    # And no digest vouches for the truncated chain
    with pytest.raises(AuditIntegrityError, match="head is at 5"):
        trail.write_digest(aws["s3"], BUCKET)


def test_verify_finds_a_head_that_disagrees_with_the_records(
    aws: dict[str, Any], trail: AuditTrail, five: list[AuditRecord]
) -> None:
    # Given a head whose hash is not the newest record's
    set_head(aws["dynamodb"], 5, "f" * 64)
    broken = trail.verify().first_broken
    assert broken is not None
    assert (broken.sequence, broken.reason) == (5, "head_mismatch")
    # And given a head lagging at 3 with another hash than record 3's
    set_head(aws["dynamodb"], 3, five[1].record_hash)
    broken = trail.verify().first_broken
    assert broken is not None
    assert (broken.sequence, broken.reason) == (3, "head_mismatch")
    # And given a malformed head
    aws["dynamodb"].put_item(TableName=TABLE, Item={**head_key(), "sequence": {"S": "five"}})
    broken = trail.verify().first_broken
    assert broken is not None
    assert broken.reason == "head_mismatch"


def test_a_lagging_head_is_a_hint_not_tampering(
    aws: dict[str, Any], trail: AuditTrail, five: list[AuditRecord]
) -> None:
    # Given the head moved back to record 3, consistently (what failed head updates leave behind)
    set_head(aws["dynamodb"], 3, five[2].record_hash)
    # Then the chain verifies: records beyond the head are expected
    verification = trail.verify()
    assert verification.valid
    assert (verification.head_sequence, verification.last_sequence) == (3, 5)
    # And the next append moves the head forward again; it never moves back
    assert trail.append(event(5)).sequence == 6
    assert trail.verify().head_sequence == 6
    AuditTrail(TABLE, aws["dynamodb"])._advance_head(five[3])  # a slow writer reporting an older record
    assert trail.verify().head_sequence == 6


# ---------------------------------------------------------------------- every chain
def test_verify_chains_checks_every_chain_and_names_the_first_broken(aws: dict[str, Any]) -> None:
    dynamodb, s3 = aws["dynamodb"], aws["s3"]
    # Given three chains with digests
    for chain, count in (("a", 3), ("b", 4), ("c", 2)):
        trail = AuditTrail(TABLE, dynamodb, chain=chain)
        trail.append_many([event(i) for i in range(count)])
        trail.write_digest(s3, BUCKET)
    # Then every chain verifies
    summary = verify_chains(TABLE, dynamodb, s3, BUCKET)
    assert summary.valid
    assert [(c.chain, c.records_checked, c.digests_checked) for c in summary.chains] == [
        ("a", 3, 1),
        ("b", 4, 1),
        ("c", 2, 1),
    ]
    assert (summary.records_checked, summary.first_broken) == (9, None)
    # When record 2 of chain b and record 1 of chain c are deleted
    dynamodb.delete_item(TableName=TABLE, Key=key(2, "b"))
    dynamodb.delete_item(TableName=TABLE, Key=key(1, "c"))
    # Then the summary names chain b and the position, and lists each chain's result
    summary = verify_chains(TABLE, dynamodb)
    assert not summary.valid
    assert summary.first_broken is not None
    assert (summary.first_broken.chain, summary.first_broken.sequence, summary.first_broken.reason) == (
        "b",
        2,
        "missing",
    )
    assert [c.valid for c in summary.chains] == [True, False, False]


def test_a_chain_removed_from_the_registry_is_found_through_its_digests(aws: dict[str, Any]) -> None:
    dynamodb, s3 = aws["dynamodb"], aws["s3"]
    # Given a chain with a digest, then removed from the registry (hiding it from verify_chains)
    trail = AuditTrail(TABLE, dynamodb, chain="hidden")
    trail.append_many([event(i) for i in range(3)])
    trail.write_digest(s3, BUCKET)
    dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": "AUDIT_CHAINS"}, "sk": {"S": "hidden"}})
    # Then the registry no longer lists it, but verifying against the digests finds and reports it
    assert AuditTrail.chains(TABLE, dynamodb) == []
    summary = verify_chains(TABLE, dynamodb, s3, BUCKET)
    assert not summary.valid
    assert summary.first_broken is not None
    assert (summary.first_broken.chain, summary.first_broken.reason) == ("hidden", "unregistered")
    assert summary.records_checked == 3
