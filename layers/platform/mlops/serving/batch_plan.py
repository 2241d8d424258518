"""Batch scoring beyond one machine: a large CSV in S3 split into byte-range chunks at row boundaries.

The batch-scoring state machine plans the chunks (`plan_chunks`), scores each in its own Lambda through a
Step Functions Distributed Map (`mlops.serving.batch.score_chunk`) and joins the scored parts in plan order
(`join_parts`), so the output equals `make score` on the same file. The join then leaves the run's one audit
record (`join_and_audit`): the SHA-256 of the input and of the output, the rows and the model version. The
plan pins the input's S3 version, so every chunk and that hash read the same bytes. Only boto3 and pydantic
here: planning and joining run in small functions; scoring needs pandas and the model.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from mlops.audit.events import batch_scoring_event
from mlops.audit.queue import AuditLog
from mlops.core.errors import DataValidationError, ModelUnavailableError
from mlops.core.observability import logger
from mlops.registry.store import ModelRegistry

WORK_PREFIX = "batch-scoring"
"""Where a run keeps its manifest and scored parts in the data bucket (`<prefix>/<run id>/`)."""

_PROBE_BYTES = 64 * 1024  # read this far past a cut to find the end of its row
_MIN_COPY_PART = 5 * 1024 * 1024  # S3's smallest multipart part (all but the last)
_HASH_READ_BYTES = 8 * 1024 * 1024  # an object is hashed as it streams, this much at a time


class BatchScoringRequest(BaseModel):
    """The input of a batch-scoring execution (events/batch_scoring.json)."""

    model_config = ConfigDict(extra="forbid")

    input_key: str = Field(min_length=1, description="CSV of customers in the data bucket (a header row first).")
    output_key: str = Field(min_length=1, description="Where the scores go in the data bucket.")
    chunk_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, description="Target size of one chunk.")


class ChunkPlan(BaseModel):
    index: int = Field(ge=0)
    start_byte: int = Field(ge=0)
    end_byte: int = Field(ge=0, description="Inclusive: the chunk ends with a full row.")


class BatchPlan(BaseModel):
    run_id: str
    bucket: str
    input_key: str
    input_version_id: str | None = Field(
        default=None,
        description="The input's S3 version when planned (a versioned bucket): every chunk reads it, and so does "
        "the audit record's hash, even if the key is overwritten during the run.",
    )
    output_key: str
    header: str = Field(description="The CSV header row, given to every chunk.")
    model_version: str = Field(description="Every chunk is scored by this version, even if production moves.")
    manifest_key: str = Field(description="JSON list of the chunks (the Distributed Map's item reader).")
    parts_prefix: str
    chunks: int


class BatchScoringResult(BaseModel):
    """What JoinParts returns (the execution's `result`): what its audit record holds, in short."""

    rows: int
    output_key: str
    model_version: str
    input_sha256: str
    output_sha256: str


class StoredObject(NamedTuple):
    """An S3 object as the audit record names it."""

    bucket: str
    key: str
    version_id: str | None
    """None in a bucket without versions."""
    sha256: str


def part_key(plan: BatchPlan, index: int) -> str:
    return f"{plan.parts_prefix}part-{index:05d}.csv"


def input_object(plan: BatchPlan) -> dict[str, str]:
    """`get_object`'s arguments for the planned input: its planned version when the bucket keeps versions."""
    version = {"VersionId": plan.input_version_id} if plan.input_version_id else {}
    return {"Bucket": plan.bucket, "Key": plan.input_key, **version}


def plan_chunks(
    s3: Any, bucket: str, request: BatchScoringRequest, run_id: str, model_version: str, work_prefix: str
) -> BatchPlan:
    """Cut the file into chunks of about `chunk_bytes`, each ending at a row boundary (no row holds a newline
    inside quotes: the data sets are plain CSV), and write the manifest the Map reads."""
    head = s3.head_object(Bucket=bucket, Key=request.input_key)
    size, version = head["ContentLength"], head.get("VersionId")
    source = {"Bucket": bucket, "Key": request.input_key, **({"VersionId": version} if version else {})}
    first = _read(s3, source, 0, min(size, _PROBE_BYTES) - 1)
    if b"\n" not in first:
        raise DataValidationError(field="input_key", message="no header row ending with a newline in the first 64 KiB")
    header_end = first.index(b"\n")
    chunks: list[ChunkPlan] = []
    start = header_end + 1
    while start < size:
        end = min(start + request.chunk_bytes, size) - 1
        if end < size - 1:
            probe = _read(s3, source, end, min(end + _PROBE_BYTES, size) - 1)
            newline = probe.find(b"\n")
            end = size - 1 if newline < 0 else end + newline
        chunks.append(ChunkPlan(index=len(chunks), start_byte=start, end_byte=end))
        start = end + 1
    prefix = f"{work_prefix}/{run_id}"
    plan = BatchPlan(
        run_id=run_id,
        bucket=bucket,
        input_key=request.input_key,
        input_version_id=version,
        output_key=request.output_key,
        header=first[:header_end].decode("utf-8").rstrip("\r"),
        model_version=model_version,
        manifest_key=f"{prefix}/manifest.json",
        parts_prefix=f"{prefix}/parts/",
        chunks=len(chunks),
    )
    manifest = json.dumps([chunk.model_dump() for chunk in chunks]).encode()
    s3.put_object(Bucket=bucket, Key=plan.manifest_key, Body=manifest, ContentType="application/json")
    return plan


def plan_production_batch(
    s3: Any,
    bucket: str,
    request: BatchScoringRequest,
    run_id: str,
    registry: ModelRegistry,
    model_name: str,
    work_prefix: str = WORK_PREFIX,
) -> BatchPlan:
    """`plan_chunks` for the version production serves now: the whole run is scored by it, even if production
    moves meanwhile. Refused (ModelUnavailableError) when no version is deployed."""
    production = registry.get_production(model_name)
    if production is None:
        raise ModelUnavailableError(field="model", message=f"no version of {model_name} is deployed")
    return plan_chunks(s3, bucket, request, run_id, production.version, work_prefix)


def join_parts(s3: Any, plan: BatchPlan) -> int:
    """Concatenate the scored parts in plan order into the output (only part 0 carries the header); a missing
    part fails the run, whatever the Map reported. Parts of at least 5 MiB are joined inside S3 (a multipart
    upload copying each part), so a 100-million-row output never passes through the function; smaller
    outputs are joined in memory. Returns the number of scored rows, which each part records."""
    parts = []
    for index in range(plan.chunks):
        try:
            parts.append(s3.head_object(Bucket=plan.bucket, Key=part_key(plan, index)))
        except s3.exceptions.ClientError:
            raise DataValidationError(
                field="chunks", message=f"chunk {index} of {plan.chunks} was not scored"
            ) from None
    rows = sum(int(part["Metadata"]["rows"]) for part in parts)
    if all(part["ContentLength"] >= _MIN_COPY_PART for part in parts[:-1]) and len(parts) > 1:
        _copy_in_order(s3, plan)
    else:
        body = b"".join(
            s3.get_object(Bucket=plan.bucket, Key=part_key(plan, i))["Body"].read() for i in range(plan.chunks)
        )
        s3.put_object(Bucket=plan.bucket, Key=plan.output_key, Body=body, ContentType="text/csv")
    return rows


def join_and_audit(s3: Any, plan: BatchPlan, audit: AuditLog, actor: str) -> BatchScoringResult:
    """JoinParts: join the parts (`join_parts`), then append the run's one audit record (`batch_scoring`
    event, entity `batch:<run id>`): the model version, the rows, and the input's and the output's bucket,
    key, S3 version and SHA-256, each object hashed as stored (read once more, both at once, streamed). If the
    record cannot be appended (or an object cannot be read), the output is deleted and the run fails: no
    scores without their audit record. `actor`: the execution that ran the plan."""
    rows = join_parts(s3, plan)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:  # both objects are read at once
            reading_input = pool.submit(_stored_object, s3, input_object(plan))
            reading_output = pool.submit(_stored_object, s3, {"Bucket": plan.bucket, "Key": plan.output_key})
            source, scores = reading_input.result(), reading_output.result()
        audit.append(
            batch_scoring_event(
                plan.run_id,
                actor,
                model_version=plan.model_version,
                rows=rows,
                input_object=source._asdict(),
                output_object=scores._asdict(),
            )
        )
    except Exception:
        _withdraw_output(s3, plan)
        raise
    return BatchScoringResult(
        rows=rows,
        output_key=plan.output_key,
        model_version=plan.model_version,
        input_sha256=source.sha256,
        output_sha256=scores.sha256,
    )


def _stored_object(s3: Any, location: dict[str, str]) -> StoredObject:
    """An object as stored, its SHA-256 computed as it streams (never held in memory whole)."""
    response = s3.get_object(**location)
    digest = hashlib.sha256()
    for block in response["Body"].iter_chunks(chunk_size=_HASH_READ_BYTES):
        digest.update(block)
    return StoredObject(location["Bucket"], location["Key"], response.get("VersionId"), digest.hexdigest())


def _withdraw_output(s3: Any, plan: BatchPlan) -> None:
    """Best effort: a failed delete is logged, and the run fails all the same."""
    try:
        s3.delete_object(Bucket=plan.bucket, Key=plan.output_key)
    except (ClientError, BotoCoreError) as error:
        logger.error("Unaudited batch output not deleted", extra={"run_id": plan.run_id, "error": type(error).__name__})


def _copy_in_order(s3: Any, plan: BatchPlan) -> None:
    upload = s3.create_multipart_upload(Bucket=plan.bucket, Key=plan.output_key, ContentType="text/csv")
    try:
        etags = [
            s3.upload_part_copy(
                Bucket=plan.bucket,
                Key=plan.output_key,
                UploadId=upload["UploadId"],
                PartNumber=index + 1,
                CopySource={"Bucket": plan.bucket, "Key": part_key(plan, index)},
            )["CopyPartResult"]["ETag"]
            for index in range(plan.chunks)
        ]
        s3.complete_multipart_upload(
            Bucket=plan.bucket,
            Key=plan.output_key,
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": n + 1} for n, etag in enumerate(etags)]},
        )
    except Exception:
        s3.abort_multipart_upload(Bucket=plan.bucket, Key=plan.output_key, UploadId=upload["UploadId"])
        raise


def _read(s3: Any, source: dict[str, str], first: int, last: int) -> bytes:
    return s3.get_object(**source, Range=f"bytes={first}-{last}")["Body"].read()
