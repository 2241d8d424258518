"""`make events`: run the pilot locally and write the input each pilot step received to events/.

The step events (`events/pilot_step_<state>.json`) are then real payloads of the current state machine, for
`sam local invoke <Function> -e ...` and for the tests. Resource names inside them are the local stack's.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT / "layers" / "platform"))

from local_cloud.cli import LOCAL_PARAMETERS, functions_log, pilot_arguments, run_pilot  # noqa: E402
from local_cloud.platform import LocalPlatform  # noqa: E402


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    pilot_arguments(parser)
    args = parser.parse_args(["--output-dir", str(PROJECT_ROOT / "out" / "capture-events")])
    with LocalPlatform(PROJECT_ROOT, parameter_overrides=LOCAL_PARAMETERS) as platform, functions_log(args) as console:
        results = run_pilot(platform, args, console)
        history = platform.client("stepfunctions").get_execution_history(
            executionArn=results["execution_arn"], maxResults=1000
        )["events"]
    state = None
    for event in history:
        if event["type"] == "TaskStateEntered":
            state = event["stateEnteredEventDetails"]["name"]
        details = event.get("lambdaFunctionScheduledEventDetails")
        if details and state:
            path = PROJECT_ROOT / "events" / f"pilot_step_{snake_case(state)}.json"
            path.write_text(json.dumps(json.loads(details["input"]), indent=2) + "\n")
            print(f"wrote {path.relative_to(PROJECT_ROOT)}", file=console)
            state = None
    return 0 if results["status"] == "SUCCEEDED" else 1


if __name__ == "__main__":
    raise SystemExit(main())
