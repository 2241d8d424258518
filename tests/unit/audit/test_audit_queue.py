"""The audit queue and its writer: every queued event is appended once, whatever fails or is delivered twice."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from audit_helpers import TABLE, FailingPuts, event, no_sleep, throttled
from mlops.audit.queue import MAX_BATCH_ENTRIES, AuditQueue
from mlops.audit.records import AuditEvent, AuditRecord
from mlops.audit.trail import AuditTrail, writer_chain
from mlops.audit.verification import verify_chains
from mlops.audit.writer import drain
from mlops.core.errors import AuditUnavailableError


def receive_all(aws: dict[str, Any]) -> list[dict[str, Any]]:
    """Every visible message, as the event source mapping hands them to the writer (SQS event records)."""
    records: list[dict[str, Any]] = []
    while messages := aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10).get("Messages"):
        records.extend({"messageId": m["MessageId"], "body": m["Body"]} for m in messages)
    return records


def stored_event_ids(aws: dict[str, Any]) -> list[str]:
    """The event id of every record in every chain of the table."""
    verification = verify_chains(TABLE, aws["dynamodb"])
    assert verification.valid, verification.first_broken
    ids: list[str] = []
    for chain in AuditTrail.chains(TABLE, aws["dynamodb"]):
        items = aws["dynamodb"].query(
            TableName=TABLE,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :seq)",
            ExpressionAttributeValues={":pk": {"S": f"AUDIT#{chain}"}, ":seq": {"S": "SEQ#"}},
        )["Items"]
        ids.extend(AuditRecord.model_validate_json(item["document"]["S"]).event.event_id for item in items)
    return ids


class FailingSends:
    """The real SQS client, except that SendMessageBatch answers according to `plan` (one entry per call):
    `throttle` (the call is refused), `fail-first` (the batch's first entry is reported failed), `ok`."""

    def __init__(self, client: Any, plan: list[str]) -> None:
        self._client = client
        self._plan = plan
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def send_message_batch(self, **kwargs: Any) -> Any:
        action = self._plan[min(self.calls, len(self._plan) - 1)]
        self.calls += 1
        if action == "throttle":
            raise throttled("SendMessageBatch")
        if action == "fail-first":
            first, *rest = kwargs["Entries"]
            response = self._client.send_message_batch(**{**kwargs, "Entries": rest}) if rest else {}
            failed = {"Id": first["Id"], "SenderFault": False, "Code": "InternalError"}
            return {**response, "Failed": [*response.get("Failed", []), failed]}
        return self._client.send_message_batch(**kwargs)


def test_queued_events_are_appended_once_each_in_batches(aws: dict[str, Any]) -> None:
    # Given 25 events queued in one call (10 messages a batch at most)
    events = [event(i) for i in range(25)]
    AuditQueue(aws["queue_url"], aws["sqs"]).append_many(events)
    # When the writer drains the queue
    result = drain(receive_all(aws), AuditTrail(TABLE, aws["dynamodb"], chain=writer_chain("audit-writer")))
    # Then every event is in the chain once, with the id its producer gave it, and nothing is left to redeliver
    assert (result.appended, result.duplicates, result.failed_message_ids) == (25, 0, [])
    assert sorted(stored_event_ids(aws)) == sorted(e.event_id for e in events)
    assert MAX_BATCH_ENTRIES == 10


def test_attack_a_queued_record_delivered_twice_is_written_once(aws: dict[str, Any]) -> None:
    # Given a queued event delivered, appended, then delivered again (its deletion was lost) to another writer
    AuditQueue(aws["queue_url"], aws["sqs"]).append(event(1))
    delivery = receive_all(aws)
    drain(delivery, AuditTrail(TABLE, aws["dynamodb"], chain=writer_chain("audit-writer")))
    # When the redelivery is drained by another execution environment (another chain)
    again = drain(delivery, AuditTrail(TABLE, aws["dynamodb"], chain=writer_chain("audit-writer")))
    # Then it is skipped as already recorded: one record in the whole table, every chain intact
    assert (again.appended, again.duplicates, again.failed_message_ids) == (0, 1, [])
    assert len(stored_event_ids(aws)) == 1


def test_attack_the_queue_unavailable_refuses_the_record(aws: dict[str, Any]) -> None:
    # Given SQS throttling every send
    sends = FailingSends(aws["sqs"], ["throttle"])
    queue = AuditQueue(aws["queue_url"], sends, max_attempts=3, sleep=no_sleep)
    # When an event is queued
    with pytest.raises(AuditUnavailableError) as raised:
        queue.append(event(1))
    # Then the caller gets the retryable error after the bounded retries, and nothing was queued
    assert raised.value.retryable
    assert raised.value.field == "audit_queue"
    assert "0 of 1 events were queued" in raised.value.message
    assert sends.calls == 3
    assert receive_all(aws) == []


def test_a_throttled_send_and_a_failed_entry_are_sent_again(aws: dict[str, Any]) -> None:
    # Given SQS throttling the first call and failing one entry of the second
    sends = FailingSends(aws["sqs"], ["throttle", "fail-first", "ok"])
    events = [event(i) for i in range(3)]
    # When three events are queued
    AuditQueue(aws["queue_url"], sends, sleep=no_sleep).append_many(events)
    # Then each is queued exactly once: the throttled call again whole, the failed entry alone
    assert sends.calls == 3
    queued = [AuditEvent.model_validate_json(r["body"]).event_id for r in receive_all(aws)]
    assert sorted(queued) == sorted(e.event_id for e in events)


def test_a_refused_message_is_not_sent_again(aws: dict[str, Any]) -> None:
    # Given SQS refusing an entry as the sender's fault (it would refuse it every time)
    class Refusing(FailingSends):
        def send_message_batch(self, **kwargs: Any) -> Any:
            self.calls += 1
            return {
                "Failed": [
                    {"Id": e["Id"], "SenderFault": True, "Code": "InvalidMessageContents"} for e in kwargs["Entries"]
                ]
            }

    sends = Refusing(aws["sqs"], ["ok"])
    # When an event is queued, Then the error names the refusal at once
    with pytest.raises(AuditUnavailableError, match="InvalidMessageContents"):
        AuditQueue(aws["queue_url"], sends, sleep=no_sleep).append(event(1))
    assert sends.calls == 1


def test_a_chain_that_cannot_be_written_gets_the_whole_batch_again_and_loses_nothing(aws: dict[str, Any]) -> None:
    # Given 6 queued events and DynamoDB failing from the fourth append on
    events = [event(i) for i in range(6)]
    AuditQueue(aws["queue_url"], aws["sqs"]).append_many(events)
    delivery = receive_all(aws)
    failing = FailingPuts(aws["dynamodb"], lambda call: "ok" if call <= 3 else "throttle")
    # When the writer drains the batch
    result = drain(delivery, AuditTrail(TABLE, failing, max_attempts=2, sleep=no_sleep, chain=writer_chain("w")))
    # Then every message is delivered again; on redelivery the three appended are skipped, the rest written
    assert sorted(result.failed_message_ids) == sorted(r["messageId"] for r in delivery)
    again = drain(delivery, AuditTrail(TABLE, aws["dynamodb"], chain=writer_chain("w")))
    assert (again.appended, again.duplicates) == (3, 3)
    assert sorted(stored_event_ids(aws)) == sorted(e.event_id for e in events)


def test_a_message_that_is_not_an_event_is_delivered_again_alone(aws: dict[str, Any]) -> None:
    # Given a batch holding an event and a message that is not one
    AuditQueue(aws["queue_url"], aws["sqs"]).append(event(1))
    aws["sqs"].send_message(QueueUrl=aws["queue_url"], MessageBody='{"not": "an event"}')
    delivery = receive_all(aws)
    poison = next(r["messageId"] for r in delivery if "not" in r["body"])
    # When the writer drains it
    result = drain(delivery, AuditTrail(TABLE, aws["dynamodb"], chain=writer_chain("audit-writer")))
    # Then the event is appended and only the other message is reported failed (for the dead-letter queue)
    assert (result.appended, result.failed_message_ids) == (1, [poison])
    assert result.batch_response() == {"batchItemFailures": [{"itemIdentifier": poison}]}


def test_a_transient_error_of_the_call_itself_is_retried(aws: dict[str, Any]) -> None:
    class Failing(FailingSends):
        def send_message_batch(self, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == 1:
                raise ClientError(
                    {"Error": {"Code": "ServiceUnavailable"}, "ResponseMetadata": {"HTTPStatusCode": 503}},
                    "SendMessageBatch",
                )
            return self._client.send_message_batch(**kwargs)

    sends = Failing(aws["sqs"], ["ok"])
    AuditQueue(aws["queue_url"], sends, sleep=no_sleep).append(event(1))
    assert sends.calls == 2
    assert len(receive_all(aws)) == 1
