"""Validated settings of every function, read from the environment the template gives it.

Each handler builds its settings once per execution environment (cold start) through `load_settings`, so a
missing or malformed variable fails the first invocation loudly instead of a later request obscurely.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FunctionSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)


class ModelStoreSettings(FunctionSettings):
    """Where model versions live: the registry table and the artifact bucket."""

    model_name: str = Field(min_length=1)
    registry_table: str = Field(min_length=1)
    artifact_bucket: str = Field(min_length=1)


class FeatureLookupSettings(FunctionSettings):
    """Where a serving function reads stored features (no table: callers must send every feature)."""

    feature_store_table: str | None = Field(default=None, min_length=1)
    feature_group: str = Field(default="customer_behavior", min_length=1)
    feature_group_refresh_seconds: float = Field(default=30.0, ge=0)


class AuditLogSettings(FunctionSettings):
    """Where a function sends its audit records: the audit queue (see `mlops.audit.queue`)."""

    audit_queue_url: str = Field(min_length=1)


class AuditTableSettings(FunctionSettings):
    """The audit table, which the audit writer writes and the audit API, the digest job and the monitor read."""

    audit_table: str = Field(min_length=1)


class AuditWriterSettings(AuditTableSettings):
    """The audit logging function, which drains the audit queue into the table."""


class AuditApiSettings(AuditTableSettings):
    """The audit API: the table, and the bucket of chained digests."""

    audit_bucket: str = Field(min_length=1)


class AuditDigestSettings(AuditApiSettings, AuditLogSettings):
    """The digest job: reads the table, writes digests, and queues the record of each one."""


class CaptureSettings(FunctionSettings):
    """Where the scoring function captures a sample of its inputs for drift monitoring (no bucket: none)."""

    monitoring_bucket: str | None = Field(default=None, min_length=1)
    capture_sample_rate: float = Field(default=1.0, ge=0, le=1)


class MonitoringSettings(ModelStoreSettings, AuditTableSettings):
    """The outcomes API and the scheduled model monitor."""

    monitoring_bucket: str = Field(min_length=1)
    monitor_window_hours: float = Field(default=24.0, gt=0, le=24 * 31)
    outcome_lookback_days: float = Field(default=30.0, gt=0, le=366)
    drift_psi_threshold: float = Field(default=0.2, gt=0)
    drift_chi_square_p_value: float = Field(default=0.01, gt=0, lt=1)
    drift_min_rows: int = Field(default=200, ge=1)


class ScoringSettings(ModelStoreSettings, FeatureLookupSettings, AuditLogSettings, CaptureSettings):
    model_refresh_seconds: float = Field(default=30.0, ge=0)
    experiments_table: str | None = Field(
        default=None, min_length=1, description="Where the running experiment of the model is (none: no A/B test)."
    )


class FeaturesApiSettings(FeatureLookupSettings, AuditLogSettings):
    feature_store_table: str = Field(min_length=1)


class AuditedModelStoreSettings(ModelStoreSettings, AuditLogSettings):
    """Steps that change a model version's status (register, deploy, roll back) and audit it."""


class ExperimentsSettings(FunctionSettings):
    """The experiments API and the pilot's experiment step."""

    model_name: str = Field(min_length=1)
    experiments_table: str = Field(min_length=1)


class AuditedExperimentsSettings(ExperimentsSettings, AuditLogSettings):
    """The experiments API, which audits creations and stops."""


class BatchScoringSettings(ModelStoreSettings):
    """Batch scoring's planning step: the data bucket holding the input, the registry naming the production version."""

    data_bucket: str = Field(min_length=1)


def load_settings[SettingsT: FunctionSettings](settings_type: type[SettingsT]) -> SettingsT:
    return settings_type()  # type: ignore[call-arg]  # values come from the environment
