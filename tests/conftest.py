"""Fixtures shared by the suites that run on the embedded AWS.

Both are module-scoped: each test module gets a fresh local stack (only one can be active in a process at a
time, and module-scoped fixtures are torn down before the next module starts), and modules that need a
deployed model share one pilot run (about half a minute).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import CHROMIUM

from helpers import PROJECT_ROOT, pilot_args
from local_cloud.cli import LOCAL_PARAMETERS, run_pilot
from local_cloud.platform import LocalPlatform


@pytest.fixture(scope="module")
def platform() -> Iterator[LocalPlatform]:
    with LocalPlatform(PROJECT_ROOT, parameter_overrides=LOCAL_PARAMETERS) as local_platform:
        yield local_platform


@pytest.fixture(scope="module")
def pilot(platform: LocalPlatform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One pilot run on the telecom data: its results and its output directory."""
    output_dir = tmp_path_factory.mktemp("pilot")
    results = run_pilot(platform, pilot_args(output_dir))
    assert results["status"] == "SUCCEEDED", results["error"]
    return {"results": results, "output_dir": output_dir}


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium for the report tests: skipped without it (`make browser` installs it), but not in CI."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: `make browser` installs Debian's chromium"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the browser test")
        pytest.skip(message)
    return CHROMIUM
