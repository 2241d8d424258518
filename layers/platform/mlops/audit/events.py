"""What each component writes to the audit trail: one place that turns domain events into audit events.

Records carry ids, versions, hashes and decisions, never raw features: a prediction's inputs are kept as the
SHA-256 of their canonical JSON (`Prediction.input_sha256`), which proves what was scored without storing it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from mlops.api.contracts import Prediction
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
    if len(entries) == 1:
        return [
            AuditEvent(
                event_type=AuditEventType.PREDICTION,
                entity=f"customer:{predictions[0].customer_id}",
                actor=actor,
                details={**entries[0], "request_id": request_id},
            )
        ]
    return [
        AuditEvent(
            event_type=AuditEventType.PREDICTION,
            entity=f"request:{request_id}",
            actor=actor,
            details={"request_id": request_id, "part": start // PREDICTIONS_PER_RECORD, "predictions": chunk},
        )
        for start in range(0, len(entries), PREDICTIONS_PER_RECORD)
        if (chunk := entries[start : start + PREDICTIONS_PER_RECORD])
    ]


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
