"""Derived features: one declarative table of features computed from the raw numerical columns.

A derived feature is active when all its ``sources`` are numerical columns of the schema (and its name does not
clash with a raw column); :class:`mlops.data.feature_spec.FeatureSpec` records which ones a model uses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from mlops.data.schema import DataSchema

MINUTES = ("total_day_minutes", "total_eve_minutes", "total_night_minutes", "total_intl_minutes")
CALLS = ("total_day_calls", "total_eve_calls", "total_night_calls", "total_intl_calls")
CHARGES = ("total_day_charge", "total_eve_charge", "total_night_charge", "total_intl_charge")
SERVICE_CALLS = "number_customer_service_calls"
ACCOUNT_LENGTH = "account_length"


class Derivation:
    """What a derived-feature formula can use: raw (already imputed) columns, memoised sums, the threshold."""

    __slots__ = ("_columns", "_totals", "high_value_threshold")

    def __init__(self, columns: Mapping[str, np.ndarray], high_value_threshold: float | None) -> None:
        self._columns = columns
        self._totals: dict[tuple[str, ...], np.ndarray] = {}
        self.high_value_threshold = high_value_threshold

    def col(self, name: str) -> np.ndarray:
        return self._columns[name]

    def total(self, names: tuple[str, ...]) -> np.ndarray:
        result = self._totals.get(names)
        if result is None:
            result = self._columns[names[0]].copy()
            for name in names[1:]:
                result += self._columns[name]
            self._totals[names] = result
        return result

    @staticmethod
    def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
        """numerator / denominator, 0 where the denominator is 0."""
        return np.divide(numerator, denominator, out=np.zeros(numerator.shape), where=denominator != 0)

    @staticmethod
    def flag(condition: np.ndarray) -> np.ndarray:
        """A boolean condition as a 0/1 feature (converted when written to the float32 inputs)."""
        return condition


@dataclass(frozen=True)
class DerivedFeature:
    """A feature computed from raw numerical columns, active when all ``sources`` are schema numericals."""

    name: str
    sources: tuple[str, ...]
    formula: Callable[[Derivation], np.ndarray] = field(repr=False)
    description: str
    needs_high_value_threshold: bool = False


DERIVED_FEATURES: tuple[DerivedFeature, ...] = (
    DerivedFeature(
        "total_minutes", MINUTES, lambda f: f.total(MINUTES), "day + evening + night + international minutes"
    ),
    DerivedFeature("total_calls", CALLS, lambda f: f.total(CALLS), "day + evening + night + international calls"),
    DerivedFeature(
        "total_charges", CHARGES, lambda f: f.total(CHARGES), "day + evening + night + international charges"
    ),
    DerivedFeature(
        "avg_call_duration",
        MINUTES + CALLS,
        lambda f: f.ratio(f.total(MINUTES), f.total(CALLS)),
        "total_minutes / total_calls (0 when there are no calls)",
    ),
    DerivedFeature(
        "revenue_per_minute",
        CHARGES + MINUTES,
        lambda f: f.ratio(f.total(CHARGES), f.total(MINUTES)),
        "total_charges / total_minutes (0 when there are no minutes)",
    ),
    DerivedFeature(
        "high_service_calls",
        (SERVICE_CALLS,),
        lambda f: f.flag(f.col(SERVICE_CALLS) > 3),
        "1 when number_customer_service_calls > 3, else 0",
    ),
    DerivedFeature(
        "is_new_customer",
        (ACCOUNT_LENGTH,),
        lambda f: f.flag(f.col(ACCOUNT_LENGTH) < 30),
        "1 when account_length < 30, else 0",
    ),
    DerivedFeature(
        "is_high_value",
        CHARGES,
        lambda f: f.flag(f.total(CHARGES) >= f.high_value_threshold),
        "1 when total_charges >= the 80th percentile of the training total_charges, else 0",
        needs_high_value_threshold=True,
    ),
)
DERIVED_BY_NAME: dict[str, DerivedFeature] = {feature.name: feature for feature in DERIVED_FEATURES}


def applicable_derived_features(schema: DataSchema) -> list[DerivedFeature]:
    """Derived features the schema allows: enabled, all sources numerical, no clash with a raw column."""
    if not schema.derived_features:
        return []
    numerical = set(schema.numerical)
    raw = numerical | set(schema.categorical) | {schema.id_column, schema.target}
    return [
        feature for feature in DERIVED_FEATURES if numerical.issuperset(feature.sources) and feature.name not in raw
    ]
