"""The customer generator, fitted on a training split only, draws customers like the data set's for any schema;
and the Telco-shaped data set of tests/datasets is what its script writes, in the shape the platform reads."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from helpers import PROJECT_ROOT, TELECOM_CSV, TELECOM_SCHEMA
from mlops.data.dataset import frame_to_columns, labels, prepared_to_frame, read_dataset, split_dataset
from mlops.data.feature_fitting import fit_feature_spec
from mlops.data.features import prepare_features
from mlops.data.schema import DataSchema
from mlops.pilot.synthetic import CustomerGenerator, main
from mlops.training.selection import train_and_select

DATASETS_DIR = PROJECT_ROOT / "tests" / "datasets"
TELCO_CSV = DATASETS_DIR / "telco_churn.csv"
TELCO_SCHEMA = DATASETS_DIR / "telco_churn.schema.json"
FILES = {"telecom": (TELECOM_CSV, TELECOM_SCHEMA), "telco": (TELCO_CSV, TELCO_SCHEMA)}
GENERATED_ROWS = 20_000


class Fitted:
    """A data set split as the pilot splits it, a generator fitted on its training part, and its customers
    (built once per data set; the tests only read them)."""

    def __init__(self, name: str) -> None:
        csv, schema_path = FILES[name]
        self.schema = DataSchema.from_file(schema_path)
        self.real = read_dataset(csv, self.schema, require_target=True)
        self.train, self.test = split_dataset(self.real, self.schema, test_size=0.2, seed=42)
        self.generator = CustomerGenerator.fit(self.train, self.schema, seed=3)
        self.synthetic = self.generator.generate(GENERATED_ROWS, np.random.default_rng(7))


@functools.cache
def fitted_once(name: str) -> Fitted:
    return Fitted(name)


@pytest.fixture(params=["telecom", "telco"])
def fitted(request: pytest.FixtureRequest) -> Fitted:
    return fitted_once(request.param)


@pytest.fixture
def telco() -> Fitted:
    return fitted_once("telco")


@pytest.fixture
def telecom() -> Fitted:
    return fitted_once("telecom")


def churn_rate(frame: pd.DataFrame, schema: DataSchema) -> float:
    return float(labels(frame, schema).mean())


def shares(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), "<missing>").value_counts(normalize=True)


def test_generated_customers_have_the_training_columns_and_distributions(fitted: Fitted) -> None:
    # Given customers drawn from a generator fitted on the training split only
    synthetic, train, schema = fitted.synthetic, fitted.train, fitted.schema
    # Then they have the data set's columns, in its order
    assert list(synthetic.columns) == list(train.columns)
    # And every category, a missing cell included, has its training share within two points
    for column in schema.categorical:
        real, generated = shares(train[column]), shares(synthetic[column])
        assert set(generated.index) <= set(real.index), column
        assert (real - generated.reindex(real.index, fill_value=0)).abs().max() < 0.02, column
    # And every numerical column its mean, spread and missing rate, and its distribution within 5 points
    # everywhere (Kolmogorov-Smirnov distance)
    for column in schema.numerical:
        real, generated = train[column].astype(float), synthetic[column].astype(float)
        spread = real.std()
        assert abs(generated.mean() - real.mean()) < 0.05 * spread, column
        assert generated.std() == pytest.approx(spread, rel=0.06), column
        assert ks_2samp(real.dropna(), generated.dropna()).statistic < 0.05, column
        assert abs(generated.isna().mean() - real.isna().mean()) < 0.003, column


def test_generated_customers_churn_at_the_training_rate(fitted: Fitted) -> None:
    # Given customers drawn from the generator
    schema = fitted.schema
    # Then they churn about as often as the training customers
    assert churn_rate(fitted.synthetic, schema) == pytest.approx(churn_rate(fitted.train, schema), abs=0.015)
    # And their labels are drawn from the generator's own churn probabilities
    probabilities = fitted.generator.churn_probability(fitted.synthetic)
    assert float(probabilities.mean()) == pytest.approx(churn_rate(fitted.synthetic, schema), abs=0.01)


def test_the_simulation_truth_ranks_and_calibrates_the_held_out_customers(fitted: Fitted) -> None:
    # Given the generator's churn model, fitted on the training split
    schema, test = fitted.schema, fitted.test
    # When it scores the held-out customers it never saw
    probabilities = fitted.generator.churn_probability(test)
    # Then it ranks them as a real churn model does, and its mean is their churn rate
    assert roc_auc_score(labels(test, schema), probabilities) > 0.8
    assert float(probabilities.mean()) == pytest.approx(churn_rate(test, schema), abs=0.03)


def test_integer_columns_stay_integers_and_decimals_are_kept(fitted: Fitted) -> None:
    # Given the training columns' values
    for column in fitted.schema.numerical:
        real = fitted.train[column].dropna()
        generated = fitted.synthetic[column].dropna().astype(float)
        # Then an integer-valued column gives integers, and no column gets more decimals than it had
        decimals = next(d for d in range(7) if np.allclose(real * 10**d, np.round(real * 10**d)))
        assert np.allclose(generated * 10**decimals, np.round(generated * 10**decimals)), column
        if decimals == 0:
            assert pd.api.types.is_integer_dtype(fitted.synthetic[column]), column


def test_ids_never_collide_with_real_customers(fitted: Fitted) -> None:
    # Given the generated customers and all the real ones, training and held-out
    ids = fitted.synthetic[fitted.schema.id_column]
    real_ids = set(fitted.real[fitted.schema.id_column])
    # Then the generated ids are unique, carry the prefix and are no real customer's
    assert ids.is_unique
    assert ids.str.startswith("SYN-").all()
    assert not real_ids & set(ids)
    # And a prefix that starts real ids is refused
    real_prefix = str(fitted.train[fitted.schema.id_column].iloc[0])[:2]
    with pytest.raises(ValueError, match="starts real customer ids"):
        fitted.generator.generate(10, np.random.default_rng(0), id_prefix=real_prefix)


def test_the_same_seeds_give_the_same_customers(telco: Fitted) -> None:
    # Given two generators fitted with the same seed
    again = CustomerGenerator.fit(telco.train, telco.schema, seed=3)
    # When both draw customers from the same generator state
    first = telco.generator.generate(2000, np.random.default_rng(11))
    second = again.generate(2000, np.random.default_rng(11))
    # Then the customers are the same, and another state gives others
    pd.testing.assert_frame_equal(first, second)
    other = again.generate(2000, np.random.default_rng(12))
    assert not first["tenure"].equals(other["tenure"])


def test_telco_customers_keep_the_real_relationships(telco: Fitted) -> None:
    # Given Telco-shaped customers drawn from the training split's generator
    synthetic, train, schema = telco.synthetic, telco.train, telco.schema

    def mean_by(frame: pd.DataFrame, column: str, values: pd.Series | np.ndarray) -> pd.Series:
        return pd.Series(np.asarray(values, dtype=float)).groupby(frame[column].to_numpy()).mean()

    def churn_by(frame: pd.DataFrame, column: str) -> pd.Series:
        return mean_by(frame, column, labels(frame, schema))

    # Then month-to-month customers churn far more than two-year ones, as in the training rows
    generated_churn = churn_by(synthetic, "Contract")
    assert generated_churn["Month-to-month"] > 3 * generated_churn["Two year"]
    assert (generated_churn - churn_by(train, "Contract")).abs().max() < 0.03
    # And fiber optic customers churn more than DSL ones
    generated_internet = churn_by(synthetic, "InternetService")
    assert generated_internet["Fiber optic"] > generated_internet["DSL"] + 0.1
    # And contracts go with tenure, and internet service with the bill, as in the training rows
    tenure = mean_by(synthetic, "Contract", synthetic["tenure"]) - mean_by(train, "Contract", train["tenure"])
    assert tenure.abs().max() < 2.0
    bills = mean_by(synthetic, "InternetService", synthetic["MonthlyCharges"])
    assert (bills - mean_by(train, "InternetService", train["MonthlyCharges"])).abs().max() < 2.0
    # And total charges are about tenure x monthly charges
    ratio = synthetic["TotalCharges"] / (synthetic["tenure"] * synthetic["MonthlyCharges"])
    assert ratio.median() == pytest.approx(1.0, abs=0.05)


def test_telco_customers_have_only_service_combinations_real_customers_have(telco: Fitted) -> None:
    # Given the generated customers' categorical profiles
    columns = telco.schema.categorical
    real = set(telco.train[columns].astype(object).fillna("<missing>").itertuples(index=False, name=None))
    generated = telco.synthetic[columns].astype(object).fillna("<missing>")
    # Then each profile is one of the training customers'
    assert set(generated.itertuples(index=False, name=None)) <= real
    # So no customer has fiber optic and "No internet service", or no phone and a second line
    synthetic = telco.synthetic
    assert not ((synthetic["InternetService"] != "No") & (synthetic["TechSupport"] == "No internet service")).any()
    assert not ((synthetic["PhoneService"] == "No") & (synthetic["MultipleLines"] != "No phone service")).any()
    # And customers without internet pay the small bills such customers pay
    no_internet = synthetic["InternetService"] == "No"
    real_no_internet = telco.train["InternetService"] == "No"
    assert (
        synthetic.loc[no_internet, "MonthlyCharges"].quantile(0.99)
        <= telco.train.loc[real_no_internet, "MonthlyCharges"].max() + 5
    )


def test_telecom_customers_keep_the_real_relationships(telecom: Fitted) -> None:
    # Given telecom customers drawn from the training split's generator
    synthetic, train, schema = telecom.synthetic, telecom.train, telecom.schema
    # Then customers with many service calls, or an international plan, churn far more, as in the real data
    for frame in (train, synthetic):
        overall = churn_rate(frame, schema)
        assert churn_rate(frame[frame["number_customer_service_calls"] > 3], schema) > 2.5 * overall
        assert churn_rate(frame[frame["international_plan"] == "yes"], schema) > 2.5 * overall
    # And charges are minutes times the tariff, as on the real bills
    ratio = synthetic["total_day_charge"] / synthetic["total_day_minutes"].replace(0, np.nan)
    assert ratio.median() == pytest.approx(0.17, abs=0.001)
    assert ratio.quantile(0.01) > 0.165
    assert ratio.quantile(0.99) < 0.175
    # And no customer without a voice-mail plan has voice-mail messages
    assert (synthetic.loc[synthetic["voice_mail_plan"] == "no", "number_vmail_messages"] == 0).all()


def test_a_schema_the_generator_has_never_seen() -> None:
    # Given a subscription service's customers: other column names, labels and missing cells
    rng = np.random.default_rng(5)
    rows = 2000
    plan = rng.choice(["basic", "plus", "max"], rows, p=[0.5, 0.3, 0.2])
    usage = np.round(rng.gamma(2.0, 10.0, rows) * np.where(plan == "max", 2.0, 1.0), 1)
    logins = rng.poisson(5, rows).astype(float)
    logins[rng.random(rows) < 0.1] = np.nan
    region = np.where(rng.random(rows) < 0.05, None, rng.choice(["north", "south"], rows)).astype(object)
    leaves = rng.random(rows) < 1 / (1 + np.exp(1.0 - 1.2 * (plan == "basic") + 0.03 * usage))
    status = np.where(leaves, "gone", np.where(rng.random(rows) < 0.9, "stayed", "paused"))
    frame = pd.DataFrame(
        {"acct": [f"A{i}" for i in range(rows)], "plan": plan, "usage": usage, "logins": logins, "region": region}
    ).assign(status=status)
    schema = DataSchema(
        id_column="acct",
        target="status",
        positive_label="gone",
        numerical=["usage", "logins"],
        categorical=["plan", "region"],
    )
    # When a generator is fitted on it and draws customers
    generator = CustomerGenerator.fit(frame, schema)
    synthetic = generator.generate(10_000, np.random.default_rng(1), id_prefix="NEW-")
    # Then they have its columns, its labels (the negative one its most frequent other label) and missing cells
    assert list(synthetic.columns) == list(frame.columns)
    assert set(synthetic["status"]) == {"gone", "stayed"}
    assert churn_rate(synthetic, schema) == pytest.approx(churn_rate(frame, schema), abs=0.02)
    assert synthetic["logins"].isna().mean() == pytest.approx(0.1, abs=0.015)
    assert synthetic["region"].isna().mean() == pytest.approx(0.05, abs=0.01)
    assert pd.api.types.is_integer_dtype(synthetic["logins"])
    # And its relationships: heavier usage on the max plan, more churn on the basic one
    usage_by_plan = synthetic.groupby("plan")["usage"].mean()
    assert usage_by_plan["max"] > 1.8 * usage_by_plan["basic"]
    churn_by_plan = pd.Series(labels(synthetic, schema)).groupby(synthetic["plan"].to_numpy()).mean()
    assert churn_by_plan["basic"] > churn_by_plan["plus"] + 0.1


def test_write_csv_streams_chunks_the_platform_reads(telecom: Fitted, tmp_path: Path) -> None:
    # Given a file of customers written 1,000 at a time
    path = tmp_path / "synthetic.csv"
    telecom.generator.write_csv(path, rows=2500, seed=3, chunk_rows=1000)
    # When the platform reads it
    written = read_dataset(path, telecom.schema, require_target=True)
    # Then it holds every customer once, numbered in order
    assert len(written) == 2500
    assert written["customer_id"].is_unique
    assert written["customer_id"].iloc[-1] == "SYN-0002500"


def test_the_command_line_writes_customers_of_a_data_set(tmp_path: Path) -> None:
    # Given the bench's command line, on the Telco-shaped data set
    output = tmp_path / "out" / "telco.csv"
    # When it runs
    code = main(
        [
            *("--data", str(TELCO_CSV), "--schema", str(TELCO_SCHEMA)),
            *("--rows", "500", "--seed", "7", "--output", str(output)),
        ]
    )
    # Then it wrote that many customers of the data set's columns
    schema = DataSchema.from_file(TELCO_SCHEMA)
    written = read_dataset(output, schema, require_target=True)
    assert code == 0
    assert len(written) == 500
    assert list(written.columns) == list(pd.read_csv(TELCO_CSV, nrows=0).columns)


@pytest.mark.slow
def test_the_platform_trained_on_generated_customers_ranks_real_ones(telco: Fitted) -> None:
    # Given the platform's own training on 4,000 generated Telco customers
    schema = telco.schema
    train = telco.synthetic.head(4000).reset_index(drop=True)
    spec = fit_feature_spec(frame_to_columns(train, schema), schema)
    result = train_and_select(train, spec, cv_folds=3)
    # When its model scores the real held-out customers
    prepared = prepare_features(frame_to_columns(telco.test, schema), spec)
    probabilities = result.pipeline.predict_proba(prepared_to_frame(prepared))[:, 1]
    # Then it ranks them well: the generated customers carry the real relationships
    assert roc_auc_score(labels(telco.test, schema), probabilities) > 0.8


def test_the_telco_file_is_what_its_script_writes(tmp_path: Path) -> None:
    # When the script writes the data set again
    subprocess.run(  # noqa: S603  # this interpreter, our script
        [sys.executable, str(DATASETS_DIR / "make_telco.py"), "--output-dir", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    # Then it writes the committed files, byte for byte
    assert (tmp_path / "telco_churn.csv").read_bytes() == TELCO_CSV.read_bytes()
    assert (tmp_path / "telco_churn.schema.json").read_bytes() == TELCO_SCHEMA.read_bytes()


def test_the_telco_file_has_the_telco_shape_and_loads_in_the_platform() -> None:
    # Given the schema and the file, read by the platform's reader
    schema = DataSchema.from_file(TELCO_SCHEMA)
    frame = read_dataset(TELCO_CSV, schema, require_target=True)
    raw = pd.read_csv(TELCO_CSV, dtype=str, keep_default_na=False)
    # Then it has about 7,000 accounts of which about 26% churn, with unique Telco-like ids
    assert 6500 <= len(frame) <= 7500
    assert 0.24 <= churn_rate(frame, schema) <= 0.28
    assert frame["customerID"].is_unique
    assert frame["customerID"].str.fullmatch(r"\d{4}-[A-Z]{5}").all()
    # And TotalCharges is blank exactly for the accounts without a first bill, read as missing
    assert frame["TotalCharges"].isna().sum() > 0
    assert (frame.loc[frame["TotalCharges"].isna(), "tenure"] == 0).all()
    assert (raw.loc[frame["TotalCharges"].isna(), "TotalCharges"] == "").all()
    # And some categorical cells are blank too
    assert frame["PaymentMethod"].isna().sum() > 0
    assert frame["OnlineSecurity"].isna().sum() > 0
    # And the values are the Telco file's
    assert set(frame["Contract"]) == {"Month-to-month", "One year", "Two year"}
    assert set(frame["InternetService"]) == {"DSL", "Fiber optic", "No"}
    assert set(frame["MultipleLines"]) == {"Yes", "No", "No phone service"}
    assert set(frame["SeniorCitizen"]) == {0.0, 1.0}
    assert frame["tenure"].between(0, 72).all()
    # And the schema's campaign values a customer at 12 x the mean monthly charges
    value = schema.model_extra["campaign"]["annual_value_per_customer_usd"]
    assert value == pytest.approx(12 * frame["MonthlyCharges"].mean(), abs=1.0)
    assert schema.baseline_rule is None  # no offer rule today: the A/B test compares with no offers


def test_a_simple_model_finds_the_telco_churn_realistic_not_trivial() -> None:
    # Given the Telco file split 80/20
    schema = DataSchema.from_file(TELCO_SCHEMA)
    frame = read_dataset(TELCO_CSV, schema, require_target=True)
    train, test = split_dataset(frame, schema, test_size=0.2, seed=42)

    def features(part: pd.DataFrame) -> pd.DataFrame:
        categorical = part[schema.categorical].astype(object).fillna("<missing>")
        return pd.concat([part[schema.numerical], categorical], axis=1)

    # When a logistic regression on one-hot and standardised features learns it
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), schema.categorical),
            (make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), schema.numerical),
        ),
        LogisticRegression(max_iter=2000),
    ).fit(features(train), labels(train, schema))
    # Then it ranks the held-out accounts as models do on IBM's Telco data: well, far from perfectly
    auc = roc_auc_score(labels(test, schema), model.predict_proba(features(test))[:, 1])
    assert 0.80 <= auc <= 0.87
