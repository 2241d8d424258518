"""Request and response models of the platform's HTTP API (also the source of its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

EntityId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@\-]+$")]
FeatureValue = float | int | str | bool | None


def _iso_string(value: Any) -> Any:
    # pydantic would also take a number as Unix time; the API documents (and means) an ISO-8601 string.
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO-8601 date-time string with a time zone")
    return value


IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_string)]
"""A date-time of a request body: an ISO-8601 string with a time zone (not a number, as pydantic would allow)."""
FeatureSource = Literal["store", "request", "imputed"]
FreshnessStatus = Literal["fresh", "stale"]

MAX_BATCH_RECORDS = 1000
MAX_EXPLAIN_BATCH_RECORDS = 100
"""Smaller than a prediction batch: an explanation runs TreeSHAP over every tree and lists every feature."""
MAX_REASONS = 5
MAX_FEATURE_BATCH_IDS = 100


SYNTHETIC_TRAFFIC_HEADER = "X-Synthetic-Traffic"
"""Requests carrying this header (the pilot's smoke test) are scored and audited but not captured for drift."""


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: EntityId
    features: dict[str, FeatureValue] = Field(
        default_factory=dict,
        description="Raw feature values by name; a missing feature is imputed from training statistics.",
    )


class BatchPredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[PredictRequest] = Field(min_length=1, max_length=MAX_BATCH_RECORDS)


class Prediction(BaseModel):
    prediction_id: str
    customer_id: str
    churn_probability: float
    churn_prediction: bool
    threshold: float
    model_version: str
    imputed_features: list[str] = Field(description="Features that were missing or unseen and filled in.")
    input_sha256: str = Field(
        description="SHA-256 of the canonical JSON of the feature values scored (what the audit trail records)."
    )
    feature_sources: dict[str, FeatureSource] = Field(
        default_factory=dict,
        description="Where each model input came from: the request, the feature store, or imputation.",
    )
    feature_event_time: str | None = Field(
        default=None, description="Observation time of the stored features used (null: none were used)."
    )
    feature_status: FreshnessStatus | None = Field(default=None, description="Freshness of the stored features used.")
    variant: str | None = Field(
        default=None,
        description="The customer's variant when an experiment splits this model's traffic (then churn_prediction "
        "is that variant's decision; churn_probability is always the model's). null without a running experiment.",
    )
    experiment_id: str | None = None


class BatchPredictionResponse(BaseModel):
    model_version: str
    predictions: list[Prediction]


class ExplainRequest(PredictRequest):
    """A /predict body, optionally naming the model version the caller expects to be explained."""

    model_version: EntityId | None = Field(
        default=None,
        description="Refuse (409) unless this is the version production serves; omitted: the served version.",
    )


class BatchExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[PredictRequest] = Field(min_length=1, max_length=MAX_EXPLAIN_BATCH_RECORDS)
    model_version: EntityId | None = Field(
        default=None,
        description="Refuse (409) unless this is the version production serves; omitted: the served version.",
    )


OutputSpace = Literal["log_odds", "probability"]
SourceKind = Literal["raw", "one_hot", "derived"]


class ContributionSource(BaseModel):
    """One model input whose SHAP value (times ``share``) makes up part of an input feature's contribution."""

    model_input: str
    kind: SourceKind = Field(
        description="raw: the feature itself; one_hot: all one-hot columns of this categorical, summed; "
        "derived: a derived feature, split equally among its sources."
    )
    share: float = Field(description="Fraction of that model input's SHAP value attributed to this feature.")


class FeatureContribution(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    feature: str
    value: float | str = Field(description="The value the model used (after imputation).")
    imputed: bool
    contribution: float = Field(description="SHAP contribution in `output_space` units.")
    sources: list[ContributionSource] = Field(alias="from")


class Reason(BaseModel):
    feature: str
    direction: Literal["raises", "lowers"]
    text: str


class Explanation(BaseModel):
    explanation_id: str
    customer_id: str
    model_version: str
    churn_probability: float = Field(description="The probability /predict serves for the same body.")
    churn_prediction: bool
    threshold: float
    output_space: OutputSpace
    base_value: float = Field(description="The model's expected output, in `output_space` units.")
    model_output: float = Field(
        description="The scikit-learn model's output in `output_space` units: base_value + every contribution."
    )
    contributions: list[FeatureContribution] = Field(description="Largest absolute contribution first.")
    remaining_contribution: float = Field(
        description="Sum of the contributions left out by `?top=N` (0 when every feature is listed)."
    )
    reasons: list[Reason]
    imputed_features: list[str]
    feature_sources: dict[str, FeatureSource] = Field(
        default_factory=dict, description="Where each input came from, as in /predict."
    )
    method: str


class BatchExplanationResponse(BaseModel):
    model_version: str
    explanations: list[Explanation]


class HealthResponse(BaseModel):
    status: str
    model_name: str
    model_version: str | None


class ModelSummary(BaseModel):
    version: str
    status: str
    algorithm: str
    created_at: str
    threshold: float
    metrics: dict[str, float]
    serving: bool


class ModelListResponse(BaseModel):
    model_name: str
    production_version: str | None
    models: list[ModelSummary]


class ErrorField(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    fields: list[ErrorField] = Field(default_factory=list)
    retryable: bool = False


class ErrorResponse(BaseModel):
    error: ErrorBody


class FeatureRecordResponse(BaseModel):
    customer_id: str
    feature_group: str
    group_version: int
    event_time: str = Field(description="When the values were observed (ISO 8601, UTC).")
    status: FreshnessStatus = Field(description="stale when older than the group's freshness window (TTL).")
    values: dict[str, float | str | None]


class BatchFeatureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_ids: list[EntityId] = Field(min_length=1, max_length=MAX_FEATURE_BATCH_IDS)
    features: list[str] | None = Field(default=None, min_length=1, description="Only these features (default all).")


class BatchFeatureResponse(BaseModel):
    feature_group: str
    group_version: int
    records: list[FeatureRecordResponse] = Field(description="In the order of the request; unknown ids left out.")
    missing: list[str] = Field(description="Requested ids the store holds no record of.")


class FeatureDeletionResponse(BaseModel):
    customer_id: str
    feature_group: str
    deleted: bool
    deletion_id: str = Field(description="The id of the recorded deletion (a data-subject request).")
    requested_at: str
