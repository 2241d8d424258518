"""The one feature-preparation code path shared by training, batch scoring and the online handler.

numpy only (this module runs in the Lambda scoring path next to onnxruntime): no pandas, no scikit-learn.

Data flows as :data:`Columns`, a mapping ``raw column name -> 1-D numpy array``:

* numerical columns are float arrays, ``NaN`` meaning missing;
* categorical columns are object arrays holding ``str`` or ``None`` (missing).

:func:`mlops.data.feature_fitting.fit_feature_spec` learns a :class:`~mlops.data.feature_spec.FeatureSpec` on
the training rows (medians, modes, seen categories, the high-value threshold); :func:`prepare_features` turns any
:data:`Columns` into the exact ONNX inputs (``spec.model_inputs``), imputing missing values and reporting where
it did; :func:`records_to_columns` validates JSON records (online requests) and turns them into :data:`Columns`.
The derived features are declared in :mod:`mlops.data.derived_features`.

Everything on the scoring path is vectorised over columns: the work per call is a fixed number of numpy
operations per column, whatever the number of rows.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import NamedTuple

import numpy as np

from mlops.core.errors import FeatureValidationError
from mlops.data.derived_features import Derivation
from mlops.data.feature_spec import FeatureSpec

Columns = dict[str, np.ndarray]
"""Raw columns: float arrays (NaN = missing) for numbers, object arrays of ``str | None`` for text."""

MAX_ABS_NUMBER = 1e12
"""Largest absolute value accepted for a numerical feature in a request."""
MAX_TEXT_LENGTH = 200
"""Longest string accepted for a categorical feature in a request."""


class PreparedFeatures(NamedTuple):
    """Model inputs plus where values were imputed.

    ``inputs[name]`` is a (n, 1) float32 array per numerical model input and a (n, 1) object array of ``str``
    per categorical one, keyed and ordered like ``spec.model_inputs``. ``imputed[col]`` is a (n,) bool mask
    for each raw column with at least one filled value (missing, or a category unseen in training).
    """

    inputs: dict[str, np.ndarray]
    imputed: dict[str, np.ndarray]


def row_count(columns: Mapping[str, np.ndarray], names: Sequence[str]) -> int:
    """Common length of the named columns present (or of any column if none is); checks 1-D shapes."""
    present = [columns[name] for name in names if name in columns] or list(columns.values())
    if not present:
        raise ValueError("no columns given: cannot tell the number of rows")
    shapes = {values.shape if isinstance(values, np.ndarray) else np.shape(values) for values in present}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"columns must be one-dimensional and of the same length, got shapes {sorted(shapes)}")
    return next(iter(shapes))[0]


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
    plan = spec.plan
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
    plan = spec.plan
    n = row_count(columns, plan.numerical + plan.categorical)
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
        derivation = Derivation(dict(zip(plan.numerical, raw, strict=True)), spec.high_value_threshold)
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
