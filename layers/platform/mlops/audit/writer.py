"""The audit writer: drains the audit queue into the hash chain, the only code that writes the audit table.

The queue delivers messages in batches (an SQS event source mapping), at least once each. Every message carries
one event (`mlops.audit.queue`); the batch's events are appended to this environment's chain in one
`append_many`, and an event already recorded (a redelivery) is skipped by its marker (`mlops.audit.trail`).

The answer is SQS's partial batch response: the messages to deliver again. A message whose body is not an event
can never be appended: it is named (by message id, never its content) and reported failed, so after the queue's
`maxReceiveCount` deliveries it lands in the dead-letter queue, whose alarm calls an operator. When the chain
cannot be written (DynamoDB unavailable after the retries), every message is reported failed: those already
appended are skipped when they come back, so nothing is lost and nothing written twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from mlops.audit.queue import event_of
from mlops.audit.records import AuditEvent
from mlops.audit.trail import AuditTrail
from mlops.core.errors import AuditIntegrityError, AuditUnavailableError
from mlops.core.observability import logger


class DrainResult(BaseModel):
    """What one batch of queued messages did to the chain."""

    appended: int = Field(description="records written to the chain (0 when the batch is delivered again)")
    duplicates: int = Field(description="events already recorded (redelivered messages), skipped")
    failed_message_ids: list[str] = Field(description="messages to deliver again")

    def batch_response(self) -> dict[str, list[dict[str, str]]]:
        """The SQS event source mapping's partial batch response (ReportBatchItemFailures)."""
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in self.failed_message_ids]}


def drain(messages: Sequence[Mapping[str, Any]], chain: AuditTrail) -> DrainResult:
    """Append the events of an SQS batch (`event["Records"]`) to `chain`, each once."""
    events: list[AuditEvent] = []
    appended_ids: list[str] = []
    unreadable: list[str] = []
    for message in messages:
        message_id = str(message.get("messageId", ""))
        try:
            events.append(event_of(str(message["body"])))
            appended_ids.append(message_id)
        except (KeyError, ValueError):
            logger.error("Audit message is not an audit event", extra={"message_id": message_id})
            unreadable.append(message_id)
    try:
        records = chain.append_many(events)
    except (AuditUnavailableError, AuditIntegrityError) as error:
        logger.error("Audit batch not appended; delivering it again", extra={"reason": error.message})
        return DrainResult(appended=0, duplicates=0, failed_message_ids=[*appended_ids, *unreadable])
    return DrainResult(appended=len(records), duplicates=len(events) - len(records), failed_message_ids=unreadable)
