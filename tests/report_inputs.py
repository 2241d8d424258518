"""Realistic inputs for the pilot report (mlops.pilot.report.render), shared by its unit test and its browser test.

The held-out predictions come from an additive model on the telecom data (a logistic regression on cubic
splines of each feature; the pilot's train/test split; the threshold chosen on out-of-fold predictions of the
training split), so the curves are real, and its explanations are exact SHAP values: in log-odds an additive
model's contribution of a feature is its spline term minus that term's mean over the training rows. The campaign and the
criteria come from the recorded pilot state in events/ (the criteria the report recomputes from this model are
overwritten); the drift report, the latencies and the monitoring figures are made up with a fixed seed.
Building takes about a second; the result is cached, so treat it as read-only (use `model_copy(update=...)`).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import SplineTransformer

from helpers import TELECOM_CSV, TELECOM_SCHEMA, load_event
from mlops.data.dataset import labels, read_dataset, split_dataset
from mlops.data.schema import DataSchema
from mlops.monitoring.drift import DriftReport, DriftThresholds, FeatureDrift
from mlops.pilot.payloads import CampaignReport, CriteriaReport, Criterion, LatencySummary
from mlops.pilot.report.inputs import ReportInputs
from mlops.training.threshold import choose_threshold

# The report's sections and figures (`data-section` / `data-figure` names), in page order.
SECTIONS = (
    "criteria",
    "performance",
    "threshold",
    "explainability",
    "experiment",
    "drift",
    "monitoring",
    "latency",
    "model-card",
    "lineage",
)
FIGURES = (
    "roc",
    "precision_recall",
    "calibration",
    "confusion_matrix",
    "threshold_value",
    "global_importance",
    "example_explanation",
    "ab_results",
    "drift_psi",
    "score_drift",
    "latency",
)
PILOT_EVENT = "pilot_step_validate_experiment_criteria"
PLAN_FLAGS = ("international_plan", "voice_mail_plan")
CHARGES = ("total_day_charge", "total_eve_charge", "total_night_charge", "total_intl_charge")
SPLINE_KNOTS = 8
SEED = 42
SCORE_BINS = 10


@functools.cache
def build_report_inputs() -> ReportInputs:
    state = load_event(PILOT_EVENT)
    pilot = state["pilot"]
    schema = DataSchema.from_file(TELECOM_SCHEMA)
    frame = read_dataset(TELECOM_CSV, schema, require_target=True)
    train, test = split_dataset(frame, schema, test_size=pilot["test_size"], seed=pilot["seed"])
    features = [*schema.numerical, *PLAN_FLAGS, "total_charge"]
    x_train, x_test = _model_inputs(train, features), _model_inputs(test, features)
    y_train, y_test = labels(train, schema), labels(test, schema)

    model = make_pipeline(
        SplineTransformer(n_knots=SPLINE_KNOTS, knots="quantile"), LogisticRegression(C=0.3, solver="newton-cholesky")
    )
    validation = cross_val_predict(model, x_train, y_train, cv=5, method="predict_proba")[:, 1]
    model.fit(x_train, y_train)
    probabilities = model.predict_proba(x_test)[:, 1]
    assumptions = pilot["dataset"]["use_case"]["campaign"]
    threshold = choose_threshold(
        validation,
        y_train,
        value_per_saved_customer_usd=assumptions["offer_acceptance_rate"]
        * assumptions["annual_value_per_customer_usd"],
        offer_cost_usd=assumptions["offer_cost_usd"],
        source="out-of-fold predictions on the training split",
    )

    splines, classifier = model[0], model[1]
    background = splines.transform(x_train).mean(axis=0)
    terms = (splines.transform(x_test) - background) * classifier.coef_[0]
    contributions = terms.reshape(len(x_test), len(features), -1).sum(axis=2)  # the spline columns per feature
    base_value = float(classifier.intercept_[0] + background @ classifier.coef_[0])
    latencies = _latencies_ms()
    summary = LatencySummary(
        p50=float(np.percentile(latencies, 50)),
        p95=float(np.percentile(latencies, 95)),
        p99=float(np.percentile(latencies, 99)),
        mean=float(latencies.mean()),
        max=float(latencies.max()),
    )
    predictions = probabilities >= threshold.threshold
    model_version = pilot["registration"]["model_version"]
    return ReportInputs(
        model_name="churn",
        model_version=model_version,
        execution_name=state["execution_name"],
        generated_at=dt.datetime(2026, 11, 24, 4, 53, 10, tzinfo=dt.UTC),
        criteria=_criteria(
            pilot["criteria"],
            {
                "accuracy": float(((probabilities >= 0.5) == y_test).mean()),
                "auc_roc": _auc(y_test, probabilities),
                "latency_p95_ms": summary.p95,
            },
        ),
        test_labels=y_test.tolist(),
        test_probabilities=probabilities.tolist(),
        threshold=threshold,
        explainability=_explainability(features, contributions, base_value),
        example_explanation=_example(test, features, x_test, contributions, probabilities, base_value, schema),
        campaign=CampaignReport.model_validate(pilot["campaign"]),
        drift=_drift(probabilities),
        monitoring={
            "outcomes_matched": len(y_test),
            "accuracy": round(float((predictions == y_test).mean()), 4),
            "recall": round(float(predictions[y_test == 1].mean()), 4),
            "precision": round(float(y_test[predictions].mean()), 4),
        },
        latencies_ms=latencies.tolist(),
        latency_summary=summary,
        model_card_markdown=_model_card(model_version, threshold.threshold),
        lineage={
            "model_version": model_version,
            "execution_arn": f"arn:aws:states:us-east-1:123456789012:execution:pilot:{state['execution_name']}",
            "dataset_key": pilot["data_key"],
            "dataset_sha256": hashlib.sha256(TELECOM_CSV.read_bytes()).hexdigest(),
            "algorithm": "spline_logistic_regression",
            "seed": pilot["seed"],
            "artifacts_sha256": {name: ref["sha256"] for name, ref in pilot["registration"]["artifacts"].items()},
        },
    )


def _model_inputs(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    inputs = frame[[name for name in features if name in frame.columns]].copy()
    for flag in PLAN_FLAGS:
        inputs[flag] = (frame[flag].astype(str).str.strip() == "yes").astype(float)
    inputs["total_charge"] = frame[list(CHARGES)].sum(axis=1)
    return inputs


def _auc(y: np.ndarray, probabilities: np.ndarray) -> float:
    return round(float(roc_auc_score(y, probabilities)), 6)


def _criteria(recorded: dict[str, Any], measured: dict[str, float]) -> CriteriaReport:
    criteria = {name: Criterion.model_validate(item) for name, item in recorded["criteria"].items()}
    for name, value in measured.items():
        target = float(criteria[name].target)
        comparison = criteria[name].comparison
        passed = value >= target if comparison == ">=" else value <= target
        criteria[name] = Criterion(value=round(value, 6), target=target, comparison=comparison, passed=passed)
    failed = [name for name, criterion in criteria.items() if not criterion.passed]
    return CriteriaReport(all_passed=not failed, criteria=criteria, failed=failed)


def _explainability(features: list[str], contributions: np.ndarray, base_value: float) -> dict[str, Any]:
    mean_abs = np.abs(contributions).mean(axis=0)
    ranked = sorted(zip(features, mean_abs, strict=True), key=lambda item: (-item[1], item[0]))
    return {
        "method": "exact attributions of an additive model (spline term minus its training mean), log-odds",
        "output_space": "log_odds",
        "base_value": base_value,
        "global_importance": [{"feature": name, "mean_abs_contribution": float(value)} for name, value in ranked],
    }


def _example(
    test: pd.DataFrame,
    features: list[str],
    x_test: pd.DataFrame,
    contributions: np.ndarray,
    probabilities: np.ndarray,
    base_value: float,
    schema: DataSchema,
) -> dict[str, Any]:
    row = int(np.argmax(probabilities))  # the customer the campaign would call first
    values = {name: float(x_test.iloc[row][name]) for name in features}
    values.update({flag: str(test.iloc[row][flag]) for flag in PLAN_FLAGS})  # as the customer record has them
    return {
        "customer_id": str(test.iloc[row][schema.id_column]),
        "churn_probability": float(probabilities[row]),
        "output_space": "log_odds",
        "base_value": base_value,
        "contributions": [
            {"feature": name, "value": values[name], "contribution": float(contributions[row, column])}
            for column, name in enumerate(features)
        ],
    }


def _latencies_ms() -> np.ndarray:
    rng = np.random.default_rng(SEED)
    return np.round(rng.lognormal(mean=np.log(15.0), sigma=0.45, size=200), 3)


def _drift(probabilities: np.ndarray) -> DriftReport:
    thresholds = DriftThresholds()
    expected_scores = np.histogram(probabilities, bins=SCORE_BINS, range=(0, 1))[0] / probabilities.size
    shifted = np.clip(probabilities * 1.35 + 0.02, 0, 1)
    actual_scores = np.histogram(shifted, bins=SCORE_BINS, range=(0, 1))[0] / shifted.size
    numeric = [
        ("total_day_minutes", 0.031),
        ("number_customer_service_calls", 0.274),
        ("total_intl_calls", 0.012),
        ("account_length", 0.006),
        ("total_eve_minutes", 0.118),
    ]
    quartiles = ["< q1", "q1 - q2", "q2 - q3", ">= q3"]
    features = [
        FeatureDrift(
            feature=name,
            kind="numeric",
            test="psi",
            psi=psi,
            drifted=psi > thresholds.psi,
            expected=[0.25, 0.25, 0.25, 0.25],
            actual=[0.25 - psi / 2, 0.25, 0.25, 0.25 + psi / 2],
            bins=quartiles,
        )
        for name, psi in numeric
    ]
    features.append(
        FeatureDrift(
            feature="international_plan",
            kind="categorical",
            test="chi_square",
            psi=0.043,
            chi_square=9.7,
            p_value=0.0018,
            drifted=True,
            expected=[0.9, 0.1],
            actual=[0.84, 0.16],
            bins=["no", "yes"],
        )
    )
    score_psi = float(
        np.sum((actual_scores - expected_scores) * np.log((actual_scores + 1e-4) / (expected_scores + 1e-4)))
    )
    score = FeatureDrift(
        feature="churn_probability",
        kind="score",
        test="psi",
        psi=round(score_psi, 4),
        drifted=score_psi > thresholds.psi,
        expected=expected_scores.tolist(),
        actual=actual_scores.tolist(),
        bins=[f"{low / SCORE_BINS:.1f}-{(low + 1) / SCORE_BINS:.1f}" for low in range(SCORE_BINS)],
    )
    drifted = [item.feature for item in features if item.drifted]
    return DriftReport(
        rows=1200,
        sufficient_data=True,
        thresholds=thresholds,
        features=features,
        score=score,
        drifted_features=drifted,
        drift_detected=bool(drifted) or score.drifted,
        max_feature_psi=max(item.psi for item in features),
        score_psi=score.psi,
    )


def _model_card(model_version: str, threshold: float) -> str:
    return f"""# Model card: churn {model_version}

## Intended use
Rank customers by churn risk for the retention campaign; offers go to scores >= {threshold:.2f}.
Not for pricing & credit decisions.

## Limitations
- Customers with < 3 months of history are rare in the training data.
- Calibrated on the 2026 data set only.
"""
