"""The pilot on another churn data set and schema, given nothing but the files: our Telco-shaped set
(tests/datasets/, about 7,000 accounts, 26% churn, blanks, yes/no text), on a fresh local stack of its own."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from werkzeug.test import Client

from helpers import PROJECT_ROOT, TELCO_CSV, TELCO_SCHEMA, pilot_args
from local_cloud.cli import LOCAL_PARAMETERS, cmd_score, run_pilot
from local_cloud.platform import LocalPlatform

sys.path.insert(0, str(PROJECT_ROOT / "tests" / "datasets"))
from make_telco import simulate

pytestmark = pytest.mark.slow

UNSEEN_ROWS = 20_000
UNSEEN_SEED = 7


@pytest.fixture(scope="module")
def telco(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One pilot run on the Telco-shaped files with the CLI's defaults (the latency target aside: see
    `pilot_args`), and the stack it ran on."""
    output_dir = tmp_path_factory.mktemp("telco")
    with LocalPlatform(PROJECT_ROOT, parameter_overrides=LOCAL_PARAMETERS) as platform:
        results = run_pilot(platform, pilot_args(output_dir, data=TELCO_CSV, schema=TELCO_SCHEMA))
        response = Client(platform.api_app()).post(
            "/predict", json={"customer_id": "new-account", "features": {"tenure": 3, "Contract": "Month-to-month"}}
        )
    return {"results": results, "output_dir": output_dir, "predict": (response.status_code, response.get_json())}


def test_the_pilot_succeeds_on_another_schema_from_its_files_alone(telco: dict[str, Any]) -> None:
    results = telco["results"]
    # Then every criterion passed, judged against the targets and economics the schema declares
    assert results["status"] == "SUCCEEDED", results["error"]
    assert all(c["passed"] for c in results["success_criteria"].values())
    use_case = results["dataset"]["use_case"]
    assert use_case["targets"]["auc_roc"] == 0.8
    assert use_case["sources"]["targets.auc_roc"] == "schema"
    assert use_case["campaign"]["offer_cost_usd"] == 60.0
    # And the schema declares no baseline rule, so the A/B test compared the model's offers with none at all,
    # and said why
    assert use_case["baseline"]["policy"] == "no_action"
    assert "no baseline_rule" in use_case["baseline"]["source"]
    # And the blanks of the file were read as missing values
    assert results["dataset"]["missing_values"]["TotalCharges"] > 0
    # And the model serves a new account with most features missing, naming what it imputed
    status, body = telco["predict"]
    assert status == 200, body
    assert "MonthlyCharges" in body["imputed_features"]
    assert "tenure" not in body["imputed_features"]


def test_make_score_on_accounts_it_never_saw_reaches_the_auc_its_held_out_split_promised(
    telco: dict[str, Any], tmp_path: Path
) -> None:
    # Given 20,000 new accounts from the same process as the file (another seed), none of them seen in training
    unseen = simulate(UNSEEN_ROWS, UNSEEN_SEED)
    unseen_csv, scores_csv = tmp_path / "unseen.csv", tmp_path / "scores.csv"
    unseen.drop(columns=["Churn"]).to_csv(unseen_csv, index=False)
    # When `make score` scores them with the pilot's model directory
    cmd_score(argparse.Namespace(model_dir=telco["output_dir"] / "model", input=unseen_csv, output=scores_csv))
    # Then the AUC on them is the held-out split's, within 0.02 or, where the held-out estimate is itself less
    # precise than that, within its 95% margin (Hanley and McNeil's standard error of an AUC)
    scores = pd.read_csv(scores_csv)
    labels = (unseen["Churn"] == "Yes").to_numpy()
    assert len(scores) == UNSEEN_ROWS
    unseen_auc = roc_auc_score(labels, scores["churn_probability"].to_numpy(dtype=np.float64))
    metrics = telco["results"]["metrics"]
    promised = metrics["roc_auc"]
    positives = round(metrics["n_samples"] * metrics["positive_rate"])
    margin = max(0.02, 1.96 * hanley_mcneil_se(promised, positives, metrics["n_samples"] - positives))
    assert abs(unseen_auc - promised) <= margin, (unseen_auc, promised, margin)


def hanley_mcneil_se(auc: float, positives: int, negatives: int) -> float:
    """Standard error of an AUC measured on `positives` and `negatives` rows (Hanley & McNeil, 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    return float(np.sqrt(variance))
