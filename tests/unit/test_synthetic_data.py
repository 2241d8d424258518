"""The synthetic data generator mimics the telecom data and trains a model that transfers to the real data."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from helpers import TELECOM_CSV, TELECOM_SCHEMA
from mlops.data.dataset import frame_to_columns, labels, prepared_to_frame, read_dataset
from mlops.data.feature_fitting import fit_feature_spec
from mlops.data.features import prepare_features
from mlops.data.schema import DataSchema
from mlops.pilot.synthetic import SyntheticTelecomGenerator
from mlops.training.selection import train_and_select

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return pd.read_csv(TELECOM_CSV)


@pytest.fixture(scope="module")
def generator(real: pd.DataFrame) -> SyntheticTelecomGenerator:
    return SyntheticTelecomGenerator.fit(real)


@pytest.fixture(scope="module")
def synthetic(generator: SyntheticTelecomGenerator) -> pd.DataFrame:
    return generator.generate(50_000, np.random.default_rng(7))


def test_same_seed_same_rows_and_the_real_columns(generator: SyntheticTelecomGenerator, real: pd.DataFrame) -> None:
    first = generator.generate(1000, np.random.default_rng(1))
    again = generator.generate(1000, np.random.default_rng(1))
    pd.testing.assert_frame_equal(first, again)
    assert list(first.columns) == list(real.columns)
    assert first["customer_id"].is_unique


def test_distributions_match_the_real_data(synthetic: pd.DataFrame, real: pd.DataFrame) -> None:
    for column in ("total_day_minutes", "total_eve_calls", "total_intl_charge", "account_length"):
        assert synthetic[column].mean() == pytest.approx(real[column].mean(), rel=0.03), column
        assert synthetic[column].std() == pytest.approx(real[column].std(), rel=0.1), column
    assert (synthetic["international_plan"] == "yes").mean() == pytest.approx(
        (real["international_plan"] == "yes").mean(), abs=0.01
    )
    # Charges are minutes times the period's tariff, as on the real bills
    ratio = synthetic["total_day_charge"] / synthetic["total_day_minutes"].replace(0, np.nan)
    assert ratio.median() == pytest.approx(0.17, abs=0.001)
    assert (synthetic.loc[synthetic["voice_mail_plan"] == "no", "number_vmail_messages"] == 0).all()


def test_churn_rate_and_relationships_carry_over(synthetic: pd.DataFrame, real: pd.DataFrame) -> None:
    def churn_rate(frame: pd.DataFrame) -> float:
        return float((frame["churn"] == "yes").mean())

    assert churn_rate(synthetic) == pytest.approx(churn_rate(real), abs=0.02)
    for frame in (real, synthetic):
        many_calls = frame[frame["number_customer_service_calls"] > 3]
        assert churn_rate(many_calls) > 2 * churn_rate(frame)
        assert churn_rate(frame[frame["international_plan"] == "yes"]) > 2 * churn_rate(frame)


def test_a_model_trained_on_synthetic_data_ranks_real_customers(synthetic: pd.DataFrame) -> None:
    # Given the platform's own training on 5,000 synthetic customers
    schema = DataSchema.from_file(TELECOM_SCHEMA)
    train = read_dataset(io.StringIO(synthetic.head(5000).to_csv(index=False)), schema)
    spec = fit_feature_spec(frame_to_columns(train, schema), schema)
    result = train_and_select(train, spec, cv_folds=3)
    # When it scores the real customers
    real = read_dataset(TELECOM_CSV, schema)
    probabilities = result.pipeline.predict_proba(
        prepared_to_frame(prepare_features(frame_to_columns(real, schema), spec))
    )
    # Then it ranks them well: the synthetic data carries the real relationships
    assert roc_auc_score(labels(real, schema), probabilities[:, 1]) > 0.85


def test_write_csv_streams_in_chunks(generator: SyntheticTelecomGenerator, tmp_path) -> None:
    path = tmp_path / "synthetic.csv"
    generator.write_csv(path, rows=2500, seed=3, chunk_rows=1000)
    written = pd.read_csv(path)
    assert len(written) == 2500
    assert written["customer_id"].is_unique
