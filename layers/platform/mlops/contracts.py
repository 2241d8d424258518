"""Request and response models of the platform's HTTP API (also the source of its OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

EntityId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@\-]+$")]
FeatureValue = float | int | str | bool | None

MAX_BATCH_RECORDS = 1000


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


class BatchPredictionResponse(BaseModel):
    model_version: str
    predictions: list[Prediction]


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
