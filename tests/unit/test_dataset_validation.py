"""The pilot's data checks: what it refuses to learn from, and the rows it drops."""

from __future__ import annotations

import io

import pytest

from mlops.core.errors import DataValidationError
from mlops.data.dataset import read_dataset
from mlops.data.schema import DataSchema
from mlops.pilot.training import validate_dataset

SCHEMA = DataSchema(id_column="id", target="churn", positive_label="yes", numerical=["fee"], categorical=["plan"])


def frame_of(rows: list[str]):
    return read_dataset(io.StringIO("id,fee,plan,churn\n" + "\n".join(rows) + "\n"), SCHEMA, require_target=True)


def test_rows_without_a_label_are_dropped_and_counted() -> None:
    frame = frame_of([f"c{i},{i},a,{'yes' if i % 2 else 'no'}" for i in range(8)] + ["c9,1,a,"])
    kept, dropped = validate_dataset(frame, SCHEMA, min_per_class=4)
    assert (len(kept), dropped) == (8, 1)


def test_duplicate_ids_are_refused_naming_the_id() -> None:
    frame = frame_of(["c1,1,a,yes", "c1,2,a,no", "c2,3,b,no"])
    with pytest.raises(DataValidationError, match="duplicate id 'c1'") as error:
        validate_dataset(frame, SCHEMA, min_per_class=1)
    assert error.value.field == "id"


def test_too_few_rows_of_a_class_are_refused() -> None:
    frame = frame_of(["c1,1,a,yes"] + [f"c{i},{i},a,no" for i in range(2, 12)])
    with pytest.raises(DataValidationError, match="at least 4 rows of each class, got 1 positive"):
        validate_dataset(frame, SCHEMA, min_per_class=4)


def test_a_file_without_the_target_column_is_refused_when_read() -> None:
    with pytest.raises(DataValidationError) as error:
        read_dataset(io.StringIO("id,fee,plan\nc1,1,a\n"), SCHEMA, require_target=True)
    assert error.value.field == "churn"


def test_blank_cells_are_missing_values_in_number_and_text_columns() -> None:
    # Given an export that writes a blank as a space, as the Telco churn file's TotalCharges does
    schema = DataSchema(id_column="id", target="y", positive_label="1", numerical=["total"], categorical=["plan"])
    data = "id,total,plan,y\na,1.5,basic,1\nb, ,  ,0\nc,,premium,0\n"
    # When it is read
    frame = read_dataset(io.StringIO(data), schema, require_target=True)
    # Then the blank number is NaN and the blank text None, like an empty cell; the rest is read as written
    assert frame["total"].isna().tolist() == [False, True, True]
    assert frame["plan"].tolist() == ["basic", None, "premium"]
    # And text that is not a number is still refused, naming the column
    with pytest.raises(DataValidationError, match="total"):
        read_dataset(io.StringIO("id,total,plan,y\na,abc,basic,1\n"), schema)
