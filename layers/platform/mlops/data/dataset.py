"""Reading a data set described by its schema, its labels, the train/test split and model-input frames.

Uses pandas (and scikit-learn for the stratified split): imported by training and batch code, never by the
Lambda scoring path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import IO, Any, overload

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from mlops.core.errors import DataValidationError
from mlops.data.features import Columns, PreparedFeatures
from mlops.data.schema import DataSchema


@overload
def read_dataset(
    path_or_buffer: str | os.PathLike[str] | IO[str] | IO[bytes],
    schema: DataSchema,
    *,
    require_target: bool = False,
    chunksize: None = None,
) -> pd.DataFrame: ...


@overload
def read_dataset(
    path_or_buffer: str | os.PathLike[str] | IO[str] | IO[bytes],
    schema: DataSchema,
    *,
    require_target: bool = False,
    chunksize: int,
) -> Iterator[pd.DataFrame]: ...


def read_dataset(
    path_or_buffer: str | os.PathLike[str] | IO[str] | IO[bytes],
    schema: DataSchema,
    *,
    require_target: bool = False,
    chunksize: int | None = None,
) -> pd.DataFrame | Iterator[pd.DataFrame]:
    """Read a CSV described by ``schema`` (all of it, or an iterator of ``chunksize``-row frames).

    The id column and categoricals are read as text (missing categoricals become ``None``), numericals as
    float (missing, blank or infinite -> NaN); other columns are kept as read. Every feature column and the id
    column must be present; the target column is optional unless ``require_target`` (scoring files have
    none); rows with a missing target are kept (see :func:`labels`). Raises
    :class:`~mlops.core.errors.DataValidationError` naming the column for a missing column or non-numeric text
    in a numerical column.
    """
    text_columns = [schema.id_column, *schema.categorical, schema.target]
    options: dict[str, Any] = {"dtype": dict.fromkeys(text_columns, str), "keep_default_na": True}
    if chunksize is None:
        return _normalise(pd.read_csv(path_or_buffer, **options), schema, require_target)
    return _normalised_chunks(pd.read_csv(path_or_buffer, chunksize=chunksize, **options), schema, require_target)


def _normalised_chunks(
    reader: Iterator[pd.DataFrame], schema: DataSchema, require_target: bool
) -> Iterator[pd.DataFrame]:
    with reader as chunks:  # type: ignore[attr-defined]  # pandas' TextFileReader is a context manager
        for chunk in chunks:
            yield _normalise(chunk, schema, require_target)


def _normalise(frame: pd.DataFrame, schema: DataSchema, require_target: bool) -> pd.DataFrame:
    required = [schema.id_column, *schema.feature_columns] + ([schema.target] if require_target else [])
    absent = [column for column in required if column not in frame.columns]
    if absent:
        raise DataValidationError(absent[0], f"columns missing from the data: {absent}")
    for column in schema.numerical:
        raw = frame[column]
        if not pd.api.types.is_numeric_dtype(
            raw
        ):  # text among the numbers: a blank cell (" ", as exports often write) is missing
            raw = raw.where(~raw.astype(str).str.fullmatch(r"\s*"), np.nan)
        try:
            values = pd.to_numeric(raw, errors="raise").astype(np.float64)
        except (ValueError, TypeError) as error:
            raise DataValidationError(
                column, f"numerical column {column!r} holds non-numeric values: {error}"
            ) from None
        frame[column] = values.where(np.isfinite(values), np.nan)
    for column in [schema.id_column, *schema.categorical]:
        frame[column] = _text_series(frame[column])
    if schema.target in frame.columns:
        frame[schema.target] = _text_series(frame[schema.target])
    return frame


def _text_series(series: pd.Series) -> pd.Series:
    """Text as read; a missing or blank (whitespace-only) cell is None."""
    values = series.astype(object)
    present = values.notna() & ~values.astype(str).str.fullmatch(r"\s*")
    return values.where(present, None)


def frame_to_columns(df: pd.DataFrame, schema: DataSchema) -> Columns:
    """The schema's feature columns present in ``df`` as :data:`mlops.data.features.Columns`."""
    columns: Columns = {}
    for name in schema.numerical:
        if name in df.columns:
            columns[name] = pd.to_numeric(df[name]).to_numpy(dtype=np.float64, na_value=np.nan)
    for name in schema.categorical:
        if name in df.columns:
            values = df[name].astype(object)
            columns[name] = values.where(values.notna(), None).to_numpy(dtype=object)
    return columns


def labels(df: pd.DataFrame, schema: DataSchema) -> np.ndarray:
    """1 where the target equals ``positive_label`` (compared as stripped strings), else 0 (int64)."""
    if schema.target not in df.columns:
        raise ValueError(f"the data set has no target column {schema.target!r}")
    target = df[schema.target]
    if target.isna().any():
        raise ValueError(f"the target column {schema.target!r} has {int(target.isna().sum())} missing values")
    return (target.astype(str).str.strip() == schema.positive_label.strip()).to_numpy(dtype=np.int64)


def split_dataset(
    df: pd.DataFrame, schema: DataSchema, test_size: float = 0.2, seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified (on the target) train/test split; both parts get a fresh 0..n-1 index."""
    train, test = train_test_split(df, test_size=test_size, random_state=seed, stratify=labels(df, schema))
    return train.reset_index(drop=True), test.reset_index(drop=True)


def prepared_to_frame(prepared: PreparedFeatures) -> pd.DataFrame:
    """Model inputs as a DataFrame (same column names; float32 numerics, object strings)."""
    return pd.DataFrame(
        {name: pd.Series(values[:, 0], dtype=values.dtype, copy=False) for name, values in prepared.inputs.items()},
        copy=False,
    )
