"""Settings of the pilot's own functions, built on the platform's settings models."""

from __future__ import annotations

from pydantic import Field

from mlops.core.settings import AuditLogSettings, AuditTableSettings, ModelStoreSettings


class IngestionSettings(ModelStoreSettings):
    """The pilot's ingestion step: reads the data file, writes the feature group online and offline."""

    data_bucket: str = Field(min_length=1)
    feature_store_table: str = Field(min_length=1)
    feature_store_bucket: str = Field(min_length=1)
    feature_group: str = Field(default="customer_behavior", min_length=1)
    feature_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    ingest_write_concurrency: int = Field(default=16, ge=1, le=64)


class PilotExperimentSettings(ModelStoreSettings, AuditLogSettings):
    """The pilot's experiment step: reads the run's schema, writes the experiment (and audits it)."""

    experiments_table: str = Field(min_length=1)


class CampaignSettings(ModelStoreSettings):
    """The pilot's simulated retention campaign: reads the test split, calls scoring, writes outcomes."""

    experiments_table: str = Field(min_length=1)
    scoring_function_name: str = Field(min_length=1)
    model_refresh_seconds: float = Field(default=30.0, ge=0)


class PilotMonitoringSettings(ModelStoreSettings, AuditTableSettings):
    """The pilot's monitoring step: scores a later window, logs its outcomes, waits for their audit records (reads
    the audit table), then runs the model monitor."""

    scoring_function_name: str = Field(min_length=1)
    monitoring_function_name: str = Field(min_length=1)
    model_monitor_function_name: str = Field(min_length=1)


class EnvironmentCheckSettings(ModelStoreSettings):
    """The pilot's environment check: every bucket, table and function the run will use."""

    data_bucket: str = Field(min_length=1)
    feature_store_table: str = Field(min_length=1)
    feature_store_bucket: str = Field(min_length=1)
    scoring_function_name: str = Field(min_length=1)


class DataSettings(ModelStoreSettings):
    """The pilot's data preparation: reads the data file, and the offline feature store when there is one."""

    data_bucket: str = Field(min_length=1)
    feature_store_bucket: str | None = Field(default=None, min_length=1)


class SmokeTestSettings(ModelStoreSettings):
    """The pilot's smoke test: reads the reference rows, calls the deployed scoring function."""

    scoring_function_name: str = Field(min_length=1)
