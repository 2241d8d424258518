"""The pilot's monitoring step waits for the window's predictions to reach the audit trail before monitoring."""

from __future__ import annotations

import pytest

from mlops.core.errors import MonitoringError
from mlops.pilot.monitoring import wait_until_audited


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_it_returns_once_the_writer_appended_every_prediction() -> None:
    # Given predictions that reach the trail over three polls (the audit queue draining)
    arrivals = iter([["p1"], ["p1", "p2"], ["p1", "p2", "p3", "other"]])
    time = FakeTime()
    # When the step waits for them
    wait_until_audited({"p1", "p2", "p3"}, lambda: next(arrivals), clock=time.clock, sleep=time.sleep)
    # Then it polled until all were there, and no longer
    assert time.sleeps == [1.0, 1.0]


def test_it_fails_naming_how_many_are_missing_after_the_timeout() -> None:
    time = FakeTime()
    with pytest.raises(MonitoringError, match="2 of the window's 3 predictions are still not in the audit trail"):
        wait_until_audited({"p1", "p2", "p3"}, lambda: ["p1"], timeout_s=5, clock=time.clock, sleep=time.sleep)
    assert time.now == 5.0
