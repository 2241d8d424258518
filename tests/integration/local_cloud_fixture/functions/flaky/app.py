"""Fails with FlakyDependencyError the first FLAKY_FAILURES times it is called in one environment."""

import os

calls = 0


class FlakyDependencyError(Exception):
    pass


def handler(event, context):
    global calls
    calls += 1
    if calls <= int(os.environ["FLAKY_FAILURES"]):
        raise FlakyDependencyError(f"dependency unavailable (call {calls})")
    return {"attempts": calls}
