"""Appending to audit chains on moto: hash chaining, the table layout, chains per writer, concurrency, faults."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError

from audit_helpers import (
    GLOBAL_SECONDARY_INDEXES,
    TABLE,
    FailingHeadUpdates,
    FailingPuts,
    event,
    head_key,
    no_sleep,
    record_count,
    set_head,
    stored_document,
    stored_item,
)
from mlops.audit.records import GENESIS_HASH, AuditRecord, compute_hash
from mlops.audit.table import AUDIT_TABLE_INDEXES
from mlops.audit.trail import AuditTrail, writer_chain
from mlops.core.errors import AuditUnavailableError, InvalidRequestError


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


def test_appending_n_records_takes_n_transactions_of_a_record_and_its_event_marker(aws: dict[str, Any]) -> None:
    # Given a trail on a new writer chain, in a table that already holds another chain
    AuditTrail(TABLE, aws["dynamodb"], chain="other").append_many([event(i) for i in range(3)])
    client = Recording(aws["dynamodb"])
    trail = AuditTrail(TABLE, client, chain=writer_chain("scoring"))
    # When 5 events are appended one by one and 5 in a batch
    for i in range(5):
        trail.append(event(i))
    trail.append_many([event(i) for i in range(5, 10)])
    # Then: one registry put, one read of the newest record (first use), one transaction per record (the record
    # and its event's marker), one head update per call, and nothing else (no head read)
    assert Counter(client.calls) == {"put_item:other": 1, "query": 1, "transact_write_items": 10, "update_item": 6}
    assert client.calls[:3] == ["put_item:other", "query", "transact_write_items"]
    assert trail.verify().valid


def test_an_event_already_recorded_is_skipped_in_any_chain(aws: dict[str, Any]) -> None:
    # Given an event recorded by one writer's chain
    repeated, others = event(1), [event(2), event(3)]
    first = AuditTrail(TABLE, aws["dynamodb"], chain=writer_chain("audit-writer"))
    recorded = first.append(repeated)
    # When the same event (a redelivered message) reaches the same and another writer, among new events
    again = first.append(repeated)
    second = AuditTrail(TABLE, aws["dynamodb"], chain=writer_chain("audit-writer"))
    appended = second.append_many([others[0], repeated, others[1]])
    # Then it is recorded once: the repeats are skipped, the other events appended, every chain intact
    assert recorded is not None
    assert again is None
    assert [r.event for r in appended] == others
    assert [r.sequence for r in appended] == [1, 2]
    assert record_count(aws["dynamodb"], first.chain) + record_count(aws["dynamodb"], second.chain) == 3
    assert first.verify().valid
    assert second.verify().valid


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
