"""Appending to the audit trail: hash chains on DynamoDB, one per writer, each sequence slot written once.

Chains. A table holds any number of independent chains. Give every writer its own chain - `writer_chain("scoring")`
once per Lambda execution environment - so concurrent containers never contend for the same sequence numbers; a
chain may still have several writers (they then take turns, see "Appending"). Each chain registers itself once
(before its first record) in the chain registry, so `AuditTrail.chains` lists them with one Query and
`verify_chains` checks them all.

Appending: the sequence slot is the lock. A writer seals the next record from the newest record it knows
(sequence n+1, previous_hash = hash of n) and writes it in one transaction of two conditional puts: the record,
conditioned on the slot being free, and the event's marker (`AUDIT_EVENT#<event_id>`), conditioned on the event
never having been recorded. If another writer took the slot, it reads the chain's newest record (a Query, newest
first, Limit 1), re-seals after it and tries again (bounded, jittered backoff). A slot is written once and slot
n+1 only after slot n, so a chain can neither fork nor get a gap. An event whose marker exists is skipped: a
queued event delivered twice (`mlops.audit.queue`) is recorded once, in whichever chain took it first. After
the records, the head item is moved forward best-effort (an UpdateItem that never moves it back); a failed head
update does not fail the append. A trail object caches the newest record it knows: a fresh object learns it
from the records, never from the head.

Only the audit writer function appends (its role is the only one allowed to write the table); every other
function queues its events.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mlops.audit import digests, verification
from mlops.audit.digests import DEFAULT_DIGEST_PREFIX, DigestRef
from mlops.audit.records import AuditEvent, AuditRecord, seal
from mlops.audit.table import (
    CONDITION_FAILED,
    HEAD_SK,
    TRANSACTION_CANCELED,
    ChainTable,
    Head,
    RetryingDynamoDB,
    registered_chains,
)
from mlops.audit.verification import ChainVerification
from mlops.core import retries
from mlops.core.clock import timestamp_at
from mlops.core.errors import AuditUnavailableError, InvalidRequestError

_LOG = logging.getLogger(__name__)
_WRITER_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,51}")  # leaves room for "-" and 12 hex digits


def writer_chain(prefix: str) -> str:
    """A new chain name, `<prefix>-<12 hex digits>`: one chain per execution environment, so concurrent Lambda
    containers never contend. Call it once per process (at module level of a handler), not once per request."""
    if not isinstance(prefix, str) or not _WRITER_PREFIX_PATTERN.fullmatch(prefix):
        raise InvalidRequestError(field="prefix", message="a chain prefix is 1-51 letters, digits, '_', '.' or '-'")
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class AuditTrail:
    """One hash chain of audit records on DynamoDB.

    `dynamodb_client` is a low-level boto3 client; create it with botocore's standard retry mode so that
    throttling is first retried inside botocore. On top of that, transient failures are retried here
    (`max_attempts` times, jittered exponential backoff) before `AuditUnavailableError` is raised; so is a slot
    taken by another writer of the same chain (`max_attempts` times). Not thread-safe: one object per thread.
    """

    def __init__(
        self,
        table_name: str,
        dynamodb_client: Any,
        chain: str = "main",
        clock: Callable[[], float] = time.time,
        *,
        max_attempts: int = 5,
        sleep: Callable[[float], None] = retries.sleep,
    ) -> None:
        self._table = ChainTable(table_name, RetryingDynamoDB(dynamodb_client, max_attempts, sleep), chain)
        self.table_name = table_name
        self.chain = chain
        self._ddb = dynamodb_client
        self._clock = clock
        self._max_attempts = max(1, max_attempts)
        self._sleep = sleep
        self._known_head: Head | None = None  # the newest record this object knows: saves a read per append
        self._registered = False  # whether this object saw the chain in the registry

    @staticmethod
    def chains(
        table_name: str, dynamodb_client: Any, *, max_attempts: int = 5, sleep: Callable[[float], None] = retries.sleep
    ) -> list[str]:
        """Every chain registered in the table, sorted by name (one Query, paginated)."""
        return registered_chains(table_name, RetryingDynamoDB(dynamodb_client, max_attempts, sleep))

    # ------------------------------------------------------------------ appending
    def append(self, event: AuditEvent) -> AuditRecord | None:
        """Seal one event into the chain and store it (one transaction); returns the stored record, or None when
        the event was already recorded (by this chain or another)."""
        appended = self.append_many([event])
        return appended[0] if appended else None

    def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Seal events into the chain in the given order, one transaction each, and return the records stored
        (events already recorded are skipped).

        Not atomic: each record links to the one before it and slot n+1 is only written once slot n is, so a
        failure midway leaves a valid prefix (no gap), and the error says how many events were appended. Other
        writers of the same chain may interleave their records with these. The head item is moved once, after
        the last record appended.
        """
        events = list(events)
        if not events:
            return []
        if not self._registered:  # before the first record, so no chain with records is unlisted
            self._table.register(self._now())
            self._registered = True
        appended: list[AuditRecord] = []
        try:
            for event in events:
                if (record := self._append_one(event)) is not None:
                    appended.append(record)
        except AuditUnavailableError as error:
            if not appended:
                raise
            raise AuditUnavailableError(
                field=error.field,
                message=f"{error.message} ({len(appended)} of {len(events)} events were already appended)",
            ) from error
        finally:
            if appended:
                self._advance_head(appended[-1])
        return appended

    def _append_one(self, event: AuditEvent) -> AuditRecord | None:
        head = self._known_head or self._read_latest()
        record = seal(self.chain, head.sequence + 1, event, self._now(), head.record_hash)
        failures = conflicts = 0
        ambiguous = False  # an attempt at this slot may have been applied although its response was lost
        while True:
            try:
                self._ddb.transact_write_items(TransactItems=self._table.append_items(record))
                break
            except (ClientError, BotoCoreError) as error:
                slot_taken, recorded = _cancellation(error)
                if slot_taken and self._slot_holds(record, error):
                    break  # our own earlier attempt, whose response was lost: appending again would duplicate
                if recorded:
                    return None  # the event is already in the trail (a redelivered message): recorded once
                if slot_taken:
                    conflicts += 1  # another writer took the slot (so no earlier attempt of ours landed)
                    if conflicts == self._max_attempts:
                        raise AuditUnavailableError(
                            field="audit_trail",
                            message=f"chain {self.chain} kept moving under {conflicts} attempts to append; "
                            "the event was not appended",
                        ) from None
                    self._sleep(retries.backoff_delay(conflicts))
                    head = self._read_latest()
                    record = seal(self.chain, head.sequence + 1, event, self._now(), head.record_hash)
                    failures, ambiguous = 0, False
                    continue
                kind = (
                    "rejected" if retries.error_code(error) == TRANSACTION_CANCELED else retries.transient_kind(error)
                )
                if kind is None:
                    raise
                failures += 1
                ambiguous = ambiguous or kind == "ambiguous"
                if failures == self._max_attempts:
                    outcome = "may or may not have been appended" if ambiguous else "was not appended"
                    raise AuditUnavailableError(
                        field="audit_trail",
                        message=f"DynamoDB failed {failures} times ({retries.error_code(error)}); the event {outcome}",
                    ) from error
                self._sleep(retries.backoff_delay(failures))
        self._known_head = Head(sequence=record.sequence, record_hash=record.record_hash)
        return record

    def _slot_holds(self, record: AuditRecord, error: BaseException) -> bool:
        """Whether the slot the record was meant for already holds exactly this record."""
        reasons = error.response.get("CancellationReasons") if isinstance(error, ClientError) else None
        item = reasons[0].get("Item") if reasons else None
        if item is None:  # older endpoints do not return the item that failed the condition
            item = self._table.record_item(record.sequence)
        try:
            return item is not None and AuditRecord.model_validate_json(item["document"]["S"]) == record
        except (KeyError, TypeError, ValueError):
            return False

    def _advance_head(self, record: AuditRecord) -> None:
        """Move the head item to the record unless it is already there or beyond; best-effort."""
        try:
            self._ddb.update_item(
                TableName=self.table_name,
                Key=self._table.key(HEAD_SK),
                UpdateExpression="SET #sequence = :n, record_hash = :h, updated_at = :at",
                ConditionExpression="attribute_not_exists(pk) OR #sequence < :n",
                ExpressionAttributeNames={"#sequence": "sequence"},
                ExpressionAttributeValues={
                    ":n": {"N": str(record.sequence)},
                    ":h": {"S": record.record_hash},
                    ":at": {"S": record.recorded_at},
                },
            )
        except (ClientError, BotoCoreError) as error:
            if retries.error_code(error) != CONDITION_FAILED:  # else another writer already moved it further
                _LOG.warning(
                    "audit chain %s: the head was not moved to %d (%s); the record itself is stored",
                    self.chain,
                    record.sequence,
                    retries.error_code(error),
                )

    # ------------------------------------------------------------------ reading, verifying, digesting
    def head(self) -> tuple[int, str]:
        """The newest record's sequence and hash, read from the records ((0, GENESIS_HASH) for an empty chain)."""
        head = self._read_latest()
        return head.sequence, head.record_hash

    def _read_latest(self) -> Head:
        """The chain's newest record, remembered for the next append."""
        self._known_head = self._table.newest()
        return self._known_head

    def verify(
        self,
        digest_s3_client: Any = None,
        bucket: str | None = None,
        prefix: str = DEFAULT_DIGEST_PREFIX,
    ) -> ChainVerification:
        """Walk the whole chain and report the first place where it is not intact (see
        `mlops.audit.verification.verify_chain`), against the digests too with `digest_s3_client` and `bucket`."""
        return verification.verify_chain(self._table, digest_s3_client, bucket, prefix)

    def write_digest(self, s3_client: Any, bucket: str, prefix: str = DEFAULT_DIGEST_PREFIX) -> DigestRef:
        """Write `<prefix>/<chain>/<last sequence>.json` attesting the newest record, chained to the last digest
        (see `mlops.audit.digests.write_digest`: never for a broken chain)."""
        return digests.write_digest(self._table, s3_client, bucket, prefix, clock=self._clock)

    def _now(self) -> str:
        return timestamp_at(self._clock())


def _cancellation(error: BaseException) -> tuple[bool, bool]:
    """For a cancelled append transaction: (the slot was taken, the event was already recorded)."""
    if not isinstance(error, ClientError) or retries.error_code(error) != TRANSACTION_CANCELED:
        return False, False
    codes = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
    failed = [code == "ConditionalCheckFailed" for code in codes] + [False, False]
    return failed[0], failed[1]
