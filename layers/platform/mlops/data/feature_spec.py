"""The learned feature specification: everything scoring needs to rebuild the model inputs from raw columns.

:func:`mlops.data.feature_fitting.fit_feature_spec` learns it on the training rows;
:func:`mlops.data.features.prepare_features` applies it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops.data.derived_features import (
    DERIVED_BY_NAME,
    DERIVED_FEATURES,
    DerivedFeature,
    applicable_derived_features,
)
from mlops.data.schema import DataSchema


@dataclass(frozen=True)
class FeaturePlan:
    """Immutable lookup structures derived once from a FeatureSpec (cached on the spec)."""

    numerical: tuple[str, ...]
    categorical: tuple[str, ...]
    derived: tuple[DerivedFeature, ...]
    model_numerical: tuple[str, ...]
    model_inputs: tuple[str, ...]
    feature_names: frozenset[str]
    numeric_fill: tuple[float, ...]
    categorical_fill: tuple[str, ...]
    category_sets: tuple[frozenset[str], ...]


class FeatureSpec(BaseModel):
    """Everything learned on the training rows that scoring needs to rebuild the model inputs."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    data_schema: DataSchema = Field(alias="schema")
    numeric_fill: dict[str, float]
    categorical_fill: dict[str, str]
    categories: dict[str, list[str]]
    high_value_threshold: float | None = None
    derived: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        schema = self.data_schema
        if set(self.numeric_fill) != set(schema.numerical):
            raise ValueError("numeric_fill must have exactly one value per numerical column of the schema")
        if not all(math.isfinite(value) for value in self.numeric_fill.values()):
            raise ValueError("numeric_fill values must be finite")
        if set(self.categorical_fill) != set(schema.categorical):
            raise ValueError("categorical_fill must have exactly one value per categorical column of the schema")
        if set(self.categories) != set(schema.categorical):
            raise ValueError("categories must list the seen categories of every categorical column")
        if self.high_value_threshold is not None and not math.isfinite(self.high_value_threshold):
            raise ValueError("high_value_threshold must be finite")
        allowed = {feature.name for feature in applicable_derived_features(schema)}
        for name in self.derived:
            if name not in allowed:
                raise ValueError(f"derived feature {name!r} is unknown or not applicable to this schema")
            if DERIVED_BY_NAME[name].needs_high_value_threshold and self.high_value_threshold is None:
                raise ValueError(f"derived feature {name!r} needs high_value_threshold")
        if self.derived != [feature.name for feature in DERIVED_FEATURES if feature.name in self.derived]:
            raise ValueError("derived features must appear once each, in the order of DERIVED_FEATURES")
        return self

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """Copy, dropping the cached plan (an ``update`` may change what it is derived from)."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("plan", None)
        return copied

    @cached_property
    def plan(self) -> FeaturePlan:
        schema = self.data_schema
        model_numerical = (*schema.numerical, *self.derived)
        return FeaturePlan(
            numerical=tuple(schema.numerical),
            categorical=tuple(schema.categorical),
            derived=tuple(DERIVED_BY_NAME[name] for name in self.derived),
            model_numerical=model_numerical,
            model_inputs=(*model_numerical, *schema.categorical),
            feature_names=frozenset(schema.feature_columns),
            numeric_fill=tuple(self.numeric_fill[name] for name in schema.numerical),
            categorical_fill=tuple(self.categorical_fill[name] for name in schema.categorical),
            category_sets=tuple(frozenset(self.categories[name]) for name in schema.categorical),
        )

    @property
    def model_numerical(self) -> list[str]:
        """Float32 model inputs: raw numerical columns (schema order) then derived features (table order)."""
        return list(self.plan.model_numerical)

    @property
    def model_categorical(self) -> list[str]:
        """String model inputs: the schema's categorical columns."""
        return list(self.plan.categorical)

    @property
    def model_inputs(self) -> list[str]:
        """All ONNX input names in graph order: model_numerical then model_categorical."""
        return list(self.plan.model_inputs)
