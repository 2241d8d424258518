"""The scoring side of experiments: which experiment serves, which decision each variant gets, exposures."""

from __future__ import annotations

import numpy as np
import pytest
from botocore.exceptions import ClientError

from mlops.api.contracts import Prediction
from mlops.core.errors import ExperimentUnavailableError
from mlops.experiments.models import Experiment, ExperimentCreate
from mlops.experiments.service import new_experiment
from mlops.experiments.serving import RunningExperimentProvider, assigner_of, serve_experiment, service_calls_of


def pilot_like_experiment(experiment_id: str = "exp-serving") -> Experiment:
    request = ExperimentCreate(
        experiment_id=experiment_id,
        name="churn_model_v1_vs_baseline",
        model_name="churn",
        variants=[
            {"name": "baseline", "weight": 0.5, "serves": "service_calls_rule"},
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
        self.exposures: dict[tuple[str, str], str] = {}
        self.reads = 0
        self.fail_reads = False
        self.fail_writes = False

    def running_for_model(self, model_name: str) -> Experiment | None:
        self.reads += 1
        if self.fail_reads:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "GetItem")
        return self.running

    def log_exposure(self, experiment_id: str, unit_id: str, variant: str) -> bool:
        if self.fail_writes:
            raise ClientError({"Error": {"Code": "InternalServerError"}}, "PutItem")
        first = (experiment_id, unit_id) not in self.exposures
        self.exposures.setdefault((experiment_id, unit_id), variant)
        return first


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


def test_each_variant_serves_its_own_decision_and_exposures_are_logged_once() -> None:
    # Given a running experiment and 200 customers with 5 service calls whom the model scores as loyal
    experiment = pilot_like_experiment()
    store = FakeStore(experiment)
    predictions = [prediction(f"C{i}", 0.1) for i in range(200)] + [prediction("C0", 0.1)]  # C0 twice
    calls = [5.0] * len(predictions)
    # When scored through the experiment
    served, exposures = serve_experiment(predictions, calls, (experiment, assigner_of(experiment)), store)  # type: ignore[arg-type]
    # Then baseline customers get the rule's "churn", model customers the model's "stay"
    variants = {p.variant for p in served}
    assert variants == {"baseline", "model"}
    for p in served:
        assert p.experiment_id == "exp-serving"
        assert p.churn_prediction is (p.variant == "baseline")
        assert p.churn_probability == 0.1  # the model's probability whatever the variant
    # And every customer has exactly one exposure, with the variant it was served
    assert exposures == 200
    assert len(store.exposures) == 200
    assert all(store.exposures[("exp-serving", p.customer_id)] == p.variant for p in served)


def test_an_exposure_that_cannot_be_logged_refuses_the_request_rather_than_lose_it() -> None:
    # Given a running experiment whose exposure writes fail (the store's own retries exhausted)
    experiment = pilot_like_experiment()
    store = FakeStore(experiment)
    store.fail_writes = True
    # When a prediction is served through it / Then nothing is served: a retryable error instead of a lost exposure
    with pytest.raises(ExperimentUnavailableError) as refused:
        serve_experiment([prediction("C1", 0.9)], [0.0], (experiment, assigner_of(experiment)), store)  # type: ignore[arg-type]
    assert refused.value.retryable
    # And once the table takes writes again, the retried request logs the exposure once
    store.fail_writes = False
    served, exposures = serve_experiment([prediction("C1", 0.9)], [0.0], (experiment, assigner_of(experiment)), store)  # type: ignore[arg-type]
    assert exposures == 1
    assert store.exposures == {("exp-serving", "C1"): served[0].variant}


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


def test_service_calls_come_from_the_model_inputs() -> None:
    inputs = {"number_customer_service_calls": np.array([[4.0], [1.0]], dtype=np.float32)}
    assert service_calls_of(inputs) == [4.0, 1.0]
    assert service_calls_of({}) is None
    experiment = pilot_like_experiment()
    baseline_customer = next(f"C{i}" for i in range(100) if assigner_of(experiment).assign(f"C{i}") == "baseline")
    with pytest.raises(ValueError, match="number_customer_service_calls"):
        serve_experiment([prediction(baseline_customer, 0.2)], None, (experiment, assigner_of(experiment)), FakeStore())  # type: ignore[arg-type]
