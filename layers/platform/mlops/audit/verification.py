"""Verifying the audit chains: the records against their hashes and links, the head, the digests, the registry.

The records are the truth, the head is a hint that may lag behind (a failed head update, or records appended
while verifying), never run ahead. A head beyond the newest record shows a truncated tail; a head disagreeing
with the record at its sequence shows tampering. Because head updates are best-effort, a truncation right after
an append whose head update failed is only caught by the next digest (and one whose head was rolled back
consistently, only by a digest written before it).

`verify_chain` checks one chain (what `AuditTrail.verify` does), `verify_chains` every chain of a table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from mlops.audit.digests import (
    DEFAULT_DIGEST_PREFIX,
    AuditDigest,
    DigestRef,
    digest_entity,
    digest_key,
    digest_keys,
    read_digest,
)
from mlops.audit.integrity import BreakReason, BrokenLink, ChainWalker, head_break, marker_break
from mlops.audit.records import AuditEventType, AuditRecord
from mlops.audit.table import (
    BY_ENTITY_INDEX,
    CHAIN_PATTERN,
    ChainTable,
    Head,
    Marker,
    RetryingDynamoDB,
    registered_chains,
)
from mlops.core import retries
from mlops.core.errors import AuditIntegrityError, InvalidRequestError


class ChainBreak(BrokenLink):
    chain: str


class ChainVerification(BaseModel):
    chain: str
    valid: bool
    records_checked: int
    last_sequence: int = Field(default=0, description="the newest record checked (0 for an empty chain)")
    head_sequence: int = Field(description="the head item's sequence; 0 when the chain has no head item")
    digests_checked: int = 0
    first_broken: BrokenLink | None = None


class AuditVerification(BaseModel):
    """Every chain of a table, verified; `first_broken` is the first break of the first broken chain."""

    valid: bool
    chains: list[ChainVerification]
    records_checked: int
    first_broken: ChainBreak | None = None


def verify_chains(
    table_name: str,
    dynamodb_client: Any,
    digest_s3_client: Any = None,
    bucket: str | None = None,
    prefix: str = DEFAULT_DIGEST_PREFIX,
    *,
    max_attempts: int = 5,
    sleep: Callable[[float], None] = retries.sleep,
) -> AuditVerification:
    """`verify_chain` for every chain of the table, in name order.

    The chains are those of the registry and, with `digest_s3_client` and `bucket`, also those that have a
    digest folder: a chain removed from the registry is still verified (and reported `unregistered`).
    """
    if digest_s3_client is not None and bucket is None:
        raise InvalidRequestError(field="bucket", message="needed to check the digests")
    dynamo = RetryingDynamoDB(dynamodb_client, max_attempts, sleep)
    names = set(registered_chains(table_name, dynamo))
    if digest_s3_client is not None:
        names |= _digest_chains(digest_s3_client, str(bucket), prefix)
    results = [
        verify_chain(ChainTable(table_name, dynamo, chain), digest_s3_client, bucket, prefix) for chain in sorted(names)
    ]
    first = next((result for result in results if result.first_broken is not None), None)
    first_broken = (
        ChainBreak(chain=first.chain, **first.first_broken.model_dump())
        if first is not None and first.first_broken is not None
        else None
    )
    return AuditVerification(
        valid=first_broken is None,
        chains=results,
        records_checked=sum(result.records_checked for result in results),
        first_broken=first_broken,
    )


def verify_chain(
    chain: ChainTable,
    digest_s3_client: Any = None,
    bucket: str | None = None,
    prefix: str = DEFAULT_DIGEST_PREFIX,
) -> ChainVerification:
    """Walk the whole chain and report the first place where it is not intact.

    Checked for each record, in key order (the first failure wins):
    - its key is the next sequence, else `missing` at the first absent sequence;
    - its document is a valid record whose hash matches its content, else `modified`;
    - the document's own chain and sequence are this key's, else `reordered` (an intact record moved);
    - its previous_hash is the previous record's hash, else `modified` (a record was rewritten and rehashed);
    - its top-level attributes (copies used by queries and the GSIs) agree with the document, else `modified`.
    Then the head item, a hint that may lag behind the records but never runs ahead: if it is beyond the
    newest record, the records between are `missing` (a truncated tail); if the record at its sequence has
    another hash, `head_mismatch`. No head item at all is fine (head updates are best-effort).
    With `digest_s3_client` and `bucket`, the digests must be chained to each other (else `digest_mismatch`)
    and the chain must still hold, at each digest's last_sequence, the hash it recorded (else `modified`,
    or `missing` when the chain is now shorter): that catches a tail rewritten or truncated consistently.
    The newest digest the trail itself recorded for the chain (`mlops.audit.digests.digest_event`) must still
    be in S3 with the SHA-256 recorded (else `digest_missing`): deleting the newest digests is noticed too.
    Then every record must match the marker the writer wrote with it, in the same transaction (chain, sequence
    and hash; else `modified`): a tail rewritten consistently after the last digest is caught.
    Last, a chain with records must be in the chain registry (else `unregistered`: verify_chains would
    skip it). The head is read first, so records appended during the walk are not mistaken for tampering.
    """
    digests: list[tuple[str, AuditDigest]] = []
    digest_break: BrokenLink | None = None
    if digest_s3_client is not None:
        if bucket is None:
            raise InvalidRequestError(field="bucket", message="needed to check the digests")
        digests, digest_break = _load_digests(chain.chain, digest_s3_client, bucket, prefix)
        digest_break = digest_break or _recorded_digest_break(chain, digest_s3_client, bucket, prefix)
    head: Head | None = None
    broken_head: BrokenLink | None = None
    try:
        head = chain.head_item()
    except AuditIntegrityError as error:
        broken_head = BrokenLink(sequence=0, reason=BreakReason.HEAD_MISMATCH, detail=error.message)
    walker = ChainWalker(chain.chain)
    wanted = {digest.last_sequence for _, digest in digests} | ({head.sequence} if head else set())
    hashes_at: dict[int, str] = {}
    sealed: list[tuple[str, Marker]] = []  # each record's event, and where and how it sits in the chain

    def result(broken: BrokenLink | None) -> ChainVerification:
        return ChainVerification(
            chain=chain.chain,
            valid=broken is None,
            records_checked=walker.checked,
            last_sequence=walker.last_sequence,
            head_sequence=head.sequence if head else 0,
            digests_checked=len(digests),
            first_broken=broken,
        )

    for item in chain.record_items():
        broken = walker.check(item)
        if broken is not None:
            return result(broken)
        if walker.last_sequence in wanted:
            hashes_at[walker.last_sequence] = walker.previous_hash
        sealed.append(walker.sealed())
    broken = (
        broken_head
        or head_break(head, walker.last_sequence, hashes_at)
        or digest_break
        or _digest_break(digests, hashes_at, walker.last_sequence)
        or marker_break(chain, sealed)
    )
    if broken is None and (walker.checked or digests) and not chain.is_registered():
        broken = BrokenLink(
            sequence=0,
            reason=BreakReason.UNREGISTERED,
            detail=f"chain {chain.chain} holds records or digests but is not in the chain registry",
        )
    return result(broken)


def _load_digests(
    chain: str, s3_client: Any, bucket: str, prefix: str
) -> tuple[list[tuple[str, AuditDigest]], BrokenLink | None]:
    """Every digest of the chain, oldest first, with the first break in the chain of digests (if any)."""
    loaded: list[tuple[str, AuditDigest]] = []
    previous: DigestRef | None = None
    for key in digest_keys(s3_client, bucket, prefix, chain):
        try:
            ref = read_digest(s3_client, bucket, key)
        except AuditIntegrityError as error:
            return loaded, BrokenLink(sequence=0, reason=BreakReason.DIGEST_MISMATCH, detail=error.message)
        digest = ref.digest
        expected_first = previous.digest.last_sequence + 1 if previous else 1
        problem = None
        if key != digest_key(prefix, chain, digest.last_sequence) or digest.chain != chain:
            problem = "is not the digest its name says"
        elif digest.previous_digest_key != (previous.key if previous else None):
            problem = f"names {digest.previous_digest_key} as previous digest"
        elif digest.previous_digest_sha256 != (previous.sha256 if previous else None):
            problem = "does not match the previous digest's SHA-256 (that digest was altered)"
        elif digest.first_sequence != expected_first or digest.records_since_previous != (
            digest.last_sequence - digest.first_sequence + 1
        ):
            problem = "does not continue the previous digest's sequences"
        if problem is not None:
            detail = f"digest {key} {problem}"
            return loaded, BrokenLink(sequence=digest.last_sequence, reason=BreakReason.DIGEST_MISMATCH, detail=detail)
        loaded.append((key, digest))
        previous = ref
    return loaded, None


def _recorded_digest_break(chain: ChainTable, s3_client: Any, bucket: str, prefix: str) -> BrokenLink | None:
    """The newest digest of the chain that the trail recorded, if S3 no longer holds it as recorded."""
    response = chain.dynamo.call(
        "query",
        TableName=chain.table_name,
        IndexName=BY_ENTITY_INDEX,
        KeyConditionExpression="entity_pk = :entity",
        ExpressionAttributeValues={":entity": {"S": f"ENTITY#{digest_entity(chain.chain)}"}},
        ScanIndexForward=False,  # newest occurred_at first
    )
    recorded = [AuditRecord.model_validate_json(item["document"]["S"]).event for item in response.get("Items", [])]
    recorded = [event for event in recorded if event.event_type == AuditEventType.AUDIT_DIGEST]
    if not recorded:
        return None
    newest = max(recorded, key=lambda event: int(str(event.details.get("last_sequence", 0))))
    key, sha256 = str(newest.details.get("key")), newest.details.get("sha256")
    if key not in digest_keys(s3_client, bucket, prefix, chain.chain):
        return BrokenLink(
            sequence=int(str(newest.details.get("last_sequence", 0))),
            reason=BreakReason.DIGEST_MISSING,
            detail=f"digest {key}, recorded in the audit trail at {newest.occurred_at}, is no longer in the bucket",
        )
    if read_digest(s3_client, bucket, key).sha256 != sha256:
        return BrokenLink(
            sequence=int(str(newest.details.get("last_sequence", 0))),
            reason=BreakReason.DIGEST_MISMATCH,
            detail=f"digest {key} differs from the SHA-256 the audit trail recorded for it",
        )
    return None


def _digest_break(
    digests: list[tuple[str, AuditDigest]], hashes_at: dict[int, str], chain_end: int
) -> BrokenLink | None:
    """The first digest whose attested record the chain no longer holds."""
    previous_end = 0
    for key, digest in digests:
        if digest.last_sequence > chain_end:
            return BrokenLink(
                sequence=chain_end + 1,
                reason=BreakReason.MISSING,
                detail=f"digest {key} attests records up to {digest.last_sequence}; the chain ends at {chain_end}",
            )
        if hashes_at.get(digest.last_sequence) != digest.head_hash:
            return BrokenLink(
                sequence=digest.last_sequence,
                reason=BreakReason.MODIFIED,
                detail=(
                    f"record {digest.last_sequence} differs from digest {key} ({digest.created_at}): the chain was "
                    f"rewritten between records {previous_end + 1} and {digest.last_sequence}"
                ),
            )
        previous_end = digest.last_sequence
    return None


def _digest_chains(s3_client: Any, bucket: str, prefix: str) -> set[str]:
    """The chains that have a digest folder under `prefix`."""
    folder = f"{prefix}/"
    chains: set[str] = set()
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            name = common["Prefix"].removeprefix(folder).removesuffix("/")
            if CHAIN_PATTERN.fullmatch(name):
                chains.add(name)
    return chains
