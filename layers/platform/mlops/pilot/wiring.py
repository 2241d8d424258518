"""The pilot's stores beyond the platform's `Wiring`: its data bucket and the feature store its ingestion writes.

A pilot handler module creates one `PilotWiring` for its settings model at import time, like any `Wiring`; each
store is built from the settings on first use and kept for the execution environment.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from mlops.core.artifacts import ArtifactStore
from mlops.core.settings import ModelStoreSettings
from mlops.feature_store.online import FeatureGroupCatalog, OnlineFeatureStore
from mlops.wiring import Wiring

if TYPE_CHECKING:
    from mlops.feature_store.offline import OfflineFeatureStore


class PilotWiring[SettingsT: ModelStoreSettings](Wiring[SettingsT]):
    """Settings, clients and stores of a pilot step (see `IngestionSettings`, `DataSettings`)."""

    @cached_property
    def data(self) -> ArtifactStore:
        """The data bucket, where the pilot's input file and its schema are."""
        return ArtifactStore(self.settings.data_bucket, self.s3)  # type: ignore[attr-defined]

    @cached_property
    def online_store(self) -> OnlineFeatureStore:
        return OnlineFeatureStore(self.settings.feature_store_table, self.dynamodb)  # type: ignore[attr-defined]

    @cached_property
    def feature_catalog(self) -> FeatureGroupCatalog:
        return FeatureGroupCatalog(self.settings.feature_store_table, self.dynamodb)  # type: ignore[attr-defined]

    @cached_property
    def offline_store(self) -> OfflineFeatureStore | None:
        """None when the step has no feature store bucket (the features then come from the file)."""
        from mlops.feature_store.offline import OfflineFeatureStore  # pandas: only the pipeline image has it

        bucket = getattr(self.settings, "feature_store_bucket", None)
        return OfflineFeatureStore(bucket, self.s3) if bucket else None
