"""The pilot's one store beyond the platform's `Wiring`: the data bucket its input file and schema are in."""

from __future__ import annotations

from functools import cached_property

from mlops.core.artifacts import ArtifactStore
from mlops.core.settings import ModelStoreSettings
from mlops.wiring import Wiring


class PilotWiring[SettingsT: ModelStoreSettings](Wiring[SettingsT]):
    """Settings, clients and stores of a pilot step (see `IngestionSettings`, `DataSettings`)."""

    @cached_property
    def data(self) -> ArtifactStore:
        """The data bucket, where the pilot's input file and its schema are."""
        return ArtifactStore(self.settings.data_bucket, self.s3)  # type: ignore[attr-defined]
