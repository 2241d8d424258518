"""Shared test helpers: the project's files, its events, and a fake Lambda context."""

from __future__ import annotations

import argparse
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EVENTS_DIR = PROJECT_ROOT / "events"
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
PILOT_ASL_PATH = PROJECT_ROOT / "statemachines" / "pilot.asl.json"
TELECOM_CSV = PROJECT_ROOT / "data" / "telecom_churn.csv"
TELECOM_SCHEMA = PROJECT_ROOT / "data" / "telecom_churn.schema.json"
TELCO_CSV = PROJECT_ROOT / "tests" / "datasets" / "telco_churn.csv"
"""Our own Telco-shaped churn data set (tests/datasets/make_telco.py): another schema, blanks, text categories."""
TELCO_SCHEMA = PROJECT_ROOT / "tests" / "datasets" / "telco_churn.schema.json"


def load_event(name: str) -> dict[str, Any]:
    """An event from events/, the same file `sam local invoke -e events/<name>.json` uses."""
    return json.loads((EVENTS_DIR / f"{name}.json").read_text())


def load_template() -> dict[str, Any]:
    return yaml_parse(TEMPLATE_PATH.read_text())


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def pilot_args(output_dir: Path, **overrides: Any) -> argparse.Namespace:
    """The CLI's arguments for a pilot run on the telecom data, as `make pilot` parses them. The latency target
    is loose: these runs share a busy machine with other suites, and latency is measured by `make bench` and by
    CI's own `make pilot`, not by test fixtures."""
    values = dict(
        data=TELECOM_CSV,
        schema=TELECOM_SCHEMA,
        output_dir=output_dir,
        output_file=None,
        target_accuracy=None,
        target_auc=None,
        max_latency=2_000.0,
        target_impact=None,
        annual_value=None,
        offer_cost=None,
        acceptance_rate=None,
        customer_base=None,
        baseline=None,
        smoke_test_calls=200,
        seed=42,
        timeout=600.0,
    )
    values.update(overrides)
    return argparse.Namespace(**values)


def emitted_metrics(output: str) -> list[dict[str, Any]]:
    """The metrics in Powertools' EMF lines of `output`: name, value (values summed) and dimensions."""
    metrics = []
    for line in output.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            dimensions = {name: blob[name] for names in directive["Dimensions"] for name in names}
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                metrics.append(
                    {
                        "name": metric["Name"],
                        "value": sum(value) if isinstance(value, list) else value,
                        "dimensions": dimensions,
                    }
                )
    return metrics


def parameter_value(template: dict[str, Any], value: Any) -> Any:
    """A property as deployed with the parameters' defaults; a `!Ref` to a resource becomes '<Id>'."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        parameter = template.get("Parameters", {}).get(value["Ref"])
        return parameter["Default"] if parameter else f"<{value['Ref']}>"
    return value


_COMPARISONS = {
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
}


def alarm_breached(alarm_logical_id: str, value: float) -> bool:
    """Whether a datapoint of `value` breaches the template's alarm (its comparison and threshold as deployed)."""
    template = load_template()
    properties = template["Resources"][alarm_logical_id]["Properties"]
    threshold = float(parameter_value(template, properties["Threshold"]))
    return _COMPARISONS[properties["ComparisonOperator"]](value, threshold)
