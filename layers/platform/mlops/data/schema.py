"""Declarative description of a tabular churn data set (which columns are features, id and target).

A schema is a small JSON document stored next to the data, e.g. ``data/telecom_churn.schema.json``::

    {
      "dataset_name": "telecom_churn",
      "id_column": "customer_id",
      "target": "churn",
      "positive_label": "yes",
      "numerical": ["account_length", "..."],
      "categorical": ["state", "..."]
    }

Documented optional keys: ``dataset_name``, ``description`` and ``derived_features`` (default true: compute
the telecom derived features of :mod:`mlops.data.features` where their source columns exist). Unknown extra
keys are kept (``extra="allow"``) so that a data team can annotate the file without breaking the platform.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

# Column names become ONNX graph input names and error paths (``features.<name>``): keep them simple.
_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _check_name(name: str, role: str) -> str:
    if not _COLUMN_NAME.fullmatch(name):
        raise ValueError(
            f"{role} {name!r} is not a valid column name (letters, digits and underscores, "
            "not starting with a digit, at most 64 characters)"
        )
    return name


class DataSchema(BaseModel):
    """Which columns of a data set are the id, the target and the numerical/categorical features."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id_column: str
    target: str
    positive_label: str
    numerical: list[str]
    categorical: list[str]
    dataset_name: str | None = None
    description: str | None = None
    derived_features: bool = True

    @field_validator("id_column", "target")
    @classmethod
    def _valid_single_name(cls, value: str) -> str:
        return _check_name(value, "column")

    @field_validator("numerical", "categorical")
    @classmethod
    def _valid_names(cls, values: list[str]) -> list[str]:
        for name in values:
            _check_name(name, "feature")
        duplicates = sorted({name for name in values if values.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicated feature names: {duplicates}")
        return values

    @field_validator("positive_label")
    @classmethod
    def _non_empty_label(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("positive_label must not be empty")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.id_column == self.target:
            raise ValueError("id_column and target must be different columns")
        both = sorted(set(self.numerical) & set(self.categorical))
        if both:
            raise ValueError(f"columns cannot be both numerical and categorical: {both}")
        for role, column in (("id_column", self.id_column), ("target", self.target)):
            if column in self.numerical or column in self.categorical:
                raise ValueError(f"{role} {column!r} cannot also be a feature")
        if not self.numerical and not self.categorical:
            raise ValueError("the schema needs at least one numerical or categorical feature")
        return self

    @property
    def feature_columns(self) -> list[str]:
        """Raw feature columns: numerical then categorical, in schema order."""
        return [*self.numerical, *self.categorical]

    @classmethod
    def from_json(cls, data: str | bytes) -> DataSchema:
        """Parse and validate a schema JSON document (raises ``pydantic.ValidationError``)."""
        return cls.model_validate_json(data)

    @classmethod
    def from_file(cls, path: str | Path) -> DataSchema:
        """Read and validate a schema JSON file."""
        return cls.from_json(Path(path).read_bytes())
