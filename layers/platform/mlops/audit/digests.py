"""Chained digests of the audit chains in S3, like CloudTrail's log-file integrity validation.

A digest, `<prefix>/<chain>/<last sequence, 12 digits>.json`, pins a chain's newest record hash at one moment and
names the digest before it with the SHA-256 of its bytes, so the digests of a chain form a chain of their own.
The records alone cannot show a tail rewritten consistently (hashes recomputed, head moved along); the digest
written before the rewrite does (`mlops.audit.verification`). A digest is written once (a conditional put) and
only for an intact chain, into a bucket under S3 Object Lock (compliance mode), so it cannot be overwritten or
deleted before its retention ends. The hourly job (`write_digests`) digests every registered chain and records
each new digest (its key and SHA-256) in the audit trail itself (`digest_event`, through the audit queue): the
newest digest of each chain is then kept where neither the digest job nor any writer of records can change it,
and verify notices when the newest digests are deleted.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from mlops.audit.integrity import ChainWalker, marker_break
from mlops.audit.records import HEX64, AuditEvent, AuditEventType, AuditRecord, compute_hash
from mlops.audit.table import SEQ_DIGITS, ChainTable, RetryingDynamoDB, position, registered_chains
from mlops.core import retries
from mlops.core.canonical_json import canonical_dumps
from mlops.core.clock import timestamp_at
from mlops.core.errors import AuditIntegrityError, InvalidRequestError

DEFAULT_DIGEST_PREFIX = "audit-digests"


class AuditDigest(BaseModel):
    """What a digest file attests: a chain's newest record at one moment, chained to the digest before it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain: str
    first_sequence: int = Field(ge=1)
    last_sequence: int = Field(ge=1)
    head_hash: str = Field(pattern=HEX64)
    created_at: str
    previous_digest_key: str | None
    previous_digest_sha256: str | None
    records_since_previous: int = Field(ge=1)


class DigestRef(BaseModel):
    bucket: str
    key: str
    sha256: str = Field(description="SHA-256 of the digest object's bytes")
    digest: AuditDigest


class DigestRun(BaseModel):
    """What one run of the digest job did: the digests it wrote (their keys) and the broken chains it refused."""

    written: list[str] = Field(default_factory=list)
    digests: list[DigestRef] = Field(default_factory=list, description="each chain's newest digest, written or kept")
    refusals: dict[str, str] = Field(default_factory=dict, description="refused chain -> why it is broken")

    @property
    def refused(self) -> list[str]:
        return list(self.refusals)


def write_digests(
    table_name: str,
    dynamodb_client: Any,
    s3_client: Any,
    bucket: str,
    prefix: str = DEFAULT_DIGEST_PREFIX,
    *,
    clock: Callable[[], float] = time.time,
    max_attempts: int = 5,
    sleep: Callable[[float], None] = retries.sleep,
) -> DigestRun:
    """A digest of every registered chain that has records; a broken chain is refused (with the reason), the
    others are still digested."""
    dynamo = RetryingDynamoDB(dynamodb_client, max_attempts, sleep)
    run = DigestRun()
    for name in registered_chains(table_name, dynamo):
        chain = ChainTable(table_name, dynamo, name)
        if chain.newest().sequence == 0:
            continue  # nothing to pin yet
        try:
            ref = write_digest(chain, s3_client, bucket, prefix, clock=clock)
        except AuditIntegrityError as error:  # never vouch for a broken chain; keep digesting the others
            run.refusals[name] = error.message
            continue
        run.written.append(ref.key)
        run.digests.append(ref)
    return run


def digest_entity(chain: str) -> str:
    """The audit entity of a chain's digests: `audit_chain:<chain>`."""
    return f"audit_chain:{chain}"


def digest_event(ref: DigestRef, actor: str) -> AuditEvent:
    """The audit record of a digest written: which chain, which object, its SHA-256 and the sequence it attests.
    Its `event_id` derives from the digest's key, so a digest recorded again (every hourly run records each
    chain's newest) is written to the trail once."""
    return AuditEvent(
        event_type=AuditEventType.AUDIT_DIGEST,
        entity=digest_entity(ref.digest.chain),
        actor=actor,
        event_id=hashlib.sha256(f"{ref.bucket}/{ref.key}".encode()).hexdigest()[:32],
        details={"key": ref.key, "sha256": ref.sha256, "last_sequence": ref.digest.last_sequence},
    )


def write_digest(
    chain: ChainTable,
    s3_client: Any,
    bucket: str,
    prefix: str = DEFAULT_DIGEST_PREFIX,
    *,
    clock: Callable[[], float] = time.time,
) -> DigestRef:
    """Write `<prefix>/<chain>/<last sequence>.json` attesting the newest record, chained to the last digest.

    The record the previous digest attested must still hold its hash, and the records since must be intact,
    link to it and match the markers the writer sealed their events with, so a digest never vouches for a chain
    already broken; the head item must not be ahead
    of the records or disagree with them. Nothing new since the last digest: it is returned as is. Digests
    must be written by one scheduled writer.
    """
    head = chain.head_item()
    keys = digest_keys(s3_client, bucket, prefix, chain.chain)
    previous = read_digest(s3_client, bucket, keys[-1]) if keys else None
    items = chain.record_items(previous.digest.last_sequence if previous else 1)
    walker = ChainWalker(chain.chain)
    if previous is not None:
        _check_attested(next(items, None), previous, chain.chain)
        walker = ChainWalker(chain.chain, previous.digest.last_sequence, previous.digest.head_hash)
    start = walker.last_sequence
    hash_at_head: str | None = None
    sealed = []
    for item in items:
        broken = walker.check(item)
        if broken is not None:
            raise AuditIntegrityError(field="chain", message=f"{broken.reason}: {broken.detail}; no digest written")
        if head is not None and walker.last_sequence == head.sequence:
            hash_at_head = walker.previous_hash
        sealed.append(walker.sealed())
    if (broken := marker_break(chain, sealed)) is not None:  # a tail rewritten consistently since the last digest
        raise AuditIntegrityError(field="chain", message=f"{broken.reason}: {broken.detail}; no digest written")
    if walker.last_sequence == 0:
        raise InvalidRequestError(field="chain", message=f"chain {chain.chain} has no records to digest")
    if head is not None and head.sequence > walker.last_sequence:
        raise AuditIntegrityError(
            field="chain",
            message=f"the head is at {head.sequence} but the records end at {walker.last_sequence}; no digest written",
        )
    if head is not None and head.sequence > start and hash_at_head != head.record_hash:
        raise AuditIntegrityError(
            field="chain", message=f"the head disagrees with record {head.sequence}; no digest written"
        )
    if previous is not None and walker.last_sequence == previous.digest.last_sequence:
        return previous
    digest = AuditDigest(
        chain=chain.chain,
        first_sequence=start + 1,
        last_sequence=walker.last_sequence,
        head_hash=walker.previous_hash,
        created_at=timestamp_at(clock()),
        previous_digest_key=previous.key if previous else None,
        previous_digest_sha256=previous.sha256 if previous else None,
        records_since_previous=walker.last_sequence - start,
    )
    body = canonical_dumps(digest.model_dump(mode="json")).encode("utf-8")
    key = digest_key(prefix, chain.chain, digest.last_sequence)
    try:
        s3_client.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*"
        )  # write-once: a digest is never replaced
    except ClientError as error:
        if retries.error_code(error) not in {"PreconditionFailed", "ConditionalRequestConflict"}:
            raise
        existing = read_digest(s3_client, bucket, key)  # another writer attested the same record
        if existing.digest.head_hash != digest.head_hash:
            raise AuditIntegrityError(field="chain", message=f"digest {key} attests another hash") from error
        return existing
    return DigestRef(bucket=bucket, key=key, sha256=hashlib.sha256(body).hexdigest(), digest=digest)


def digest_key(prefix: str, chain: str, last_sequence: int) -> str:
    return f"{prefix}/{chain}/{last_sequence:0{SEQ_DIGITS}d}.json"


def digest_keys(s3_client: Any, bucket: str, prefix: str, chain: str) -> list[str]:
    """The keys of a chain's digests, oldest first."""
    folder = f"{prefix}/{chain}/"
    keys: list[str] = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
        keys.extend(obj["Key"] for obj in page.get("Contents", []) if _digest_sequence(obj["Key"], folder))
    return sorted(keys)  # zero-padded names: lexicographic order is sequence order


def read_digest(s3_client: Any, bucket: str, key: str) -> DigestRef:
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        digest = AuditDigest.model_validate_json(body)
    except ValueError as error:
        raise AuditIntegrityError(field="digest", message=f"digest {key} is not a valid digest") from error
    return DigestRef(bucket=bucket, key=key, sha256=hashlib.sha256(body).hexdigest(), digest=digest)


def _digest_sequence(key: str, folder: str) -> int | None:
    name = key.removeprefix(folder).removesuffix(".json")
    if not key.startswith(folder) or not key.endswith(".json") or len(name) != SEQ_DIGITS or not name.isdigit():
        return None
    return int(name)


def _check_attested(item: Mapping[str, Any] | None, previous: DigestRef, chain: str) -> None:
    """The record a digest attested must still be there, intact, with the attested hash."""
    sequence = previous.digest.last_sequence
    if item is None or position(item) != sequence:
        raise AuditIntegrityError(
            field="chain",
            message=f"record {sequence}, attested by digest {previous.key}, is missing; no digest written",
        )
    try:
        document = json.loads(item["document"]["S"])
        record = AuditRecord.model_validate(document)
        intact = compute_hash(document) == record.record_hash == previous.digest.head_hash and record.chain == chain
    except (KeyError, TypeError, ValueError):
        intact = False
    if not intact:
        raise AuditIntegrityError(
            field="chain", message=f"record {sequence} differs from digest {previous.key}; no digest written"
        )
