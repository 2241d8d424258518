"""What the feature store API does: read a customer's latest features, and delete them on a data-subject request
(the deletion is recorded in the store and written to the audit trail)."""

from __future__ import annotations

from collections.abc import Sequence

from mlops.api.contracts import BatchFeatureResponse, FeatureDeletionResponse, FeatureRecordResponse
from mlops.audit.queue import AuditLog
from mlops.audit.records import AuditEvent, AuditEventType
from mlops.core.errors import EntityNotFoundError
from mlops.core.observability import MetricUnit, logger, metrics
from mlops.feature_store.online import FeatureRecord, OnlineFeatureLookup

DELETION_REASON = "data-subject request"


class FeatureStoreService:
    def __init__(self, lookup: OnlineFeatureLookup, audit: AuditLog) -> None:
        self._lookup = lookup
        self._audit = audit

    def get(self, customer_id: str, features: Sequence[str] | None = None) -> FeatureRecordResponse:
        """The customer's latest record of the current group (only `features`, default all); 404 without one."""
        group = self._lookup.group()
        record = self._lookup.store.get(group, customer_id, features)
        if record is None:
            raise EntityNotFoundError(field="customer_id", message=f"no {group.name} record for {customer_id!r}")
        _count_reads([record])
        return _response(record, group.name, group.version)

    def get_batch(self, customer_ids: Sequence[str], features: Sequence[str] | None = None) -> BatchFeatureResponse:
        """The customers' latest records in the order asked (each id once); ids without one are `missing`."""
        group = self._lookup.group()
        found = self._lookup.store.batch_get(group, customer_ids, features)
        ordered = [found[i] for i in dict.fromkeys(customer_ids) if i in found]
        _count_reads(ordered)
        return BatchFeatureResponse(
            feature_group=group.name,
            group_version=group.version,
            records=[_response(record, group.name, group.version) for record in ordered],
            missing=[i for i in dict.fromkeys(customer_ids) if i not in found],
        )

    def delete(self, customer_id: str, actor: str) -> FeatureDeletionResponse:
        """Delete the customer's online record on a data-subject request made by `actor`, and audit it."""
        group = self._lookup.group()
        deletion = self._lookup.store.delete(group, customer_id, actor, DELETION_REASON)
        self._audit.append(
            AuditEvent(
                event_type=AuditEventType.FEATURE_DELETION,
                entity=f"customer:{customer_id}",
                actor=actor,
                details={"deletion_id": deletion.deletion_id, "feature_group": group.name, "reason": DELETION_REASON},
            )
        )
        logger.info("Feature record deleted", extra={"deletion_id": deletion.deletion_id, "feature_group": group.name})
        metrics.add_metric(name="FeatureDeletions", unit=MetricUnit.Count, value=1)
        return FeatureDeletionResponse(
            customer_id=customer_id,
            feature_group=group.name,
            deleted=True,
            deletion_id=deletion.deletion_id,
            requested_at=deletion.requested_at,
        )


def _response(record: FeatureRecord, group_name: str, group_version: int) -> FeatureRecordResponse:
    return FeatureRecordResponse(
        customer_id=record.entity_id,
        feature_group=group_name,
        group_version=group_version,
        event_time=record.event_time.isoformat(),
        status=record.status,
        values=record.values,
    )


def _count_reads(records: list[FeatureRecord]) -> None:
    metrics.add_metric(name="FeatureRecordsRead", unit=MetricUnit.Count, value=len(records))
    metrics.add_metric(
        name="StaleFeatureRecords", unit=MetricUnit.Count, value=sum(r.status == "stale" for r in records)
    )
