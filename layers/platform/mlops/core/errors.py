"""Domain errors shared by the training pipeline, batch scoring and the online handler.

Every error carries the offending ``field`` (a dotted path such as ``features.tenure``) and a human
readable ``message`` so that API handlers can turn it into a structured 4xx/5xx response without
parsing strings.
"""

from __future__ import annotations

from typing import ClassVar


class DomainError(Exception):
    """Base class of every expected, explainable failure of the platform."""

    code: ClassVar[str] = "DOMAIN_ERROR"

    def __init__(self, field: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.retryable = retryable

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description of the error (code, field, message, retryable)."""
        return {"code": self.code, "field": self.field, "message": self.message, "retryable": self.retryable}


class FeatureValidationError(DomainError):
    """A feature value (or key) sent for scoring is not acceptable.

    ``field`` has the form ``features.<name>``; when the error comes from a list of records,
    ``record_index`` tells which record, so a caller can report e.g. ``records[3].features.<name>``.
    """

    code: ClassVar[str] = "FEATURE_VALIDATION_ERROR"

    def __init__(self, field: str, message: str, *, record_index: int | None = None) -> None:
        super().__init__(field, message)
        self.record_index = record_index


class ModelNotFoundError(DomainError):
    """The requested model (or model version/alias) does not exist."""

    code: ClassVar[str] = "MODEL_NOT_FOUND"


class ArtifactIntegrityError(DomainError):
    """A stored artifact (ONNX graph, skops file, feature spec) is corrupt, tampered with or inconsistent."""

    code: ClassVar[str] = "ARTIFACT_INTEGRITY_ERROR"


class InvalidRequestError(DomainError):
    """A request is malformed (wrong shape, missing required parameter, too large...)."""

    code: ClassVar[str] = "INVALID_REQUEST"


class ForbiddenError(DomainError):
    """The request is not authorised for the operation (e.g. an operator action without an IAM principal)."""

    code: ClassVar[str] = "FORBIDDEN"


class ModelUnavailableError(DomainError):
    """No model can serve right now (nothing deployed, or the deployed one cannot be loaded)."""

    code: ClassVar[str] = "MODEL_UNAVAILABLE"

    def __init__(self, field: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(field, message)
        self.retryable = retryable


class VersionNotDeployedError(DomainError):
    """A request named a model version that production does not serve (explanations are of the served one)."""

    code: ClassVar[str] = "VERSION_NOT_DEPLOYED"


class InvalidTransitionError(DomainError):
    """A model version's status does not allow the requested change (e.g. deploying an unapproved model)."""

    code: ClassVar[str] = "INVALID_TRANSITION"


class DeploymentConflictError(DomainError):
    """Production no longer serves the version a deployment expected to replace; nothing was changed."""

    code: ClassVar[str] = "DEPLOYMENT_CONFLICT"


class DataValidationError(DomainError):
    """A training data set does not match its schema or cannot be learned from."""

    code: ClassVar[str] = "DATA_VALIDATION_ERROR"


class ParityError(DomainError):
    """The exported ONNX graph does not reproduce the scikit-learn model's probabilities."""

    code: ClassVar[str] = "PARITY_ERROR"


class SmokeTestError(DomainError):
    """The deployed endpoint did not serve the model version the pilot just deployed."""

    code: ClassVar[str] = "SMOKE_TEST_ERROR"


class ExperimentNotFoundError(DomainError):
    """No experiment has the requested id."""

    code: ClassVar[str] = "EXPERIMENT_NOT_FOUND"


class ExperimentConflictError(DomainError):
    """The experiment's state does not allow the request (already exists, not running, model already split)."""

    code: ClassVar[str] = "EXPERIMENT_CONFLICT"


class ExperimentUnavailableError(DomainError):
    """The experiments table did not take an exposure (after retries): the variant is not served without it."""

    code: ClassVar[str] = "EXPERIMENT_UNAVAILABLE"

    def __init__(self, field: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(field, message, retryable=retryable)


class EntityNotFoundError(DomainError):
    """The feature store holds no record of the requested entity (or its feature group was never ingested)."""

    code: ClassVar[str] = "ENTITY_NOT_FOUND"


class FeatureGroupConflictError(DomainError):
    """A feature group version is already registered with a different definition: bump its version instead."""

    code: ClassVar[str] = "FEATURE_GROUP_CONFLICT"


class FeatureStoreUnavailableError(DomainError):
    """The online feature store did not answer (after retries)."""

    code: ClassVar[str] = "FEATURE_STORE_UNAVAILABLE"

    def __init__(self, field: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(field, message, retryable=retryable)


class MonitoringError(DomainError):
    """The model monitor, or the outcomes it needs, could not be reached."""

    code: ClassVar[str] = "MONITORING_ERROR"


class AuditUnavailableError(DomainError):
    """The audit trail could not be written or read after retries; nothing was silently dropped."""

    code: ClassVar[str] = "AUDIT_UNAVAILABLE"

    def __init__(self, field: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(field, message, retryable=retryable)


class AuditIntegrityError(DomainError):
    """The stored chain is not intact, so the requested operation (e.g. writing a digest) was refused."""

    code: ClassVar[str] = "AUDIT_INTEGRITY_ERROR"
