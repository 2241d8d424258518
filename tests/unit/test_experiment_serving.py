"""The scoring side of experiments: which experiment serves, which decision each variant gets, exposures."""

from __future__ import annotations

import numpy as np
import pytest
from botocore.exceptions import ClientError

from mlops.api.contracts import Prediction
from mlops.data.schema import DecisionRule
from mlops.experiments.models import Experiment, ExperimentCreate
from mlops.experiments.service import new_experiment
from mlops.experiments.serving import RunningExperimentProvider, assigner_of, rule_decisions, serve_experiment

SERVICE_CALLS_RULE = {"column": "number_customer_service_calls", "operator": ">", "value": 3}


def service_calls(values: list[float]) -> dict[str, np.ndarray]:
    """The model inputs a rule on service calls reads: one (n, 1) float32 column, as the ONNX graph takes it."""
    return {"number_customer_service_calls": np.array(values, dtype=np.float32).reshape(-1, 1)}


def pilot_like_experiment(experiment_id: str = "exp-serving") -> Experiment:
    request = ExperimentCreate(
        experiment_id=experiment_id,
        name="churn_model_v1_vs_baseline",
        model_name="churn",
        variants=[
            {"name": "baseline", "weight": 0.5, "serves": "rule", "rule": SERVICE_CALLS_RULE},
            {"name": "model", "weight": 0.5, "serves": "model"},
        ],
        primary_metric={"name": "retained", "kind": "conversion"},
        minimum_detectable_effect=0.02,
        baseline_value=0.86,
    )
    return new_experiment(request, "2026-11-24T00:00:00.000Z")


class FakeStore:
    """What the scoring path uses of ExperimentStore, in memory, with injectable failures."""

    def __init__(self, running: Experiment | None = None) -> None:
        self.running = running
        self.reads = 0
        self.fail_reads = False

    def running_for_model(self, model_name: str) -> Experiment | None:
        self.reads += 1
        if self.fail_reads:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "GetItem")
        return self.running


def prediction(customer_id: str, probability: float) -> Prediction:
    return Prediction(
        prediction_id=f"p-{customer_id}",
        customer_id=customer_id,
        churn_probability=probability,
        churn_prediction=probability >= 0.5,
        threshold=0.5,
        model_version="v1",
        imputed_features=[],
        input_sha256="0" * 64,
    )


def test_each_variant_serves_its_own_decision_and_each_customer_is_one_exposure() -> None:
    # Given a running experiment and 200 customers with 5 service calls whom the model scores as loyal
    experiment = pilot_like_experiment()
    predictions = [prediction(f"C{i}", 0.1) for i in range(200)] + [prediction("C0", 0.1)]  # C0 twice
    calls = service_calls([5.0] * len(predictions))
    # When scored through the experiment
    served, exposures = serve_experiment(predictions, calls, (experiment, assigner_of(experiment)))
    # Then baseline customers get the rule's "churn", model customers the model's "stay"
    variants = {p.variant for p in served}
    assert variants == {"baseline", "model"}
    for p in served:
        assert p.experiment_id == "exp-serving"
        assert p.churn_prediction is (p.variant == "baseline")
        assert p.churn_probability == 0.1  # the model's probability whatever the variant
    # And the exposures to log (after the audit record) hold every customer once, with the variant it was served
    assert len(exposures) == 200
    assert all(exposures[p.customer_id] == p.variant for p in served)


def test_the_running_experiment_is_re_read_once_per_refresh_interval_and_survives_read_errors() -> None:
    # Given a provider refreshing every 30 s on a controllable clock
    now = [0.0]
    store = FakeStore(None)
    provider = RunningExperimentProvider(store, "churn", 30.0, clock=lambda: now[0])  # type: ignore[arg-type]
    # When there is no experiment, none serves
    assert provider.current() is None
    # And an experiment started since is seen only after the interval
    store.running = pilot_like_experiment()
    now[0] = 10.0
    assert provider.current() is None
    now[0] = 31.0
    running = provider.current()
    assert running is not None
    assert running[0].experiment_id == "exp-serving"
    assert store.reads == 2
    # And when the table cannot be read, the last known experiment keeps serving
    store.fail_reads = True
    now[0] = 70.0
    assert provider.current() is not None
    # And once it stops (no running experiment), predictions go back to plain model decisions
    store.fail_reads, store.running = False, None
    now[0] = 110.0
    assert provider.current() is None


def test_a_rule_decides_on_the_model_inputs_and_needs_its_column() -> None:
    # Given the pilot-like experiment, whose baseline serves "more than 3 service calls"
    experiment = pilot_like_experiment()
    # When its rule reads the inputs of two customers (4 calls, 1 call)
    decisions = rule_decisions(experiment, service_calls([4.0, 1.0]))
    # Then the baseline flags the first only; the model variant has no rule
    assert decisions == {"baseline": [True, False]}
    # And a model without that input cannot serve the rule: named in the error
    baseline_customer = next(f"C{i}" for i in range(100) if assigner_of(experiment).assign(f"C{i}") == "baseline")
    with pytest.raises(ValueError, match="number_customer_service_calls"):
        serve_experiment([prediction(baseline_customer, 0.2)], {}, (experiment, assigner_of(experiment)))


def test_a_text_rule_compares_for_equality_and_a_missing_value_never_satisfies_it() -> None:
    # Given a rule on a text column, as the Telco-shaped schema declares
    rule = DecisionRule(column="Contract", operator="==", value="Month-to-month")
    # When it reads values as the model sees them
    # Then only an equal value (spaces stripped) satisfies it, and a missing one never does
    assert rule.applies(["Month-to-month", " Month-to-month ", "Two year", None]) == [True, True, False, False]
    assert DecisionRule(column="x", operator="<=", value=2).applies([1.0, 2.0, 3.0, float("nan")]) == [
        True,
        True,
        False,
        False,
    ]
    # And a text value with an order operator is refused when the rule is declared
    with pytest.raises(ValueError, match="== or !="):
        DecisionRule(column="Contract", operator=">", value="Month-to-month")
