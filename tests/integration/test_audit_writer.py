"""The audit logging function on the local stack: the events/ batch it is given by the queue's event source."""

from __future__ import annotations

from typing import Any

from helpers import load_event
from local_cloud.platform import LocalPlatform
from mlops.audit.queries import query_audit
from mlops.audit.queue import event_of


def records_of(platform: LocalPlatform, entity: str) -> list[Any]:
    table = platform.stack.physical_id("AuditTable")
    return query_audit(table, platform.client("dynamodb"), entity=entity, limit=100).records


def test_the_writer_appends_a_queued_batch_once_however_often_it_is_delivered(platform: LocalPlatform) -> None:
    # Given the SQS batch of events/ (one queued approval) and the entity it names
    batch = load_event("audit_queue_batch")
    queued = event_of(batch["Records"][0]["body"])
    before = len(records_of(platform, queued.entity))

    # When the audit writer is invoked with it twice (a redelivery)
    first = platform.runtime.invoke("AuditWriterFunction", batch)
    second = platform.runtime.invoke("AuditWriterFunction", batch)

    # Then both deliveries succeed (no message to deliver again), and the event is recorded once, as queued
    assert first == second == {"batchItemFailures": []}
    records = records_of(platform, queued.entity)
    assert len(records) == before + 1
    assert records[-1].event == queued


def test_a_message_that_is_not_an_event_is_given_back(platform: LocalPlatform) -> None:
    # Given a batch whose message holds no audit event
    batch = load_event("audit_queue_batch")
    batch["Records"][0] = {**batch["Records"][0], "messageId": "not-an-event", "body": '{"hello": "world"}'}
    # When the writer is invoked
    answer = platform.runtime.invoke("AuditWriterFunction", batch)
    # Then that message is reported failed (redelivered, then dead-lettered), not dropped
    assert answer == {"batchItemFailures": [{"itemIdentifier": "not-an-event"}]}


def test_the_queue_is_drained_when_an_outermost_invocation_returns(platform: LocalPlatform) -> None:
    # Given the queue's event source of the local stack
    (source,) = platform.event_sources
    assert (source.function, source.batch_size) == ("AuditWriterFunction", 100)
    # When a record is queued and then any function is invoked from outside (here a health check)
    sqs = platform.client("sqs")
    batch = load_event("audit_queue_batch")
    sqs.send_message(QueueUrl=source.queue_url, MessageBody=batch["Records"][0]["body"])
    platform.runtime.invoke("ScoringFunction", load_event("health"))
    # Then the outermost invocation's end drained the queue into the table
    attributes = sqs.get_queue_attributes(QueueUrl=source.queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
