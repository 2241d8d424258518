"""The one feature-preparation code path shared by training, batch scoring and the online handler.

numpy only (this module runs in the Lambda scoring path next to onnxruntime): no pandas, no scikit-learn.

Data flows as :data:`Columns`, a mapping ``raw column name -> 1-D numpy array``:

* numerical columns are float arrays, ``NaN`` meaning missing;
* categorical columns are object arrays holding ``str`` or ``None`` (missing).

:func:`fit_feature_spec` learns a :class:`FeatureSpec` on the training rows (medians, modes, seen categories,
the high-value threshold); :func:`prepare_features` turns any :data:`Columns` into the exact ONNX inputs
(``spec.model_inputs``), imputing missing values and reporting where it did; :func:`records_to_columns`
validates JSON records (online requests) and turns them into :data:`Columns`.

Everything on the scoring path is vectorised over columns: the work per call is a fixed number of numpy
operations per column, whatever the number of rows.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain
from typing import Any, NamedTuple, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops.core.errors import FeatureValidationError
from mlops.data.schema import DataSchema

Columns = dict[str, np.ndarray]
"""Raw columns: float arrays (NaN = missing) for numbers, object arrays of ``str | None`` for text."""

MAX_ABS_NUMBER = 1e12
"""Largest absolute value accepted for a numerical feature in a request."""
MAX_TEXT_LENGTH = 200
"""Longest string accepted for a categorical feature in a request."""
HIGH_VALUE_QUANTILE = 80.0
"""Percentile of the training ``total_charges`` above which a customer is "high value"."""
MISSING_CATEGORY = "__missing__"
"""Fill value of a categorical column that had no value at all in the training rows."""


# --------------------------------------------------------------------------------------------------------
# Derived features: one declarative table.
# --------------------------------------------------------------------------------------------------------

MINUTES = ("total_day_minutes", "total_eve_minutes", "total_night_minutes", "total_intl_minutes")
CALLS = ("total_day_calls", "total_eve_calls", "total_night_calls", "total_intl_calls")
CHARGES = ("total_day_charge", "total_eve_charge", "total_night_charge", "total_intl_charge")
SERVICE_CALLS = "number_customer_service_calls"
ACCOUNT_LENGTH = "account_length"


class _Derivation:
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
    formula: Callable[[_Derivation], np.ndarray] = field(repr=False)
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


# --------------------------------------------------------------------------------------------------------
# The learned specification.
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
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
        copied.__dict__.pop("_plan", None)
        return copied

    @cached_property
    def _plan(self) -> _Plan:
        schema = self.data_schema
        model_numerical = (*schema.numerical, *self.derived)
        return _Plan(
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
        return list(self._plan.model_numerical)

    @property
    def model_categorical(self) -> list[str]:
        """String model inputs: the schema's categorical columns."""
        return list(self._plan.categorical)

    @property
    def model_inputs(self) -> list[str]:
        """All ONNX input names in graph order: model_numerical then model_categorical."""
        return list(self._plan.model_inputs)


class PreparedFeatures(NamedTuple):
    """Model inputs plus where values were imputed.

    ``inputs[name]`` is a (n, 1) float32 array per numerical model input and a (n, 1) object array of ``str``
    per categorical one, keyed and ordered like ``spec.model_inputs``. ``imputed[col]`` is a (n,) bool mask
    for each raw column with at least one filled value (missing, or a category unseen in training).
    """

    inputs: dict[str, np.ndarray]
    imputed: dict[str, np.ndarray]


# --------------------------------------------------------------------------------------------------------
# Learning the spec.
# --------------------------------------------------------------------------------------------------------


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def _n_rows(columns: Mapping[str, np.ndarray], names: Sequence[str]) -> int:
    """Common length of the named columns present (or of any column if none is); checks 1-D shapes."""
    present = [columns[name] for name in names if name in columns] or list(columns.values())
    if not present:
        raise ValueError("no columns given: cannot tell the number of rows")
    shapes = {values.shape if isinstance(values, np.ndarray) else np.shape(values) for values in present}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"columns must be one-dimensional and of the same length, got shapes {sorted(shapes)}")
    return next(iter(shapes))[0]


def fit_feature_spec(columns: Columns, schema: DataSchema) -> FeatureSpec:
    """Learn medians, modes, seen categories and the high-value threshold from the training rows.

    Missing values (NaN/inf for numbers, None or non-strings for text) are ignored while learning. A column
    absent from ``columns`` or without any value falls back to 0.0 / ``MISSING_CATEGORY``.
    """
    n = _n_rows(columns, schema.feature_columns)
    numeric: dict[str, np.ndarray] = {}
    numeric_fill: dict[str, float] = {}
    for name in schema.numerical:
        values = np.asarray(columns[name], dtype=np.float64) if name in columns else np.full(n, np.nan)
        finite = values[np.isfinite(values)]
        numeric_fill[name] = float(np.median(finite)) if finite.size else 0.0
        numeric[name] = values

    categorical_fill: dict[str, str] = {}
    categories: dict[str, list[str]] = {}
    for name in schema.categorical:
        raw = columns.get(name)
        present = [value for value in raw if _is_text(value)] if raw is not None else []
        if present:
            seen, counts = np.unique(np.array(present, dtype=str), return_counts=True)
            categories[name] = [str(value) for value in seen]
            categorical_fill[name] = str(seen[int(np.argmax(counts))])  # ties: alphabetically first
        else:
            categories[name] = []
            categorical_fill[name] = MISSING_CATEGORY

    derived = applicable_derived_features(schema)
    threshold: float | None = None
    if any(feature.needs_high_value_threshold for feature in derived):
        total_charges = sum(numeric[name] for name in CHARGES)  # NaN when any charge is missing
        complete = total_charges[np.isfinite(total_charges)]
        if complete.size:
            threshold = float(np.percentile(complete, HIGH_VALUE_QUANTILE))
        else:
            derived = [feature for feature in derived if not feature.needs_high_value_threshold]

    return FeatureSpec(
        data_schema=schema,
        numeric_fill=numeric_fill,
        categorical_fill=categorical_fill,
        categories=categories,
        high_value_threshold=threshold,
        derived=[feature.name for feature in derived],
    )


# --------------------------------------------------------------------------------------------------------
# Scoring path: JSON records -> Columns -> model inputs.
# --------------------------------------------------------------------------------------------------------

_NUMBER_TYPES = frozenset({int, float, type(None)})
_TEXT_TYPES = frozenset({str, type(None)})


def _feature_error(name: str, message: str, index: int) -> FeatureValidationError:
    return FeatureValidationError(f"features.{name}", message, record_index=index)


def _describe(value: object) -> str:
    return type(value).__name__ if value is not None else "null"


def _range_message() -> str:
    return f"must be between -{MAX_ABS_NUMBER:g} and {MAX_ABS_NUMBER:g}"


def _numeric_block(names: tuple[str, ...], rows: list[list[object]]) -> np.ndarray:
    """Validate numerical values (rows = records) and return a (len(names), n) float64 matrix."""
    if not _NUMBER_TYPES.issuperset(map(type, chain.from_iterable(rows))):
        for index, row in enumerate(rows):
            for name, value in zip(names, row, strict=True):
                if value is not None and (isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real)):
                    raise _feature_error(name, f"must be a number, got {_describe(value)}", index)
    try:
        block = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    except OverflowError:  # an int too large for a float
        for index, row in enumerate(rows):
            for name, value in zip(names, row, strict=True):
                if isinstance(value, int) and abs(value) > MAX_ABS_NUMBER:
                    raise _feature_error(name, _range_message(), index) from None
        raise
    finite = np.isfinite(block)
    if not finite.all():
        for index, position in zip(*np.nonzero(~finite), strict=True):
            if rows[index][position] is not None:
                raise _feature_error(
                    names[position], "must be a finite number (NaN and Infinity are refused)", int(index)
                )
    with np.errstate(invalid="ignore"):
        too_large = np.abs(block) > MAX_ABS_NUMBER
    if too_large.any():
        index, position = (int(i[0]) for i in np.nonzero(too_large))
        raise _feature_error(names[position], _range_message(), index)
    return np.ascontiguousarray(block.T)


def _text_value(name: str, value: object, index: int) -> object:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) >= 10**MAX_TEXT_LENGTH:
            raise _feature_error(name, f"must be at most {MAX_TEXT_LENGTH} characters long", index)
        return str(value)
    raise _feature_error(name, f"must be a string, got {_describe(value)}", index)


def _text_block(names: tuple[str, ...], rows: list[list[object]]) -> np.ndarray:
    """Validate categorical values (rows = records) and return a (len(names), n) object matrix."""
    if not _TEXT_TYPES.issuperset(map(type, chain.from_iterable(rows))):
        rows = [
            [_text_value(name, value, index) for name, value in zip(names, row, strict=True)]
            for index, row in enumerate(rows)
        ]
    if max(map(len, filter(None, chain.from_iterable(rows))), default=0) > MAX_TEXT_LENGTH:
        for index, row in enumerate(rows):
            for name, value in zip(names, row, strict=True):
                if value is not None and len(value) > MAX_TEXT_LENGTH:
                    raise _feature_error(name, f"must be at most {MAX_TEXT_LENGTH} characters long", index)
    block = np.empty((len(names), len(rows)), dtype=object)
    if rows and names:
        block.T[...] = rows
    return block


def records_to_columns(records: Sequence[Mapping[str, object]], spec: FeatureSpec) -> Columns:
    """Validate JSON records (``{feature name: value}``) and turn them into :data:`Columns`.

    A missing key or ``None`` means missing (imputed later). Raises :class:`FeatureValidationError` with
    ``field="features.<name>"`` and ``record_index`` for: a key that is not a feature of the schema (typos
    are refused rather than silently imputed); a numerical value that is not a number, is a bool, is not
    finite or has an absolute value above 1e12; a categorical value that is neither a string nor an integer
    (integers are converted with ``str``); a string longer than 200 characters.
    """
    plan = spec._plan
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise FeatureValidationError("features", f"must be an object, got {_describe(record)}", record_index=index)
    unknown = set().union(*(record.keys() for record in records)) - plan.feature_names
    if unknown:
        index, key = next((index, key) for index, record in enumerate(records) for key in record if key in unknown)
        raise _feature_error(str(key), "is not a feature of the model's schema", index)

    numeric = _numeric_block(plan.numerical, [list(map(record.get, plan.numerical)) for record in records])
    text = _text_block(plan.categorical, [list(map(record.get, plan.categorical)) for record in records])
    columns: Columns = dict(zip(plan.numerical, numeric, strict=True))
    columns.update(zip(plan.categorical, text, strict=True))
    return columns


def prepare_features(columns: Columns, spec: FeatureSpec) -> PreparedFeatures:
    """Build the ONNX inputs (``spec.model_inputs``) from raw columns, imputing and reporting.

    Missing numerics (NaN/inf) get the training median before derived features are computed; missing
    categoricals and categories unseen in training get the training mode. Columns absent from ``columns``
    are treated as all missing.
    """
    plan = spec._plan
    n = _n_rows(columns, plan.numerical + plan.categorical)
    imputed: dict[str, np.ndarray] = {}

    # Raw numericals as one (k, n) float64 block, so that checking for missing values is one operation.
    raw = np.empty((len(plan.numerical), n), dtype=np.float64)
    for row, (name, fill) in enumerate(zip(plan.numerical, plan.numeric_fill, strict=True)):
        values = columns.get(name)
        if values is None:
            raw[row] = fill
            imputed[name] = np.ones(n, dtype=bool)
        else:
            raw[row] = values
    missing = ~np.isfinite(raw)
    if missing.any():
        for row in np.flatnonzero(missing.any(axis=1)):
            name = plan.numerical[row]
            raw[row, missing[row]] = plan.numeric_fill[row]
            imputed[name] = missing[row]

    model = np.empty((len(plan.model_numerical), n, 1), dtype=np.float32)
    model[: len(plan.numerical), :, 0] = raw
    if plan.derived:
        derivation = _Derivation(dict(zip(plan.numerical, raw, strict=True)), spec.high_value_threshold)
        for row, feature in enumerate(plan.derived, start=len(plan.numerical)):
            model[row, :, 0] = feature.formula(derivation)
    inputs: dict[str, np.ndarray] = dict(zip(plan.model_numerical, model, strict=True))

    for name, fill, known_categories in zip(plan.categorical, plan.categorical_fill, plan.category_sets, strict=True):
        values = columns.get(name)
        if values is None:
            inputs[name] = np.full((n, 1), fill, dtype=object)
            imputed[name] = np.ones(n, dtype=bool)
            continue
        values = np.asarray(values, dtype=object)
        known = np.fromiter(map(known_categories.__contains__, values), dtype=bool, count=n)
        if not known.all():
            values = np.where(known, values, fill)
            imputed[name] = ~known
        inputs[name] = values.reshape(n, 1)

    return PreparedFeatures(inputs=inputs, imputed=imputed)


def imputed_features(prepared: PreparedFeatures, row: int) -> list[str]:
    """Sorted names of the raw columns whose value was imputed for ``row``."""
    return sorted(name for name, mask in prepared.imputed.items() if mask[row])
