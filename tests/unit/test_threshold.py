"""The decision threshold chosen for the retention campaign: the one with the highest net business value."""

from __future__ import annotations

import numpy as np
import pytest

from mlops.training.threshold import CURVE_POINTS, ThresholdChoice, choose_threshold

VALUE_PER_SAVED_CUSTOMER = 210.0
OFFER_COST = 50.0

# Seven customers, scored 0.05 ... 0.95; the ones at 0.35, 0.65, 0.80 and 0.95 churned.
HAND_PROBABILITIES = np.array([0.05, 0.20, 0.35, 0.50, 0.65, 0.80, 0.95])
HAND_LABELS = np.array([0, 0, 1, 0, 1, 1, 1])


def choose(
    probabilities: np.ndarray,
    labels: np.ndarray,
    value: float = VALUE_PER_SAVED_CUSTOMER,
    cost: float = OFFER_COST,
) -> ThresholdChoice:
    return choose_threshold(
        probabilities, labels, value_per_saved_customer_usd=value, offer_cost_usd=cost, source="validation"
    )


def brute_force_best(probabilities: np.ndarray, labels: np.ndarray, value: float, cost: float) -> tuple[float, float]:
    """(threshold, net value) of the best threshold in 0.01 ... 0.99, ties to the higher one, computed directly."""
    best: tuple[float, float] | None = None
    for hundredths in range(1, 100):
        threshold = hundredths / 100
        flagged = probabilities >= threshold
        net = float((flagged & (labels == 1)).sum() * value - flagged.sum() * cost)
        if best is None or net >= best[1]:
            best = (threshold, net)
    assert best is not None
    return best


def test_the_chosen_threshold_maximises_net_value_and_ties_go_to_the_higher_threshold() -> None:
    # Given seven scored customers where every threshold in (0.20, 0.35] flags the same four churners and one
    # loyal customer (4 * 210 - 5 * 50 = 590, the best value)
    # When the threshold is chosen
    choice = choose(HAND_PROBABILITIES, HAND_LABELS)
    # Then it is the highest of those tied thresholds, the same as a direct search over the thresholds
    assert choice.threshold == 0.35
    assert choice.net_value_usd == 590.0
    assert (choice.threshold, choice.net_value_usd) == brute_force_best(
        HAND_PROBABILITIES, HAND_LABELS, VALUE_PER_SAVED_CUSTOMER, OFFER_COST
    )
    # And the figures that come with it describe that threshold on these rows
    assert choice.rows == 7
    assert choice.net_value_per_customer_usd == round(590.0 / 7, 4)
    assert (choice.source, choice.value_per_saved_customer_usd, choice.offer_cost_usd) == ("validation", 210.0, 50.0)


def test_every_curve_point_holds_the_counts_and_value_of_its_threshold() -> None:
    # Given the hand example
    # When the threshold is chosen
    choice = choose(HAND_PROBABILITIES, HAND_LABELS)
    # Then the curve has 101 points, 0.00 to 1.00 in steps of 0.01
    assert len(choice.curve) == CURVE_POINTS == 101
    assert [point.threshold for point in choice.curve] == [i / 100 for i in range(101)]
    # And each point's counts and value are those of flagging every score at or above its threshold
    for point in choice.curve:
        flagged = point.threshold <= HAND_PROBABILITIES
        true_positives = int((flagged & (HAND_LABELS == 1)).sum())
        assert (point.offers, point.true_positives) == (int(flagged.sum()), true_positives)
        assert point.false_positives == point.offers - true_positives
        assert point.recall == true_positives / 4
        assert point.precision == (true_positives / point.offers if point.offers else 0.0)
        assert point.net_value_usd == true_positives * VALUE_PER_SAVED_CUSTOMER - point.offers * OFFER_COST
    # And the chosen point is on the curve with the highest value
    chosen = next(point for point in choice.curve if point.threshold == choice.threshold)
    assert chosen.net_value_usd == max(point.net_value_usd for point in choice.curve if 0 < point.threshold < 1)


def test_the_threshold_is_never_zero_or_one_even_when_flagging_everyone_or_no_one_pays_best() -> None:
    # Given free offers and a churner scored 0.01 (threshold 0.00 would flag everyone for the same value), and
    # offers that never pay (threshold 1.00 would flag no one for the same value)
    # When the thresholds are chosen
    everyone = choose(np.array([0.01, 0.5, 0.0]), np.array([1, 0, 0]), cost=0.0)
    no_one = choose(HAND_PROBABILITIES, HAND_LABELS, value=0.0)
    # Then they stay strictly inside (0, 1): at the lowest and the highest candidate
    assert everyone.threshold == 0.01
    assert no_one.threshold == 0.99
    assert no_one.net_value_usd == 0.0


def test_free_offers_flag_every_churner_at_the_highest_threshold_that_still_does() -> None:
    # Given offers that cost nothing: any threshold at or below the lowest-scored churner (0.35) gives the same value
    # When the threshold is chosen
    choice = choose(HAND_PROBABILITIES, HAND_LABELS, cost=0.0)
    # Then every churner is flagged, and the tie goes to the highest such threshold (the fewest offers)
    assert choice.threshold == 0.35
    chosen = next(point for point in choice.curve if point.threshold == choice.threshold)
    assert (chosen.recall, chosen.net_value_usd) == (1.0, 4 * VALUE_PER_SAVED_CUSTOMER)
    assert choice.threshold == brute_force_best(HAND_PROBABILITIES, HAND_LABELS, VALUE_PER_SAVED_CUSTOMER, 0.0)[0]


def test_perfectly_separated_scores_give_a_threshold_that_flags_exactly_the_churners() -> None:
    # Given churners all scored 0.6 or more and loyal customers all 0.4 or less
    probabilities = np.array([0.10, 0.25, 0.40, 0.40, 0.60, 0.75, 0.90])
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    # When the threshold is chosen
    choice = choose(probabilities, labels)
    # Then it flags the three churners and no one else, and ties go to the top of the gap
    flagged = probabilities >= choice.threshold
    assert np.array_equal(flagged, labels == 1)
    assert choice.threshold == 0.6
    assert choice.net_value_usd == 3 * (VALUE_PER_SAVED_CUSTOMER - OFFER_COST)


def test_with_calibrated_scores_the_threshold_is_near_the_break_even_probability() -> None:
    # Given 20,000 customers whose churn is drawn with exactly their predicted probability (a calibrated model)
    rng = np.random.default_rng(20260401)
    probabilities = rng.beta(2.0, 5.0, size=20_000)
    labels = (rng.random(20_000) < probabilities).astype(int)
    # When the threshold is chosen
    choice = choose(probabilities, labels)
    # Then it is near the probability at which an offer breaks even: cost / value = 50 / 210 ~ 0.24
    break_even = OFFER_COST / VALUE_PER_SAVED_CUSTOMER
    assert abs(choice.threshold - break_even) <= 0.05, choice.threshold
    # And it is still exactly the best point of the curve
    assert (choice.threshold, choice.net_value_usd) == pytest.approx(
        brute_force_best(probabilities, labels, VALUE_PER_SAVED_CUSTOMER, OFFER_COST)
    )


@pytest.mark.parametrize(
    ("probabilities", "labels"),
    [
        pytest.param([0.1, 0.9], [0, 1, 1], id="more-labels-than-probabilities"),
        pytest.param([0.1, 0.9, 0.5], [0, 1], id="more-probabilities-than-labels"),
        pytest.param([], [], id="empty"),
    ],
)
def test_probabilities_and_labels_of_different_lengths_or_none_at_all_are_refused(
    probabilities: list[float], labels: list[int]
) -> None:
    with pytest.raises(ValueError, match="non-empty and of the same length"):
        choose(np.array(probabilities), np.array(labels))


def test_the_most_valuable_threshold_is_chosen_among_those_meeting_the_accuracy_target() -> None:
    # Given the hand example, where the most valuable threshold (0.35: four churners and one loyal customer
    # flagged) is 6/7 accurate, and a threshold of 0.51 to 0.65 flags three churners only (6/7 accurate too)
    # When the accuracy target is 6/7, then 1.0 (no threshold reaches it)
    reachable = choose_threshold(
        HAND_PROBABILITIES,
        HAND_LABELS,
        value_per_saved_customer_usd=VALUE_PER_SAVED_CUSTOMER,
        offer_cost_usd=OFFER_COST,
        source="validation",
        min_accuracy=6 / 7 - 1e-9,
    )
    unreachable = choose_threshold(
        HAND_PROBABILITIES,
        HAND_LABELS,
        value_per_saved_customer_usd=VALUE_PER_SAVED_CUSTOMER,
        offer_cost_usd=OFFER_COST,
        source="validation",
        min_accuracy=1.0,
    )
    # Then the reachable target keeps the most valuable threshold, whose accuracy is recorded with it
    assert (reachable.threshold, reachable.meets_min_accuracy) == (0.35, True)
    assert reachable.accuracy == round(6 / 7, 6)
    # And the unreachable one is refused with the best accuracy any threshold reaches, and where
    assert unreachable.meets_min_accuracy is False
    assert unreachable.best_accuracy == round(6 / 7, 6)
    assert unreachable.threshold == unreachable.best_accuracy_threshold


def test_an_accuracy_target_moves_the_threshold_off_the_value_optimum_when_it_must() -> None:
    # Given cheap offers, where flagging almost everyone pays best but is inaccurate
    rng = np.random.default_rng(3)
    labels = rng.random(2_000) < 0.2
    probabilities = np.clip(0.2 + 0.5 * labels + rng.normal(0, 0.2, 2_000), 0, 1)
    unconstrained = choose(probabilities, labels, value=210.0, cost=1.0)
    # When the accuracy must reach 0.85
    constrained = choose_threshold(
        probabilities,
        labels,
        value_per_saved_customer_usd=210.0,
        offer_cost_usd=1.0,
        source="validation",
        min_accuracy=0.85,
    )
    # Then the unconstrained optimum misses the target, and the constrained choice is the most valuable point
    # of the curve that meets it (checked over the whole curve)
    assert unconstrained.accuracy < 0.85
    meeting = [p for p in constrained.curve if 0 < p.threshold < 1 and p.accuracy >= 0.85]
    assert constrained.meets_min_accuracy
    assert constrained.net_value_usd == max(p.net_value_usd for p in meeting)
    assert constrained.accuracy >= 0.85
    assert constrained.threshold > unconstrained.threshold
