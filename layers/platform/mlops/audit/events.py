"""What each component writes to the audit trail: one place that turns domain events into audit events.

Records carry ids, versions, hashes and decisions, never raw features: a prediction's inputs are kept as the
SHA-256 of their canonical JSON (`Prediction.input_sha256`), which proves what was scored without storing it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import JsonValue

from mlops.api.contracts import Explanation, Prediction
from mlops.audit.records import AuditEvent, AuditEventType
from mlops.audit.trail import AuditTrail, writer_chain
from mlops.core.canonical_json import canonical_dumps

PREDICTIONS_PER_RECORD = 100
"""A batch's predictions are audited in records of at most this many (each well under the 64 KiB event cap)."""


def audit_trail(table_name: str, dynamodb_client: Any, writer: str) -> AuditTrail:
    """This execution environment's own chain in the audit table (see `mlops.audit.trail`: one chain per writer)."""
    return AuditTrail(table_name, dynamodb_client, chain=writer_chain(writer))


def input_sha256(features: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the feature values a model scored."""
    # Feature values may be NaN or not JSON at all (a date): kept hashable as they have always been hashed.
    canonical = canonical_dumps(dict(features), allow_nan=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def prediction_events(predictions: Sequence[Prediction], actor: str, request_id: str) -> list[AuditEvent]:
    """One record for a single prediction (entity: the customer); batches in records of
    `PREDICTIONS_PER_RECORD` (entity: the API request)."""
    entries = [
        {
            "prediction_id": p.prediction_id,
            "customer_id": p.customer_id,
            "model_version": p.model_version,
            "variant": p.variant,
            "experiment_id": p.experiment_id,
            "input_sha256": p.input_sha256,
            "churn_probability": p.churn_probability,
            "churn_prediction": p.churn_prediction,
            "threshold": p.threshold,
        }
        for p in predictions
    ]
    return _request_events(AuditEventType.PREDICTION, "predictions", entries, actor, request_id)


def explanation_events(
    explanations: Sequence[Explanation], input_hashes: Sequence[str], actor: str, request_id: str
) -> list[AuditEvent]:
    """An explanation answers with a probability and a decision, so it is audited like a prediction: its id, the
    version, the SHA-256 of the inputs explained (`input_hashes`, one per explanation), the output and which
    features the reasons named (never their values, which the reasons' texts hold). Records as for predictions."""
    if len(explanations) != len(input_hashes):
        raise ValueError(f"{len(explanations)} explanations but {len(input_hashes)} input hashes")
    entries = [
        {
            "explanation_id": e.explanation_id,
            "customer_id": e.customer_id,
            "model_version": e.model_version,
            "input_sha256": input_hash,
            "churn_probability": e.churn_probability,
            "churn_prediction": e.churn_prediction,
            "threshold": e.threshold,
            "reasons": [f"{r.feature}:{r.direction}" for r in e.reasons],
        }
        for e, input_hash in zip(explanations, input_hashes, strict=True)
    ]
    return _request_events(AuditEventType.EXPLANATION, "explanations", entries, actor, request_id)


def _request_events(
    event_type: AuditEventType, plural: str, entries: list[dict[str, JsonValue]], actor: str, request_id: str
) -> list[AuditEvent]:
    """One API request's answers: one record for a single answer (entity: the customer), more in records of
    `PREDICTIONS_PER_RECORD` under `plural` (entity: the API request)."""
    if len(entries) == 1:
        return [
            AuditEvent(
                event_type=event_type,
                entity=f"customer:{entries[0]['customer_id']}",
                actor=actor,
                details={**entries[0], "request_id": request_id},
            )
        ]
    return [
        AuditEvent(
            event_type=event_type,
            entity=f"request:{request_id}",
            actor=actor,
            details={"request_id": request_id, "part": start // PREDICTIONS_PER_RECORD, plural: chunk},
        )
        for start in range(0, len(entries), PREDICTIONS_PER_RECORD)
        if (chunk := entries[start : start + PREDICTIONS_PER_RECORD])
    ]


def batch_scoring_event(
    run_id: str,
    actor: str,
    *,
    model_version: str,
    rows: int,
    input_object: Mapping[str, str | None],
    output_object: Mapping[str, str | None],
) -> AuditEvent:
    """A batch-scoring run's one record (entity `batch:<run id>`): the model version, the rows scored and each
    object's bucket, key, S3 version and SHA-256. Its `event_id` derives from the run id, so should a retried
    step append it twice, both records carry the same id and count as one run."""
    return AuditEvent(
        event_type=AuditEventType.BATCH_SCORING,
        entity=f"batch:{run_id}",
        actor=actor,
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"batch-scoring:{run_id}").hex,
        details={
            "run_id": run_id,
            "model_version": model_version,
            "rows": rows,
            "input": {k: v for k, v in input_object.items() if v is not None},
            "output": {k: v for k, v in output_object.items() if v is not None},
        },
    )


def model_event(
    event_type: AuditEventType, model_name: str, version: str | None, actor: str, **details: Any
) -> AuditEvent:
    """A change of a model version's status (registered, approved, rejected, deployed, rolled back)."""
    return AuditEvent(
        event_type=event_type,
        entity=f"model:{model_name}/{version or 'none'}",
        actor=actor,
        details={k: v for k, v in details.items() if v is not None},
    )


def experiment_event(event_type: AuditEventType, experiment_id: str, actor: str, **details: Any) -> AuditEvent:
    """An experiment created, stopped or changed."""
    return AuditEvent(
        event_type=event_type,
        entity=f"experiment:{experiment_id}",
        actor=actor,
        details={k: v for k, v in details.items() if v is not None},
    )
