"""The one place where a function's settings become AWS clients and stores.

A handler module creates one `Wiring` for its settings model at import time and asks it for what it needs
(`wiring.registry`, `wiring.audit_trail("scoring")`). Nothing is built and no environment variable is read
until the first invocation asks, and everything is then built once per execution environment: the module's
lifetime, which is exactly Lambda's (a new environment imports the module afresh).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config

from mlops.audit.events import audit_trail
from mlops.audit.trail import AuditTrail
from mlops.core.artifacts import ArtifactStore
from mlops.core.settings import FunctionSettings, load_settings
from mlops.experiments.store import ExperimentStore
from mlops.feature_store.online import OnlineFeatureLookup, online_lookup
from mlops.registry.store import ModelRegistry

# The platform's stores retry throttling themselves (with backoff, then a retryable 503): botocore's legacy
# mode would add up to 10 attempts under each of theirs, past API Gateway's 29 s timeout.
_STANDARD_RETRIES = Config(retries={"mode": "standard", "max_attempts": 3})


class Wiring[SettingsT: FunctionSettings]:
    """Settings, clients and stores of one function, each built on first use and kept."""

    def __init__(self, settings_type: type[SettingsT]) -> None:
        self._settings_type = settings_type
        self._clients: dict[tuple[str, int], Any] = {}
        self._audit_trails: dict[str, AuditTrail] = {}

    @cached_property
    def settings(self) -> SettingsT:
        """Validated once per execution environment: a missing variable fails the first invocation loudly."""
        return load_settings(self._settings_type)

    def client(self, service_name: str, config: Config | None = None) -> Any:
        """One boto3 client per service (and configuration) for this environment."""
        key = (service_name, id(config))
        if key not in self._clients:
            self._clients[key] = boto3.client(service_name, config=config)
        return self._clients[key]

    @property
    def dynamodb(self) -> Any:
        return self.client("dynamodb", _STANDARD_RETRIES)

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @cached_property
    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.settings.registry_table, self.dynamodb)  # type: ignore[attr-defined]

    @cached_property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.settings.artifact_bucket, self.s3)  # type: ignore[attr-defined]

    @cached_property
    def experiment_store(self) -> ExperimentStore:
        return ExperimentStore(self.settings.experiments_table, self.dynamodb)  # type: ignore[attr-defined]

    @cached_property
    def feature_lookup(self) -> OnlineFeatureLookup | None:
        """None when the function has no feature table (callers then send every feature)."""
        return online_lookup(self.settings, self.dynamodb)  # type: ignore[arg-type]

    def audit_trail(self, writer: str) -> AuditTrail:
        """This environment's own chain of the audit table for `writer` (one chain per writer and environment)."""
        if writer not in self._audit_trails:
            table = self.settings.audit_table  # type: ignore[attr-defined]
            self._audit_trails[writer] = audit_trail(table, self.dynamodb, writer=writer)
        return self._audit_trails[writer]
