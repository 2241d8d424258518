"""Data schema validation and the shared feature code (numpy only, no model needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from mlops.core.errors import DomainError, FeatureValidationError
from mlops.data.derived_features import DERIVED_FEATURES
from mlops.data.feature_fitting import fit_feature_spec
from mlops.data.feature_spec import FeatureSpec
from mlops.data.features import imputed_features, prepare_features, records_to_columns
from mlops.data.schema import DataSchema

ROOT = Path(__file__).resolve().parents[2]
TELECOM_SCHEMA = ROOT / "data" / "telecom_churn.schema.json"

NUMERICAL = [
    "account_length",
    "number_vmail_messages",
    *(f"total_{part}_{kind}" for part in ("day", "eve", "night", "intl") for kind in ("minutes", "calls", "charge")),
    "number_customer_service_calls",
]
ALL_DERIVED = [
    "total_minutes",
    "total_calls",
    "total_charges",
    "avg_call_duration",
    "revenue_per_minute",
    "high_service_calls",
    "is_new_customer",
    "is_high_value",
]


def telecom_row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "account_length": 100.0,
        "number_vmail_messages": 0.0,
        "total_day_minutes": 200.0,
        "total_day_calls": 100.0,
        "total_day_charge": 34.0,
        "total_eve_minutes": 200.0,
        "total_eve_calls": 100.0,
        "total_eve_charge": 17.0,
        "total_night_minutes": 200.0,
        "total_night_calls": 100.0,
        "total_night_charge": 9.0,
        "total_intl_minutes": 10.0,
        "total_intl_calls": 4.0,
        "total_intl_charge": 2.7,
        "number_customer_service_calls": 1.0,
        "state": "KS",
        "area_code": "area_code_415",
        "international_plan": "no",
        "voice_mail_plan": "yes",
    }
    row.update(overrides)
    return row


@pytest.fixture(scope="module")
def schema() -> DataSchema:
    return DataSchema.from_file(TELECOM_SCHEMA)


@pytest.fixture(scope="module")
def training_columns() -> dict[str, np.ndarray]:
    # Five training customers; day charges 10..50, so total charges are 28.7 + 10 * k (k = 1..5).
    rows = [
        telecom_row(total_day_charge=10.0 * k, account_length=float(20 * k), state=state)
        for k, state in zip(range(1, 6), ["KS", "OH", "OH", "NJ", "OH"], strict=True)
    ]
    columns = {name: np.array([row[name] for row in rows], dtype=np.float64) for name in NUMERICAL}
    for name in ("state", "area_code", "international_plan", "voice_mail_plan"):
        columns[name] = np.array([row[name] for row in rows], dtype=object)
    # One missing day-minutes value: it must be ignored when learning the median.
    columns["total_day_minutes"] = np.array([100.0, np.nan, 300.0, 400.0, 500.0])
    return columns


@pytest.fixture(scope="module")
def spec(schema: DataSchema, training_columns: dict[str, np.ndarray]) -> FeatureSpec:
    return fit_feature_spec(training_columns, schema)


def as_columns(spec: FeatureSpec, *rows: dict[str, object]) -> dict[str, np.ndarray]:
    return records_to_columns(list(rows), spec)


# ------------------------------------------------------------------------------------------------ schema


def test_telecom_schema_file_is_valid_and_documented(schema: DataSchema) -> None:
    # Given the telecom schema file / When it is loaded / Then it describes the CSV header exactly
    header = (ROOT / "data" / "telecom_churn.csv").read_text().splitlines()[0].split(",")
    assert schema.dataset_name == "telecom_churn"
    assert schema.description
    assert sorted([schema.id_column, schema.target, *schema.feature_columns]) == sorted(header)
    assert schema.positive_label == "yes"
    assert schema.feature_columns == schema.numerical + schema.categorical


def base_schema(**overrides: object) -> dict[str, object]:
    document: dict[str, object] = {
        "id_column": "customer_id",
        "target": "churned",
        "positive_label": "Y",
        "numerical": ["tenure_months", "monthly_fee"],
        "categorical": ["plan_type"],
    }
    document.update(overrides)
    return document


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"categorical": ["tenure_months"]}, "both numerical and categorical"),
        ({"numerical": ["customer_id", "monthly_fee"]}, "id_column 'customer_id' cannot also be a feature"),
        ({"categorical": ["churned"]}, "target 'churned' cannot also be a feature"),
        ({"numerical": [], "categorical": []}, "at least one"),
        ({"numerical": ["monthly fee"]}, "not a valid column name"),
        ({"numerical": ["fee", "fee"]}, "duplicated"),
        ({"target": "customer_id"}, "must be different"),
    ],
)
def test_schema_validation_errors(overrides: dict[str, object], fragment: str) -> None:
    # Given an inconsistent schema document / When it is parsed / Then a validation error explains why
    with pytest.raises(ValidationError, match=fragment):
        DataSchema.from_json(json.dumps(base_schema(**overrides)))


def test_schema_requires_the_core_keys() -> None:
    # Given a schema document without positive_label / When parsed / Then the missing key is named
    document = base_schema()
    del document["positive_label"]
    with pytest.raises(ValidationError, match="positive_label"):
        DataSchema.from_json(json.dumps(document))


def test_schema_keeps_extra_keys_and_defaults(tmp_path: Path) -> None:
    # Given a schema file with an extra annotation and no optional keys
    path = tmp_path / "s.schema.json"
    path.write_text(json.dumps(base_schema(owner="churn-team")))
    # When it is read from disk
    loaded = DataSchema.from_file(path)
    # Then the annotation is kept, defaults apply and the schema is immutable
    assert loaded.model_extra == {"owner": "churn-team"}
    assert loaded.derived_features is True
    assert loaded.dataset_name is None
    with pytest.raises(ValidationError):
        loaded.target = "other"


# ------------------------------------------------------------------------------------------------ spec


def test_fit_learns_medians_modes_categories_and_threshold(spec: FeatureSpec) -> None:
    # Given five training rows (fixture) / When the spec is fitted / Then it holds what scoring needs
    assert spec.numeric_fill["total_day_minutes"] == 350.0  # median of 100, 300, 400, 500 (NaN ignored)
    assert spec.numeric_fill["total_day_charge"] == 30.0
    assert spec.categorical_fill["state"] == "OH"
    assert spec.categories["state"] == ["KS", "NJ", "OH"]
    # total charges 38.7, 48.7, 58.7, 68.7, 78.7 -> 80th percentile (linear interpolation) = 70.7
    assert spec.high_value_threshold == pytest.approx(70.7)
    assert spec.derived == ALL_DERIVED
    assert spec.model_numerical == NUMERICAL + ALL_DERIVED
    assert spec.model_categorical == ["state", "area_code", "international_plan", "voice_mail_plan"]
    assert spec.model_inputs == spec.model_numerical + spec.model_categorical


def test_feature_spec_json_round_trip_is_exact(spec: FeatureSpec) -> None:
    # Given a fitted spec / When it is serialised with aliases and parsed back
    document = spec.model_dump_json(by_alias=True)
    restored = FeatureSpec.model_validate_json(document)
    # Then nothing is lost: same values, same inputs, and the schema sits under the "schema" key
    assert restored == spec
    assert restored.model_inputs == spec.model_inputs
    assert restored.high_value_threshold == spec.high_value_threshold
    assert "schema" in json.loads(document)
    assert FeatureSpec.model_validate_json(spec.model_dump_json()) == spec


def test_feature_spec_rejects_inconsistent_documents(spec: FeatureSpec) -> None:
    # Given a stored spec whose fills lack a column, or that names an unknown derived feature
    document = json.loads(spec.model_dump_json())
    missing_fill = json.loads(json.dumps(document))
    del missing_fill["numeric_fill"]["account_length"]
    unknown_derived = json.loads(json.dumps(document))
    unknown_derived["derived"].append("lifetime_value")
    # When they are loaded / Then they are refused
    with pytest.raises(ValidationError, match="numeric_fill"):
        FeatureSpec.model_validate(missing_fill)
    with pytest.raises(ValidationError, match="lifetime_value"):
        FeatureSpec.model_validate(unknown_derived)


def test_derived_features_can_be_disabled_or_lack_sources(schema: DataSchema, training_columns) -> None:
    # Given the same data with derived features disabled, and a schema lacking the intl charge column
    disabled = schema.model_copy(update={"derived_features": False})
    partial = schema.model_copy(update={"numerical": [n for n in schema.numerical if n != "total_intl_charge"]})
    # When specs are fitted
    disabled_spec = fit_feature_spec(training_columns, disabled)
    partial_spec = fit_feature_spec(training_columns, partial)
    # Then only derived features whose sources all exist are computed
    assert disabled_spec.derived == []
    assert disabled_spec.high_value_threshold is None
    assert partial_spec.derived == [
        "total_minutes",
        "total_calls",
        "avg_call_duration",
        "high_service_calls",
        "is_new_customer",
    ]


# ------------------------------------------------------------------------------------------------ derived


def test_derived_feature_values_on_a_hand_made_row(spec: FeatureSpec) -> None:
    # Given one complete customer row
    row = telecom_row(number_customer_service_calls=4.0, account_length=12.0, total_day_charge=60.0)
    # When features are prepared
    prepared = prepare_features(as_columns(spec, row), spec)
    values = {name: prepared.inputs[name][0, 0] for name in spec.model_numerical}
    # Then each derived value follows its definition (float32 inputs)
    assert values["total_minutes"] == np.float32(610.0)
    assert values["total_calls"] == np.float32(304.0)
    assert values["total_charges"] == np.float32(88.7)
    assert values["avg_call_duration"] == np.float32(610.0 / 304.0)
    assert values["revenue_per_minute"] == np.float32(88.7 / 610.0)
    assert values["high_service_calls"] == 1.0
    assert values["is_new_customer"] == 1.0
    assert values["is_high_value"] == 1.0  # 88.7 >= 70.7
    assert prepared.imputed == {}
    assert all(prepared.inputs[name].shape == (1, 1) for name in spec.model_inputs)
    assert all(prepared.inputs[name].dtype == np.float32 for name in spec.model_numerical)
    assert all(prepared.inputs[name].dtype == object for name in spec.model_categorical)


def test_derived_ratios_are_zero_when_the_denominator_is_zero(spec: FeatureSpec) -> None:
    # Given a customer with no calls and no minutes at all
    silent = {f"total_{p}_{k}": 0.0 for p in ("day", "eve", "night", "intl") for k in ("minutes", "calls")}
    row = telecom_row(**silent, number_customer_service_calls=3.0, account_length=30.0)
    # When features are prepared
    inputs = prepare_features(as_columns(spec, row), spec).inputs
    # Then the ratios are 0 (not NaN/inf) and the threshold flags sit just under their limits
    assert inputs["avg_call_duration"][0, 0] == 0.0
    assert inputs["revenue_per_minute"][0, 0] == 0.0
    assert inputs["high_service_calls"][0, 0] == 0.0  # 3 is not > 3
    assert inputs["is_new_customer"][0, 0] == 0.0  # 30 is not < 30
    assert inputs["is_high_value"][0, 0] == 0.0  # 62.7 < 70.7


def test_derived_table_declares_every_feature_once() -> None:
    # Given the declarative table / Then names are unique and each has sources and a description
    names = [feature.name for feature in DERIVED_FEATURES]
    assert names == ALL_DERIVED
    assert all(feature.sources and feature.description for feature in DERIVED_FEATURES)


# ------------------------------------------------------------------------------------------------ imputation


def test_missing_numerics_get_training_medians_before_derivation(spec: FeatureSpec) -> None:
    # Given two rows, the second one without day minutes (None) nor day charge (key absent)
    complete = telecom_row()
    incomplete = telecom_row(total_day_minutes=None)
    del incomplete["total_day_charge"]
    # When features are prepared
    prepared = prepare_features(as_columns(spec, complete, incomplete), spec)
    # Then the medians fill the holes, derived features use them, and the masks say where
    assert prepared.inputs["total_day_minutes"][:, 0].tolist() == [200.0, 350.0]
    assert prepared.inputs["total_day_charge"][:, 0].tolist() == [34.0, 30.0]
    assert prepared.inputs["total_minutes"][1, 0] == np.float32(350.0 + 200.0 + 200.0 + 10.0)
    assert prepared.inputs["total_charges"][1, 0] == np.float32(30.0 + 17.0 + 9.0 + 2.7)
    assert set(prepared.imputed) == {"total_day_minutes", "total_day_charge"}
    assert prepared.imputed["total_day_minutes"].tolist() == [False, True]
    assert imputed_features(prepared, 0) == []
    assert imputed_features(prepared, 1) == ["total_day_charge", "total_day_minutes"]


def test_unseen_and_missing_categories_get_the_mode_and_are_reported(spec: FeatureSpec) -> None:
    # Given rows with an unseen state, a missing state and a known state
    rows = [telecom_row(state="ZZ"), telecom_row(state=None), telecom_row(state="NJ")]
    # When features are prepared
    prepared = prepare_features(as_columns(spec, *rows), spec)
    # Then unknown/missing values become the training mode and are reported per row
    assert prepared.inputs["state"][:, 0].tolist() == ["OH", "OH", "NJ"]
    assert prepared.imputed["state"].tolist() == [True, True, False]
    assert imputed_features(prepared, 0) == ["state"]
    assert imputed_features(prepared, 2) == []


def test_absent_columns_are_all_missing(spec: FeatureSpec) -> None:
    # Given raw columns holding only the state of three customers
    columns = {"state": np.array(["KS", "OH", None], dtype=object)}
    # When features are prepared
    prepared = prepare_features(columns, spec)
    # Then every other input is filled for every row and reported as such
    assert prepared.inputs["account_length"][:, 0].tolist() == [spec.numeric_fill["account_length"]] * 3
    assert prepared.inputs["voice_mail_plan"][:, 0].tolist() == [spec.categorical_fill["voice_mail_plan"]] * 3
    assert imputed_features(prepared, 0) == sorted(set(spec.data_schema.feature_columns) - {"state"})
    assert "state" in imputed_features(prepared, 2)
    assert list(prepared.inputs) == spec.model_inputs


def test_prepare_refuses_columns_of_different_lengths(spec: FeatureSpec) -> None:
    # Given columns that disagree on the number of rows / When prepared / Then it fails loudly
    with pytest.raises(ValueError, match="same length"):
        prepare_features({"account_length": np.ones(2), "state": np.array(["KS"], dtype=object)}, spec)


def test_columns_path_and_records_path_give_identical_inputs(spec: FeatureSpec, training_columns) -> None:
    # Given the training columns and the same data as JSON records
    records = [
        {
            name: (None if isinstance(v, float) and np.isnan(v) else v)
            for name, v in zip(training_columns, row, strict=True)
        }
        for row in zip(*(values.tolist() for values in training_columns.values()), strict=True)
    ]
    # When both are prepared
    from_columns = prepare_features(training_columns, spec)
    from_records = prepare_features(records_to_columns(records, spec), spec)
    # Then the model inputs are identical
    for name in spec.model_inputs:
        np.testing.assert_array_equal(from_columns.inputs[name], from_records.inputs[name])
    assert from_records.imputed["total_day_minutes"].tolist() == [False, True, False, False, False]


# ------------------------------------------------------------------------------------------------ records


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("12", "must be a number, got str"),
        (True, "must be a number, got bool"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (1e13, "between"),
        (-(10**13), "between"),
        (10**400, "between"),
        ([1], "must be a number, got list"),
    ],
)
def test_invalid_numerical_values_name_the_field(spec: FeatureSpec, value: object, fragment: str) -> None:
    # Given a second record with a bad account_length / When converted / Then the field and record are named
    records = [telecom_row(), telecom_row(account_length=value)]
    with pytest.raises(FeatureValidationError, match=fragment) as caught:
        records_to_columns(records, spec)
    assert caught.value.field == "features.account_length"
    assert caught.value.record_index == 1
    assert isinstance(caught.value, DomainError)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (4.5, "must be a string, got float"),
        (False, "must be a string, got bool"),
        ({"code": "KS"}, "must be a string, got dict"),
        ("K" * 201, "at most 200 characters"),
    ],
)
def test_invalid_categorical_values_name_the_field(spec: FeatureSpec, value: object, fragment: str) -> None:
    # Given a record with a bad state / When converted / Then the error names features.state
    with pytest.raises(FeatureValidationError, match=fragment) as caught:
        records_to_columns([telecom_row(state=value)], spec)
    assert caught.value.field == "features.state"
    assert caught.value.record_index == 0


def test_unknown_feature_keys_are_refused(spec: FeatureSpec) -> None:
    # Given a record with a typo in a feature name (and the id column, which is not a feature)
    typo = telecom_row()
    typo["acount_length"] = typo.pop("account_length")
    # When converted / Then the unknown key is the error field instead of being silently imputed
    with pytest.raises(FeatureValidationError, match="not a feature") as caught:
        records_to_columns([telecom_row(), typo], spec)
    assert (caught.value.field, caught.value.record_index) == ("features.acount_length", 1)
    with pytest.raises(FeatureValidationError) as caught_id:
        records_to_columns([telecom_row(customer_id="C1")], spec)
    assert caught_id.value.field == "features.customer_id"


def test_records_accept_integers_and_missing_values(spec: FeatureSpec) -> None:
    # Given a record with an integer category, integer numbers, a None and a missing key
    record = telecom_row(area_code=415, account_length=7, number_vmail_messages=None)
    del record["state"]
    # When converted
    columns = records_to_columns([record], spec)
    # Then integers are converted and missing values are represented as NaN / None
    assert columns["area_code"].tolist() == ["415"]
    assert columns["account_length"].dtype == np.float64
    assert columns["account_length"].tolist() == [7.0]
    assert np.isnan(columns["number_vmail_messages"][0])
    assert columns["state"].tolist() == [None]


def test_a_record_must_be_an_object(spec: FeatureSpec) -> None:
    # Given a list holding something other than an object / When converted / Then the record is named
    with pytest.raises(FeatureValidationError, match="must be an object") as caught:
        records_to_columns([telecom_row(), ["KS"]], spec)  # type: ignore[list-item]
    assert (caught.value.field, caught.value.record_index) == ("features", 1)


def test_scoring_modules_do_not_import_pandas_or_sklearn() -> None:
    # Given a fresh interpreter / When the scoring-path modules are imported
    code = (
        "import sys, mlops.data.features, mlops.serving.onnx_model, mlops.data.schema, mlops.core.errors;"
        "bad = sorted({'pandas', 'sklearn', 'skl2onnx', 'skops'} & set(sys.modules)); print(bad)"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "layers" / "platform")},
    )
    # Then none of the training-only libraries were loaded
    assert result.stdout.strip() == "[]"
