"""No personal data in logs: a whole pilot run through its command line (`make pilot`, which writes what every
function logged, JSON logs and EMF metrics, to OUTPUT_DIR/lambda.log as CloudWatch would hold it) is scanned
for the data set's customer ids, its columns as log fields, and its customers' feature values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import PROJECT_ROOT, TELECOM_CSV, TELECOM_SCHEMA
from log_scan import CustomerData, scan_logs


def test_a_pilot_run_logs_no_customer_data(tmp_path: Path) -> None:
    # Given a pilot run by its command line: 1,800 predictions, 4,000 customers ingested, 800 outcomes logged
    completed = subprocess.run(  # noqa: S603 (this interpreter, our own module)
        [sys.executable, "-m", "local_cloud.cli", "pilot", "--output-dir", str(tmp_path)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": "local:layers/platform"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]

    # When its functions' log is scanned
    scan = scan_logs((tmp_path / "lambda.log").read_text(), CustomerData.read(TELECOM_CSV, TELECOM_SCHEMA))

    # Then every function logged (hundreds of records) and none of it is customer data
    assert scan.records > 500
    assert scan.findings == []
