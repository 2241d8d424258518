"""Every analysis of an experiment is a look of its sequential test, kept in the ExperimentsTable (moto, the table
built from template.yaml's own definition), so a sequential result once significant stays significant."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from helpers import load_template
from mlops.core.errors import ExperimentUnavailableError
from mlops.experiments.analysis import analyse
from mlops.experiments.models import Experiment, ExperimentCreate, SequentialState
from mlops.experiments.service import MAX_LOOK_ATTEMPTS, experiment_results, new_experiment
from mlops.experiments.store import ExperimentStore, SequentialStateConflictError

TABLE = "experiments"
FIRST_LOOK, SECOND_LOOK = "2026-11-24T01:00:00.000Z", "2026-11-25T01:00:00.000Z"


@pytest.fixture(scope="module")
def store() -> Iterator[ExperimentStore]:
    """One table for the module (built once); each test uses experiments of its own."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        properties = load_template()["Resources"]["ExperimentsTable"]["Properties"]
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            AttributeDefinitions=properties["AttributeDefinitions"],
            KeySchema=properties["KeySchema"],
            BillingMode=properties["BillingMode"],
        )
        yield ExperimentStore(TABLE, client)


def an_experiment(store: ExperimentStore, experiment_id: str) -> Experiment:
    request = ExperimentCreate(
        experiment_id=experiment_id,
        name="looks",
        variants=[{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
        primary_metric={"name": "retained", "kind": "conversion"},
        minimum_detectable_effect=0.05,
        baseline_value=0.5,
    )
    experiment = new_experiment(request, "2026-11-24T00:00:00.000Z")
    store.create(experiment)
    return experiment


def expose(store: ExperimentStore, experiment_id: str, per_arm: int, rates: dict[str, float], start: int = 0) -> None:
    """`per_arm` new units in each arm, the first rate x units of each retained, through the store's own writes."""
    outcomes, exposures = [], {}
    for arm, rate in rates.items():
        for i in range(per_arm):
            unit = f"{arm}-{start + i}"
            exposures[unit] = arm
            outcomes.append((unit, "retained", float(i < rate * per_arm)))
    store.log_exposures(experiment_id, exposures)
    store.record_outcomes(experiment_id, outcomes)


def sequential_of(results: Any):
    return results.metrics[0].comparisons[0].sequential


def stored_items(store: ExperimentStore, experiment_id: str) -> list[dict[str, Any]]:
    return store._ddb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": f"EXPERIMENT#{experiment_id}"}, ":prefix": {"S": "SEQUENTIAL#"}},
    )["Items"]


def test_a_significant_sequential_result_stays_significant_at_later_analyses(store: ExperimentStore) -> None:
    # Given an experiment whose first 20 units per arm retained 10% against 90%: significant at the first look
    experiment = an_experiment(store, "exp-stays-significant")
    expose(store, experiment.experiment_id, 20, {"control": 0.1, "treatment": 0.9})
    first = sequential_of(experiment_results(store, experiment.experiment_id, FIRST_LOOK))
    assert first.significant
    assert first.looks == 1
    # And 100 more units per arm retained alike, after which the data alone are no longer significant
    expose(store, experiment.experiment_id, 100, {"control": 0.5, "treatment": 0.5}, start=20)
    exposures, outcomes = store.exposures(experiment.experiment_id), store.outcomes(experiment.experiment_id)
    alone = sequential_of(analyse(experiment, exposures, outcomes, SECOND_LOOK))
    assert not alone.significant

    # When the results are read again
    second = sequential_of(experiment_results(store, experiment.experiment_id, SECOND_LOOK))

    # Then the second look reports the running result: still significant, the first look's p-value, the
    # intersection of both looks' sequences
    assert second.significant
    assert second.looks == 2
    assert second.always_valid_p_value == first.always_valid_p_value
    assert second.confidence_sequence.low == max(first.confidence_sequence.low, alone.confidence_sequence.low)
    assert second.confidence_sequence.high == min(first.confidence_sequence.high, alone.confidence_sequence.high)
    # And the table keeps one item for the comparison, at two looks
    (item,) = stored_items(store, experiment.experiment_id)
    assert item["sk"]["S"] == "SEQUENTIAL#retained#treatment"
    assert item["looks"]["N"] == "2"
    assert store.sequential_states(experiment.experiment_id) == {
        ("retained", "treatment"): SequentialState(
            metric="retained",
            treatment="treatment",
            always_valid_p_value=second.always_valid_p_value,
            cs_low=second.confidence_sequence.low,
            cs_high=second.confidence_sequence.high,
            looks=2,
            last_look_at=SECOND_LOOK,
        )
    }


def test_an_experiment_too_small_to_compare_keeps_no_look(store: ExperimentStore) -> None:
    # Given an experiment with one unit per arm
    experiment = an_experiment(store, "exp-too-small")
    expose(store, experiment.experiment_id, 1, {"control": 0.0, "treatment": 1.0})
    # When its results are read
    sequential = sequential_of(experiment_results(store, experiment.experiment_id, FIRST_LOOK))
    # Then there is no sequential result yet, and nothing is stored
    assert sequential.looks == 0
    assert sequential.always_valid_p_value is None
    assert stored_items(store, experiment.experiment_id) == []


class OvertakenStore(ExperimentStore):
    """A store where another analysis of the experiment saves its look right after this one read the states,
    `times` times."""

    def __init__(self, other: ExperimentStore, times: int) -> None:
        super().__init__(other.table_name, other._ddb)
        self.other, self.times = other, times

    def sequential_states(self, experiment_id: str) -> dict[tuple[str, str], SequentialState]:
        states = super().sequential_states(experiment_id)
        if self.times > 0:
            self.times -= 1
            experiment_results(self.other, experiment_id, FIRST_LOOK)
        return states


def test_an_analysis_overtaken_by_another_repeats_its_look_on_the_newer_state(store: ExperimentStore) -> None:
    # Given an experiment whose results another analysis saves while this one is computing them
    experiment = an_experiment(store, "exp-overtaken")
    expose(store, experiment.experiment_id, 30, {"control": 0.2, "treatment": 0.8})
    overtaken = OvertakenStore(store, times=1)
    # When this analysis saves its look
    sequential = sequential_of(experiment_results(overtaken, experiment.experiment_id, SECOND_LOOK))
    # Then its first attempt is refused and repeated: both looks are counted, neither is lost
    assert sequential.looks == 2
    assert store.sequential_states(experiment.experiment_id)["retained", "treatment"].looks == 2
    assert store.sequential_states(experiment.experiment_id)["retained", "treatment"].last_look_at == SECOND_LOOK


def test_an_analysis_overtaken_every_time_is_a_retryable_error(store: ExperimentStore) -> None:
    experiment = an_experiment(store, "exp-always-overtaken")
    expose(store, experiment.experiment_id, 5, {"control": 0.2, "treatment": 0.8})
    with pytest.raises(ExperimentUnavailableError) as raised:
        experiment_results(OvertakenStore(store, times=MAX_LOOK_ATTEMPTS), experiment.experiment_id, SECOND_LOOK)
    assert raised.value.retryable
    # And the looks of the analyses that did save are all kept
    assert store.sequential_states(experiment.experiment_id)["retained", "treatment"].looks == MAX_LOOK_ATTEMPTS


def test_a_look_computed_from_stale_states_is_refused_as_a_whole(store: ExperimentStore) -> None:
    # Given two comparisons saved at their first look
    def state(treatment: str, looks: int) -> SequentialState:
        return SequentialState(
            metric="retained",
            treatment=treatment,
            always_valid_p_value=0.5,
            cs_low=-0.1,
            cs_high=0.1,
            looks=looks,
            last_look_at=FIRST_LOOK,
        )

    store.save_sequential_states("exp-stale", [state("a", 1), state("b", 1)], {})
    saved = store.sequential_states("exp-stale")
    # When a second look is saved from states where one of them was not there yet
    stale = {("retained", "a"): saved["retained", "a"]}
    with pytest.raises(SequentialStateConflictError):
        store.save_sequential_states("exp-stale", [state("a", 2), state("b", 1)], stale)
    # Then nothing of it was written; from the states as saved it is
    assert store.sequential_states("exp-stale") == saved
    store.save_sequential_states("exp-stale", [state("a", 2), state("b", 2)], saved)
    assert {key: s.looks for key, s in store.sequential_states("exp-stale").items()} == {
        ("retained", "a"): 2,
        ("retained", "b"): 2,
    }


def test_exposures_are_logged_in_batches_once_per_unit_and_never_rewritten(store: ExperimentStore) -> None:
    # Given an experiment, and 260 units exposed in one call (more than one BatchGetItem and many BatchWriteItems)
    an_experiment(store, "exp-exposures")
    first = {f"u{i}": ("control" if i % 2 else "treatment") for i in range(260)}
    assert store.log_exposures("exp-exposures", first) == 260
    written = store.exposures("exp-exposures")
    # When 10 of them come again (a retried request, with another variant claimed) beside 5 new units
    again = {f"u{i}": "other" for i in range(10)} | {f"new{i}": "control" for i in range(5)}
    # Then only the new units are first exposures, and the earlier exposures keep their variant
    assert store.log_exposures("exp-exposures", again) == 5
    exposures = store.exposures("exp-exposures")
    assert len(exposures) == 265
    assert all(exposures[unit] == variant for unit, variant in written.items())
