"""Audit trail on moto: hash chaining, tamper detection, digests, chains per writer, queries, concurrency, faults."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from moto import mock_aws
from pydantic import ValidationError

from mlops.audit.trail import (
    AUDIT_TABLE_INDEXES,
    GENESIS_HASH,
    AuditEvent,
    AuditEventType,
    AuditIntegrityError,
    AuditPage,
    AuditRecord,
    AuditTrail,
    AuditUnavailableError,
    canonical_json,
    compute_hash,
    query_audit,
    verify_chains,
    writer_chain,
)
from mlops.core.errors import InvalidRequestError

TABLE = "audit"
BUCKET = "audit-digests-bucket"
T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
# The hash of the reference event below. It must never change: chains already written would stop verifying.
PINNED_HASH = "86c5507e0a9e86d51b5a9f6df5cfb2bb714d8bb26052eea523f7005634df1760"

# What a template declares for the audit table (AUDIT_TABLE_INDEXES names the same indexes and keys).
ATTRIBUTE_DEFINITIONS = [
    {"AttributeName": name, "AttributeType": "S"}
    for name in ("pk", "sk", "type_pk", "entity_pk", "day_pk", "occurred_at")
]
GLOBAL_SECONDARY_INDEXES = [
    {
        "IndexName": name,
        "KeySchema": [
            {"AttributeName": partition, "KeyType": "HASH"},
            {"AttributeName": "occurred_at", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }
    for name, partition in (("by_type", "type_pk"), ("by_entity", "entity_pk"), ("by_day", "day_pk"))
]


def no_sleep(_: float) -> None:
    """Backoff without waiting, to keep retry tests fast."""


class TickingClock:
    """A clock that moves one second per reading, so records get distinct, predictable recorded_at values."""

    def __init__(self, start: dt.datetime = T0) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName=TABLE,
            AttributeDefinitions=ATTRIBUTE_DEFINITIONS,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=GLOBAL_SECONDARY_INDEXES,
            BillingMode="PAY_PER_REQUEST",
        )
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield {"dynamodb": dynamodb, "s3": s3}


@pytest.fixture
def trail(aws: dict[str, Any]) -> AuditTrail:
    return AuditTrail(TABLE, aws["dynamodb"], clock=TickingClock(), sleep=no_sleep)


def event(
    i: int,
    event_type: AuditEventType = AuditEventType.PREDICTION,
    entity: str = "customer:C00011",
    actor: str = "function:score",
    minutes: int = 1,
) -> AuditEvent:
    """Event `i`, occurring `i * minutes` minutes after T0."""
    return AuditEvent(
        event_type=event_type,
        entity=entity,
        actor=actor,
        details={"features_sha256": hashlib.sha256(str(i).encode()).hexdigest(), "i": i},
        occurred_at=T0 + dt.timedelta(minutes=i * minutes),
    )


def key(sequence: int, chain: str = "main") -> dict[str, Any]:
    return {"pk": {"S": f"AUDIT#{chain}"}, "sk": {"S": f"SEQ#{sequence:012d}"}}


def head_key(chain: str = "main") -> dict[str, Any]:
    return {"pk": {"S": f"AUDIT#{chain}"}, "sk": {"S": "HEAD"}}


def stored_item(dynamodb: Any, sequence: int, chain: str = "main") -> dict[str, Any]:
    return dynamodb.get_item(TableName=TABLE, Key=key(sequence, chain))["Item"]


def stored_document(dynamodb: Any, sequence: int, chain: str = "main") -> dict[str, Any]:
    return json.loads(stored_item(dynamodb, sequence, chain)["document"]["S"])


def record_count(dynamodb: Any, chain: str = "main") -> int:
    return dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :seq)",
        ExpressionAttributeValues={":pk": {"S": f"AUDIT#{chain}"}, ":seq": {"S": "SEQ#"}},
    )["Count"]


def attacker_hash(document: dict[str, Any]) -> str:
    """The hash as anyone who read the module docs could recompute it (independent of mlops.audit.trail)."""
    payload = {name: value for name, value in document.items() if name != "record_hash"}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_document(dynamodb: Any, sequence: int, document: dict[str, Any], chain: str = "main") -> None:
    dynamodb.update_item(
        TableName=TABLE,
        Key=key(sequence, chain),
        UpdateExpression="SET document = :d",
        ExpressionAttributeValues={":d": {"S": json.dumps(document)}},
    )


def set_head(dynamodb: Any, sequence: int, record_hash: str, chain: str = "main") -> None:
    dynamodb.update_item(
        TableName=TABLE,
        Key=head_key(chain),
        UpdateExpression="SET #s = :s, record_hash = :h",
        ExpressionAttributeNames={"#s": "sequence"},
        ExpressionAttributeValues={":s": {"N": str(sequence)}, ":h": {"S": record_hash}},
    )


def ids(page: AuditPage) -> list[int]:
    """The `i` of each event of a page (records of several chains share sequence numbers)."""
    return [int(str(record.event.details["i"])) for record in page.records]


def all_pages(query: Callable[[str | None], AuditPage]) -> list[list[int]]:
    """Event ids of every page, following tokens until the last page."""
    pages: list[list[int]] = []
    token: str | None = None
    while True:
        page = query(token)
        pages.append(ids(page))
        token = page.next_page_token
        if token is None:
            return pages
        assert len(pages) < 100, "tokens must progress"


def test_the_fixture_declares_the_documented_indexes() -> None:
    declared = {
        gsi["IndexName"]: tuple(k["AttributeName"] for k in gsi["KeySchema"]) for gsi in GLOBAL_SECONDARY_INDEXES
    }
    assert declared == dict(AUDIT_TABLE_INDEXES)


# ---------------------------------------------------------------------- chaining and hashing
def test_appended_events_get_contiguous_sequences_and_linked_hashes(aws: dict[str, Any], trail: AuditTrail) -> None:
    # Given an empty chain
    # When events are appended one by one and in a batch
    first = trail.append(event(0))
    batch = trail.append_many([event(i) for i in range(1, 5)])
    records = [first, *batch]
    # Then sequences are contiguous from 1 and each record links to the previous one's hash
    assert [r.sequence for r in records] == [1, 2, 3, 4, 5]
    assert records[0].previous_hash == GENESIS_HASH
    assert all(b.previous_hash == a.record_hash for a, b in itertools.pairwise(records))
    assert all(compute_hash(r) == r.record_hash for r in records)
    # And the newest record and the head item are the last record, and the stored documents are the records
    assert trail.head() == (5, records[-1].record_hash)
    head = aws["dynamodb"].get_item(TableName=TABLE, Key=head_key())["Item"]
    assert (head["sequence"], head["record_hash"]) == ({"N": "5"}, {"S": records[-1].record_hash})
    assert [AuditRecord.model_validate(stored_document(aws["dynamodb"], r.sequence)) for r in records] == records
    # And the index keys are copies of the event's fields, free of the chain
    item = stored_item(aws["dynamodb"], 3)
    assert item["event_type"] == {"S": "prediction"}
    assert item["type_pk"] == {"S": "TYPE#prediction"}
    assert item["entity_pk"] == {"S": "ENTITY#customer:C00011"}
    assert item["day_pk"] == {"S": "DAY#2026-11-01"}
    assert item["occurred_at"] == {"S": "2026-11-01T12:02:00.000Z"}
    verification = trail.verify()
    assert verification.valid
    assert (verification.records_checked, verification.last_sequence, verification.head_sequence) == (5, 5, 5)
    assert verification.first_broken is None


def test_the_record_hash_is_the_sha256_of_the_canonical_json(aws: dict[str, Any]) -> None:
    # Given a known event with a non-ASCII detail, appended first at a known time
    known = AuditEvent(
        event_type="prediction",
        entity="customer:C00011",
        actor="function:score",
        details={"features_sha256": "ab" * 32, "probability": 0.25, "région": "Île-de-France", "flags": [1, True]},
        occurred_at="2026-11-01T13:00:00+01:00",
        event_id="e-1",
    )
    trail = AuditTrail(TABLE, aws["dynamodb"], clock=lambda: T0.timestamp())
    record = trail.append(known)
    # When the hash is computed independently from the documented format
    payload = {
        "chain": "main",
        "sequence": 1,
        "event": {
            "event_type": "prediction",
            "entity": "customer:C00011",
            "actor": "function:score",
            "details": {
                "features_sha256": "ab" * 32,
                "probability": 0.25,
                "région": "Île-de-France",
                "flags": [1, True],
            },
            "occurred_at": "2026-11-01T12:00:00.000Z",  # normalized to UTC, milliseconds, Z
            "event_id": "e-1",
        },
        "recorded_at": "2026-11-01T12:00:00.000Z",
        "previous_hash": "0" * 64,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Then it is the record's hash, and it is pinned so the format cannot drift unnoticed
    assert canonical_json(record) == text
    assert "région" in text  # UTF-8 as is, not \u escapes
    assert record.record_hash == hashlib.sha256(text.encode("utf-8")).hexdigest() == PINNED_HASH
    # And the stored document hashes the same whatever the key order it is read with
    document = stored_document(aws["dynamodb"], 1)
    assert compute_hash(dict(reversed(list(document.items())))) == record.record_hash


def test_a_fresh_trail_continues_the_chain_from_its_records_not_its_head(
    aws: dict[str, Any], trail: AuditTrail
) -> None:
    # Given three records whose head item lags at 1 (as after failed best-effort head updates)
    records = trail.append_many([event(i) for i in range(3)])
    set_head(aws["dynamodb"], 1, records[0].record_hash)
    # When a new trail object (a new container) appends to the same chain
    fresh = AuditTrail(TABLE, aws["dynamodb"], sleep=no_sleep)
    record = fresh.append(event(3))
    # Then it continues after the newest record, and moves the head there
    assert (record.sequence, record.previous_hash) == (4, records[-1].record_hash)
    verification = fresh.verify()
    assert verification.valid, verification.first_broken
    assert (verification.last_sequence, verification.head_sequence) == (4, 4)


class Recording:
    """The client, remembering which operations were called (a record put and a registry put told apart)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            if name == "put_item":
                self.calls.append("put_item:" + ("record" if kwargs["Item"]["sk"]["S"].startswith("SEQ#") else "other"))
            else:
                self.calls.append(name)
            return attribute(**kwargs)

        return call


def test_appending_n_records_takes_n_conditional_puts_and_no_transaction(aws: dict[str, Any]) -> None:
    # Given a trail on a new writer chain, in a table that already holds another chain
    AuditTrail(TABLE, aws["dynamodb"], chain="other").append_many([event(i) for i in range(3)])
    client = Recording(aws["dynamodb"])
    trail = AuditTrail(TABLE, client, chain=writer_chain("scoring"))
    # When 5 events are appended one by one and 5 in a batch
    for i in range(5):
        trail.append(event(i))
    trail.append_many([event(i) for i in range(5, 10)])
    # Then: one registry put, one read of the newest record (first use), one put per record, one head update per
    # call, and nothing else (no transaction, no head read)
    assert Counter(client.calls) == {"put_item:other": 1, "query": 1, "put_item:record": 10, "update_item": 6}
    assert client.calls[:3] == ["put_item:other", "query", "put_item:record"]
    assert trail.verify().valid


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
    # Then the chain alone looks intact, but not against the digests
    assert trail.verify().valid
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


# ---------------------------------------------------------------------- chains per writer
def test_writer_chains_are_distinct_registered_and_listed(aws: dict[str, Any]) -> None:
    # Given two writers, each on its own chain, and an idle trail object that never appended
    first, second = writer_chain("scoring"), writer_chain("scoring")
    assert first != second
    assert first.startswith("scoring-")
    assert len(first) == len("scoring-") + 12
    AuditTrail(TABLE, aws["dynamodb"], chain=first).append(event(1))
    AuditTrail(TABLE, aws["dynamodb"], chain=second).append_many([event(2), event(3)])
    AuditTrail(TABLE, aws["dynamodb"], chain="idle")
    # Then both chains (and only they) are listed, each with its own sequences from 1
    assert AuditTrail.chains(TABLE, aws["dynamodb"]) == sorted([first, second])
    assert stored_document(aws["dynamodb"], 1, first)["sequence"] == 1
    assert stored_document(aws["dynamodb"], 2, second)["chain"] == second
    # And a second trail object on a registered chain registers again harmlessly
    AuditTrail(TABLE, aws["dynamodb"], chain=first).append(event(4))
    assert AuditTrail.chains(TABLE, aws["dynamodb"]) == sorted([first, second])


@pytest.mark.parametrize("prefix", ["", "has space", "x" * 52, "chain/with/slash"])
def test_a_writer_chain_prefix_must_make_a_valid_chain_name(prefix: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        writer_chain(prefix)
    assert raised.value.field == "prefix"


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


# ---------------------------------------------------------------------- queries across chains
MIXED = [
    (AuditEventType.PREDICTION, "customer:C1"),
    (AuditEventType.MODEL_DEPLOYED, "model:churn/v3"),
    (AuditEventType.PREDICTION, "customer:C2"),
    (AuditEventType.PREDICTION, "customer:C1"),
    (AuditEventType.FEATURE_DELETION, "customer:C1"),
    (AuditEventType.MODEL_ROLLED_BACK, "model:churn/v3"),
]
NOW = (T0 + dt.timedelta(days=1)).timestamp()  # the clock of queries: the day after T0


def query(aws: dict[str, Any], **arguments: Any) -> AuditPage:
    return query_audit(TABLE, aws["dynamodb"], clock=lambda: NOW, sleep=no_sleep, **arguments)


@pytest.fixture
def mixed(aws: dict[str, Any]) -> None:
    """Twelve events (the pattern twice) one minute apart from T0, written alternately by two writers' chains."""
    writers = [AuditTrail(TABLE, aws["dynamodb"], chain=writer_chain("scoring")) for _ in range(2)]
    for i in range(12):
        writers[i % 2].append(event(i, *MIXED[i % len(MIXED)]))


@pytest.mark.usefixtures("mixed")
def test_query_filters_by_event_type_across_chains(aws: dict[str, Any]) -> None:
    page = query(aws, event_type="prediction")
    assert ids(page) == [0, 2, 3, 6, 8, 9]
    assert page.next_page_token is None
    assert ids(query(aws, event_type=AuditEventType.MODEL_DEPLOYED)) == [1, 7]
    window = query(aws, event_type="prediction", since=T0 + dt.timedelta(minutes=3), until=T0.replace(minute=8))
    assert ids(window) == [3, 6, 8]
    assert ids(query(aws, event_type="prediction", until=T0 + dt.timedelta(minutes=6))) == [0, 2, 3, 6]


@pytest.mark.usefixtures("mixed")
def test_query_filters_by_entity_and_time_range(aws: dict[str, Any]) -> None:
    # Entity, time range (inclusive) and type filters combine
    assert ids(query(aws, entity="customer:C1")) == [0, 3, 4, 6, 9, 10]
    assert ids(query(aws, entity="customer:C1", since=T0 + dt.timedelta(minutes=3))) == [3, 4, 6, 9, 10]
    window = query(aws, entity="customer:C1", since=T0 + dt.timedelta(minutes=3), until="2026-11-01T12:09:00Z")
    assert ids(window) == [3, 4, 6, 9]
    typed = query(aws, event_type="prediction", entity="customer:C1", until=T0 + dt.timedelta(minutes=6))
    assert ids(typed) == [0, 3, 6]
    assert query(aws, entity="customer:nobody").records == []
    # And entity pages continue through tokens without repeats or gaps
    assert all_pages(lambda token: query(aws, entity="customer:C1", limit=4, page_token=token)) == [
        [0, 3, 4, 6],
        [9, 10],
    ]
    typed_pages = all_pages(
        lambda token: query(aws, event_type="prediction", entity="customer:C1", limit=2, page_token=token)
    )
    assert [i for page in typed_pages for i in page] == [0, 3, 6, 9]


@pytest.mark.usefixtures("mixed")
def test_query_filters_by_time_range_through_the_days(aws: dict[str, Any]) -> None:
    page = query(aws, since=T0 + dt.timedelta(minutes=3), until=T0 + dt.timedelta(minutes=6))
    assert ids(page) == [3, 4, 5, 6]
    assert ids(query(aws, until="2026-11-01T13:01:00+01:00")) == [0, 1]
    # Without since, the last seven days (before until, or before now) are read
    assert ids(query(aws)) == list(range(12))
    assert query(aws, until=T0 + dt.timedelta(days=8)).records == []
    assert ids(query(aws, until=T0 + dt.timedelta(days=6))) == list(range(12))


def test_pages_continue_across_days_and_chains_without_repeats_or_gaps(aws: dict[str, Any]) -> None:
    # Given 25 events three hours apart (four days), written by three writers' chains
    writers = [AuditTrail(TABLE, aws["dynamodb"], chain=writer_chain("scoring")) for _ in range(3)]
    for i in range(25):
        writers[i % 3].append(event(i, *MIXED[i % len(MIXED)], minutes=180))
    since, until = T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=3, hours=6)
    # Then unfiltered pages are full and in time order, across days and chains (the day before T0 is empty)
    assert all_pages(lambda token: query(aws, since=since, until=until, limit=10, page_token=token)) == [
        list(range(0, 10)),
        list(range(10, 20)),
        list(range(20, 25)),
    ]
    # And a page ending exactly at the end of the days has no token
    assert query(aws, since=since, until=until, limit=25).next_page_token is None
    # And without until, reading stops at today (the clock's day, the day after T0)
    assert ids(query(aws, since=since)) == list(range(12))
    # And filtered pages are full too, although DynamoDB's Limit counts items before the filter
    predictions = [i for i in range(25) if MIXED[i % len(MIXED)][0] == "prediction"]
    pages = all_pages(lambda token: query(aws, event_type="prediction", limit=4, page_token=token))
    assert [i for page in pages for i in page] == predictions
    assert all(len(page) == 4 for page in pages[:-1])
    # And with a tiny read budget per page, pages may be short but tokens still progress over every record
    frugal = all_pages(
        lambda token: query(aws, entity="model:churn/v3", event_type="model_deployed", scan_budget=1, page_token=token)
    )
    assert [i for page in frugal for i in page] == [1, 7, 13, 19]
    assert len(frugal) > 1
    # And a default window without until is read from the token, so pages agree on it whatever the time
    first = query(aws, limit=3)
    later = query_audit(TABLE, aws["dynamodb"], clock=lambda: NOW + 86400, limit=3, page_token=first.next_page_token)
    assert ids(first) + ids(later) == list(range(6))


def retoken(token: str | None, change: Callable[[dict[str, Any]], None]) -> str:
    assert token is not None
    state = json.loads(base64.urlsafe_b64decode(token))
    change(state)
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


@pytest.mark.parametrize(
    ("make_token", "arguments"),
    [
        (lambda aws: "not a token!", {}),
        (lambda aws: "", {}),
        (lambda aws: base64.urlsafe_b64encode(b"[1, 2]").decode(), {}),
        (lambda aws: retoken(query(aws, limit=1).next_page_token, lambda s: s.pop("q")), {}),
        (lambda aws: retoken(query(aws, limit=1).next_page_token, lambda s: s["k"].pop("sk")), {}),
        (lambda aws: retoken(query(aws, limit=1).next_page_token, lambda s: s.update(p="DAY#2020-01-01")), {}),
        (lambda aws: retoken(query(aws, limit=1).next_page_token, lambda s: s.update(s="yesterday")), {}),
        (
            lambda aws: retoken(
                query(aws, entity="customer:C1", limit=1).next_page_token,
                lambda s: s["k"].update(entity_pk={"S": "ENTITY#customer:C2"}),
            ),
            {"entity": "customer:C1"},
        ),
        (lambda aws: query(aws, entity="customer:C1", limit=1).next_page_token, {}),  # another query's token
        (lambda aws: query(aws, event_type="prediction", limit=1).next_page_token, {"event_type": "pilot_run"}),
    ],
    ids=[
        "garbage",
        "empty",
        "not-a-token",
        "no-fingerprint",
        "incomplete-key",
        "day-outside-the-range",
        "malformed-default-since",
        "key-of-another-partition",
        "other-index",
        "other-filter",
    ],
)
@pytest.mark.usefixtures("mixed")
def test_a_malformed_page_token_is_rejected(
    aws: dict[str, Any], make_token: Callable[[dict[str, Any]], str], arguments: dict[str, Any]
) -> None:
    token = make_token(aws)
    with pytest.raises(InvalidRequestError) as raised:
        query(aws, limit=5, page_token=token, **arguments)
    assert raised.value.field == "page_token"


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"event_type": "coffee_break"}, "event_type"),
        ({"entity": "Jane Doe"}, "entity"),
        ({"since": "2026-11-01T12:00:00"}, "since"),  # no time zone
        ({"since": T0, "until": T0 - dt.timedelta(seconds=1)}, "until"),
        ({"since": T0 - dt.timedelta(days=366)}, "since"),  # too many days to read one by one
    ],
)
def test_invalid_query_parameters_are_rejected(aws: dict[str, Any], arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        query(aws, **arguments)
    assert raised.value.field == field


@pytest.mark.parametrize(
    "changes",
    [
        {"details": {"score": float("nan")}},
        {"details": {"blob": "x" * 70_000}},
        {"occurred_at": "2026-11-01T12:00:00"},  # no time zone
        {"entity": "Jane Doe, 12 Main Street"},  # an id, not personal data
        {"actor": ""},
        {"ip_address": "10.0.0.1"},  # unknown field
    ],
)
def test_events_that_cannot_be_hashed_reproducibly_are_refused(changes: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"event_type": "prediction", "entity": "customer:C1", "actor": "function:score"}
    with pytest.raises(ValidationError):
        AuditEvent(**{**fields, **changes})


# ---------------------------------------------------------------------- concurrency
class Serialized:
    """The client with each request applied atomically, as DynamoDB does (moto does not lock its tables, so two
    threads could interleave inside one request)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.conflicts = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(**kwargs: Any) -> Any:
            with self._lock:
                try:
                    return attribute(**kwargs)
                except ClientError as error:
                    self.conflicts += error.response["Error"]["Code"] == "ConditionalCheckFailedException"
                    raise

        return call


def test_a_writer_with_a_stale_head_appends_after_the_other(aws: dict[str, Any]) -> None:
    # Given two writers on the same chain; the first knows the newest record is 1
    first = AuditTrail(TABLE, aws["dynamodb"], sleep=no_sleep)
    second = AuditTrail(TABLE, aws["dynamodb"], sleep=no_sleep)
    first.append(event(1))
    # When the second appends, then the first appends from its stale knowledge
    middle = second.append(event(2))
    last = first.append(event(3))
    # Then the first one found slot 2 taken, read the newest record and chained after the second's record
    assert (middle.sequence, last.sequence) == (2, 3)
    assert last.previous_hash == middle.record_hash
    verification = first.verify()
    assert verification.valid
    assert verification.head_sequence == 3


def test_concurrent_writers_never_fork_the_chain(aws: dict[str, Any]) -> None:
    # Given three writers (separate AuditTrail objects) on one chain, started together
    client = Serialized(aws["dynamodb"])
    writers = [AuditTrail(TABLE, client, max_attempts=30) for _ in range(3)]
    start = threading.Barrier(len(writers))
    appended: list[list[AuditRecord]] = [[] for _ in writers]
    failures: list[BaseException] = []

    def write(index: int) -> None:
        try:
            start.wait()
            for i in range(8):
                appended[index].append(writers[index].append(event(100 * index + i, actor=f"writer:{index}")))
            appended[index].extend(writers[index].append_many([event(100 * index + i) for i in range(8, 12)]))
        except BaseException as error:  # surfaced below: an exception in a thread would otherwise vanish
            failures.append(error)

    threads = [threading.Thread(target=write, args=(index,)) for index in range(len(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # Then every append landed exactly once, on one linear chain, and the head ended at the newest record
    assert failures == []
    sequences = sorted(record.sequence for records in appended for record in records)
    assert sequences == list(range(1, 37))
    verification = writers[0].verify()
    assert verification.valid, verification.first_broken
    assert (verification.records_checked, verification.head_sequence) == (36, 36)
    # And each writer's own records stay in its order
    assert all([r.sequence for r in records] == sorted(r.sequence for r in records) for records in appended)


# ---------------------------------------------------------------------- faults
def throttled(operation: str = "PutItem") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        operation,
    )


class FailingPuts:
    """The real client, except that puts of records fail according to `plan` (one entry per call):
    `throttle` (rejected), `timeout` (not applied, response lost), `lose-response` (applied, response lost)."""

    def __init__(self, client: Any, plan: Callable[[int], str]) -> None:
        self._client = client
        self._plan = plan
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_item(self, **kwargs: Any) -> Any:
        if not kwargs["Item"]["sk"]["S"].startswith("SEQ#"):
            return self._client.put_item(**kwargs)
        self.calls += 1
        action = self._plan(self.calls)
        if action == "throttle":
            raise throttled()
        if action == "timeout":
            raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
        response = self._client.put_item(**kwargs)
        if action == "lose-response":
            raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
        return response


class FailingHeadUpdates:
    """The real client, except that every update of a head item is throttled."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_item(self, **kwargs: Any) -> Any:
        raise throttled("UpdateItem")


def test_persistent_throttling_raises_audit_unavailable_and_writes_nothing(aws: dict[str, Any]) -> None:
    # Given DynamoDB throttling every put of a record
    client = FailingPuts(aws["dynamodb"], lambda call: "throttle")
    trail = AuditTrail(TABLE, client, max_attempts=4, sleep=no_sleep)
    # When an event is appended
    with pytest.raises(AuditUnavailableError) as raised:
        trail.append(event(1))
    # Then the caller gets a retryable domain error after the bounded retries, and nothing was half-written
    assert raised.value.retryable
    assert raised.value.to_dict()["code"] == "AUDIT_UNAVAILABLE"
    assert "was not appended" in raised.value.message
    assert client.calls == 4
    assert record_count(aws["dynamodb"]) == 0
    assert "Item" not in aws["dynamodb"].get_item(TableName=TABLE, Key=head_key())
    # And once DynamoDB recovers, the chain starts cleanly at 1
    assert AuditTrail(TABLE, aws["dynamodb"]).append(event(1)).sequence == 1


def test_a_transient_failure_is_retried(aws: dict[str, Any]) -> None:
    client = FailingPuts(aws["dynamodb"], lambda call: "throttle" if call == 1 else "ok")
    record = AuditTrail(TABLE, client, sleep=no_sleep).append(event(1))
    assert (record.sequence, client.calls) == (1, 2)


def test_a_failure_midway_through_a_batch_leaves_a_valid_prefix(aws: dict[str, Any]) -> None:
    # Given DynamoDB failing from the eighth put on
    client = FailingPuts(aws["dynamodb"], lambda call: "ok" if call <= 7 else "throttle")
    trail = AuditTrail(TABLE, client, max_attempts=3, sleep=no_sleep)
    # When 12 events are appended in one batch
    with pytest.raises(AuditUnavailableError, match="7 of 12 events were already appended"):
        trail.append_many([event(i) for i in range(12)])
    # Then the first 7 records form an intact chain with no gap, the head was moved to them, the rest is absent
    verification = AuditTrail(TABLE, aws["dynamodb"]).verify()
    assert verification.valid
    assert (verification.records_checked, verification.head_sequence) == (7, 7)
    # And the chain continues from there
    assert AuditTrail(TABLE, aws["dynamodb"]).append(event(12)).sequence == 8


def test_a_lost_response_does_not_append_twice(aws: dict[str, Any]) -> None:
    # Given a put that is applied but whose response never arrives
    client = FailingPuts(aws["dynamodb"], lambda call: "lose-response" if call == 1 else "ok")
    trail = AuditTrail(TABLE, client, sleep=no_sleep)
    # When the append is retried
    record = trail.append(event(1))
    # Then the retry found its own record in the slot instead of appending the event a second time
    assert (record.sequence, client.calls) == (1, 2)
    assert AuditRecord.model_validate(stored_document(aws["dynamodb"], 1)) == record
    assert trail.head() == (1, record.record_hash)
    assert record_count(aws["dynamodb"]) == 1
    assert trail.verify().valid


def test_a_lost_response_whose_slot_another_writer_took_is_appended_after_it(aws: dict[str, Any]) -> None:
    # Given a writer that knows the chain is empty, and another writer taking slot 1 first
    client = FailingPuts(aws["dynamodb"], lambda call: "timeout" if call == 1 else "ok")
    trail = AuditTrail(TABLE, client, sleep=no_sleep)
    assert trail.head() == (0, GENESIS_HASH)
    other = AuditTrail(TABLE, aws["dynamodb"]).append(event(1))
    # When the first writer's put times out and its retry finds slot 1 holding the other's record
    mine = trail.append(event(2))
    # Then it is not mistaken for its own: the event is appended once, after the other's record
    assert (mine.sequence, mine.previous_hash) == (2, other.record_hash)
    assert [stored_document(aws["dynamodb"], s)["event"]["event_id"] for s in (1, 2)] == [
        other.event.event_id,
        mine.event.event_id,
    ]
    assert trail.verify().valid


def test_a_failed_head_update_does_not_fail_the_append(aws: dict[str, Any]) -> None:
    # Given every head update throttled
    trail = AuditTrail(TABLE, FailingHeadUpdates(aws["dynamodb"]), sleep=no_sleep)
    # When events are appended
    records = [trail.append(event(1)), *trail.append_many([event(2), event(3)])]
    # Then they are stored and chained; the chain has no head yet and still verifies
    assert [r.sequence for r in records] == [1, 2, 3]
    verification = AuditTrail(TABLE, aws["dynamodb"]).verify()
    assert verification.valid
    assert (verification.last_sequence, verification.head_sequence) == (3, 0)
    # And the next append that can update the head moves it to the newest record
    AuditTrail(TABLE, aws["dynamodb"]).append(event(4))
    assert AuditTrail(TABLE, aws["dynamodb"]).verify().head_sequence == 4
