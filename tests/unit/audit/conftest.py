"""The audit tests' moto account and trail: a fresh audit table per test, no real sleeping, a ticking clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from audit_helpers import TABLE, TickingClock, mocked_audit_aws, no_sleep
from mlops.audit.trail import AuditTrail


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mocked_audit_aws() as clients:
        yield clients


@pytest.fixture
def trail(aws: dict[str, Any]) -> AuditTrail:
    return AuditTrail(TABLE, aws["dynamodb"], clock=TickingClock(), sleep=no_sleep)
