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

Documented optional keys: ``dataset_name``, ``description``, ``derived_features`` (default true: compute
the telecom derived features of :mod:`mlops.data.features` where their source columns exist),
``label_time_column`` (when each row's label was observed), ``baseline_rule`` (the transparent decision a
model is compared with, e.g. ``{"column": "number_customer_service_calls", "operator": ">", "value": 3}``)
and ``segments`` (the groupings a model card reports metrics for: a name, a column and optionally named
groups of its values). Unknown extra keys are kept (``extra="allow"``) so that a data team, or a use case
such as the pilot's targets and campaign economics, can annotate the file without breaking the platform.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Column names become ONNX graph input names and error paths (``features.<name>``): keep them simple.
_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _check_name(name: str, role: str) -> str:
    if not _COLUMN_NAME.fullmatch(name):
        raise ValueError(
            f"{role} {name!r} is not a valid column name (letters, digits and underscores, "
            "not starting with a digit, at most 64 characters)"
        )
    return name


RuleOperator = Literal[">", ">=", "<", "<=", "==", "!="]


class DecisionRule(BaseModel):
    """A decision on one column, e.g. "more than 3 customer service calls -> churn": `column operator value`.

    Numbers compare numerically; a text value only with `==` or `!=`. A missing value never satisfies it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    operator: RuleOperator
    value: float | str
    description: str | None = None

    @field_validator("column")
    @classmethod
    def _valid_column(cls, value: str) -> str:
        return _check_name(value, "column")

    @model_validator(mode="after")
    def _text_compares_for_equality(self) -> Self:
        if isinstance(self.value, str) and self.operator not in ("==", "!="):
            raise ValueError(f"a text value compares with == or != only, not {self.operator}")
        return self

    def __str__(self) -> str:
        return f"{self.column} {self.operator} {self.value!r}"

    def applies(self, values: Sequence[object]) -> list[bool]:
        """The rule's decision per value (None or NaN: False)."""
        return [self._applies(value) for value in values]

    def _applies(self, value: object) -> bool:
        if value is None or (isinstance(value, float) and value != value):
            return False
        if isinstance(self.value, str):
            equal = str(value).strip() == self.value
            return equal if self.operator == "==" else not equal
        number, limit = float(value), float(self.value)  # type: ignore[arg-type]
        return {
            ">": number > limit,
            ">=": number >= limit,
            "<": number < limit,
            "<=": number <= limit,
            "==": number == limit,
            "!=": number != limit,
        }[self.operator]


class SegmentSpec(BaseModel):
    """One grouping of a model card: the column's values, or named groups of them (unlisted values: `other`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    groups: dict[str, list[str | float]] | None = Field(
        default=None, description="e.g. Census regions: {'Northeast': ['CT', 'ME', ...], ...}"
    )


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
    baseline_rule: DecisionRule | None = None
    segments: dict[str, SegmentSpec] | None = None
    label_time_column: str | None = Field(
        default=None,
        description="When each row's label was observed: training reads each customer's features from the "
        "feature store at its own label time (default: the file's snapshot time for every row).",
    )

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
        features = set(self.feature_columns)
        if self.baseline_rule is not None and self.baseline_rule.column not in features:
            raise ValueError(f"baseline_rule: {self.baseline_rule.column!r} is not a feature of the schema")
        rule = self.baseline_rule
        if rule is not None and isinstance(rule.value, str) and rule.column in self.numerical:
            raise ValueError(f"baseline_rule: {rule.column!r} is numerical, its value must be a number")
        unknown = sorted(s.column for s in (self.segments or {}).values() if s.column not in features)
        if unknown:
            raise ValueError(f"segments: {unknown} are not features of the schema")
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
