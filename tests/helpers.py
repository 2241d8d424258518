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
    values = dict(
        data=TELECOM_CSV,
        schema=TELECOM_SCHEMA,
        output_dir=output_dir,
        output_file=None,
        target_accuracy=0.87,
        target_auc=0.87,
        max_latency=80.0,
        target_impact=500_000.0,
        baseline="service_calls_rule",
        smoke_test_calls=200,
        seed=42,
        timeout=600.0,
    )
    values.update(overrides)
    return argparse.Namespace(**values)
