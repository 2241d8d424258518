"""The pilot on a data set and schema it has never seen, on a fresh local stack of its own."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from werkzeug.test import Client

from helpers import PROJECT_ROOT, pilot_args
from local_cloud.cli import LOCAL_PARAMETERS, run_pilot
from local_cloud.platform import LocalPlatform

pytestmark = pytest.mark.slow


def unseen_dataset(directory: Path, rows: int = 1500, seed: int = 7) -> tuple[Path, Path]:
    """A churn data set of another shape: other columns, text categories, missing values, Y/N labels."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows).astype(float)
    fee = rng.normal(70, 25, rows).round(2)
    tickets = rng.poisson(1.5, rows).astype(float)
    plan = rng.choice(["basic", "plus", "premium"], rows)
    region = rng.choice(["north", "south", "east", "west"], rows)
    logit = -1.5 - 0.05 * tenure + 0.02 * (fee - 70) + 0.6 * tickets + np.where(plan == "basic", 0.8, 0)
    churned = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "Y", "N")
    fee_text = [("" if rng.random() < 0.05 else str(v)) for v in fee]
    region_text = [("" if rng.random() < 0.03 else str(v)) for v in region]
    csv_path = directory / "subscribers.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "subscriber",
                "tenure_months",
                "monthly_fee",
                "support_tickets",
                "plan_type",
                "region",
                "churned",
            ]
        )
        for i in range(rows):
            writer.writerow([f"S-{i}", tenure[i], fee_text[i], tickets[i], plan[i], region_text[i], churned[i]])
    schema_path = directory / "subscribers.schema.json"
    schema_path.write_text(
        json.dumps(
            {
                "id_column": "subscriber",
                "target": "churned",
                "positive_label": "Y",
                "numerical": ["tenure_months", "monthly_fee", "support_tickets"],
                "categorical": ["plan_type", "region"],
                "dataset_name": "subscribers",
                "owner": "another team",
            }
        )
    )
    return csv_path, schema_path


def test_the_pilot_succeeds_on_a_data_set_it_has_never_seen(tmp_path: Path) -> None:
    # Given another churn data set with missing values and text categories, and a fresh local stack
    csv_path, schema_path = unseen_dataset(tmp_path)
    with LocalPlatform(PROJECT_ROOT, parameter_overrides=LOCAL_PARAMETERS) as platform:
        # When the pilot runs on it with targets fitting its difficulty, its A/B test against no campaign at all
        # (there are no customer service calls for the telecom rule); the impact target only asks that the
        # campaign does not lose money: the dollar assumptions are the telecom pilot's
        results = run_pilot(
            platform,
            pilot_args(
                tmp_path / "out",
                data=csv_path,
                schema=schema_path,
                target_accuracy=0.6,
                target_auc=0.6,
                smoke_test_calls=50,
                baseline="no_action",
                target_impact=0.0,
            ),
        )
        # Then it trains, deploys and serves a model for that schema
        assert results["status"] == "SUCCEEDED", results["error"]
        assert results["dataset"]["missing_values"]["monthly_fee"] > 0
        assert results["success_criteria"]["ab_testing_ready"]["passed"]
        assert results["success_criteria"]["projected_annual_impact_usd"]["value"] > 0
        assert results["experiment"]["campaign"]["customers"] == results["dataset"]["test_rows"]
        response = Client(platform.api_app()).post(
            "/predict", json={"customer_id": "S-new", "features": {"tenure_months": 3, "plan_type": "basic"}}
        )
        body = response.get_json()
        assert response.status_code == 200, body
        assert set(body["imputed_features"]) == {"monthly_fee", "support_tickets", "region"}
