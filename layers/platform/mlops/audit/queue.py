"""Sending audit events to the audit queue: how every function but the audit writer records what it did.

A request path cannot answer before its audit record is durable, and it must not hold write access to the audit
table (a compromised writer could rewrite the newest records). So it sends its events to an SQS queue (stored
redundantly once `SendMessageBatch` answers) and the audit writer function, the table's only writer, drains the
queue into the hash chain (`mlops.audit.writer`). Each message carries one event with its `event_id`, which the
writer appends once however often the message is delivered.

A send that fails after its retries raises `AuditUnavailableError` (a retryable 503 for API callers): the caller
must not act (serve, approve, delete) without its record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from mlops.audit.records import AuditEvent
from mlops.core import retries
from mlops.core.canonical_json import canonical_dumps
from mlops.core.errors import AuditUnavailableError

MAX_BATCH_ENTRIES = 10  # SQS SendMessageBatch
MAX_BATCH_BYTES = 256 * 1024  # SQS's limit on a batch's total payload (kept although single messages may be larger)


class AuditLog(Protocol):
    """Where a component records its audit events: the queue for every function, the chain for the writer."""

    def append(self, event: AuditEvent) -> object: ...

    def append_many(self, events: Sequence[AuditEvent]) -> object: ...


def message_body(event: AuditEvent) -> str:
    """The body of the message that carries one event: its canonical JSON."""
    return canonical_dumps(event.model_dump(mode="json"))


def event_of(body: str) -> AuditEvent:
    """The event a queued message carries (`ValueError` if it carries none)."""
    return AuditEvent.model_validate_json(body)


class AuditQueue:
    """Sends audit events to the audit queue, in batches of at most 10 messages and 256 KiB.

    `sqs_client` is a low-level boto3 client (botocore's standard retry mode retries throttling first). Entries a
    batch reports failed, and transient errors of the call itself, are sent again (`max_attempts` sends, jittered
    backoff); then `AuditUnavailableError` says how many events were queued. A resent entry may reach the queue
    twice (a lost response): the writer appends its event once.
    """

    def __init__(
        self,
        queue_url: str,
        sqs_client: Any,
        *,
        max_attempts: int = retries.DEFAULT_ATTEMPTS,
        sleep: Callable[[float], None] = retries.sleep,
    ) -> None:
        self.queue_url = queue_url
        self._sqs = sqs_client
        self._max_attempts = max(1, max_attempts)
        self._sleep = sleep

    def append(self, event: AuditEvent) -> None:
        self.append_many([event])

    def append_many(self, events: Sequence[AuditEvent]) -> None:
        """Queue every event (one message each) or raise `AuditUnavailableError`."""
        bodies = [message_body(event) for event in events]
        queued = 0
        for batch in _batches(bodies):
            try:
                self._send(batch)
            except AuditUnavailableError as error:
                raise AuditUnavailableError(
                    field=error.field,
                    message=f"{error.message} ({queued} of {len(bodies)} events were queued)",
                ) from error
            queued += len(batch)

    def _send(self, bodies: list[str]) -> None:
        pending = {str(index): body for index, body in enumerate(bodies)}
        for attempt in range(1, self._max_attempts + 1):
            entries = [{"Id": entry_id, "MessageBody": body} for entry_id, body in pending.items()]
            try:
                response = self._sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as error:
                reason = retries.error_code(error)
                if not retries.is_transient(error):  # e.g. the queue is gone or access denied: no retry helps
                    raise AuditUnavailableError(
                        field="audit_queue", message=f"the audit queue refused the records ({reason})"
                    ) from error
            else:
                failed = response.get("Failed", [])
                if not failed:
                    return
                sender_faults = [entry for entry in failed if entry.get("SenderFault")]
                if sender_faults:  # the message itself was refused: sending it again cannot help
                    raise AuditUnavailableError(
                        field="audit_queue",
                        message=f"the audit queue refused a record ({sender_faults[0].get('Code', 'SenderFault')})",
                    )
                pending = {entry["Id"]: pending[entry["Id"]] for entry in failed}
                reason = str(failed[0].get("Code", "Failed"))
            if attempt < self._max_attempts:
                self._sleep(retries.backoff_delay(attempt))
        raise AuditUnavailableError(
            field="audit_queue",
            message=f"the audit queue failed {self._max_attempts} times ({reason}); the records were not all queued",
        )


def _batches(bodies: list[str]) -> list[list[str]]:
    """Consecutive bodies in batches of at most `MAX_BATCH_ENTRIES` messages and `MAX_BATCH_BYTES` bytes."""
    batches: list[list[str]] = []
    size = 0
    for body in bodies:
        length = len(body.encode("utf-8"))
        if not batches or len(batches[-1]) == MAX_BATCH_ENTRIES or size + length > MAX_BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(body)
        size += length
    return batches
