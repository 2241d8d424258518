"""The log scanner that checks a pilot run's logs for customer data (tests/e2e/test_logs_hold_no_customer_data.py)
finds the leaks it is meant to find, written by the real Powertools logger."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from aws_lambda_powertools import Logger

from helpers import TELECOM_CSV, TELECOM_SCHEMA, FakeLambdaContext, load_event
from log_scan import CustomerData, scan_logs


@pytest.fixture(scope="module")
def customers() -> CustomerData:
    return CustomerData.read(TELECOM_CSV, TELECOM_SCHEMA)


def _logger() -> tuple[Logger, io.StringIO]:
    # A service of its own each time: Powertools loggers of one service share their handler (and stream).
    stream = io.StringIO()
    return Logger(service=f"scan-test-{uuid.uuid4().hex[:8]}", stream=stream), stream


def test_a_logged_event_is_found(customers: CustomerData) -> None:
    # Given a handler that logs its whole event (Powertools' log_event=True)
    logger, stream = _logger()

    @logger.inject_lambda_context(log_event=True)
    def handler(event: dict, context: object) -> None:
        return None

    # When it handles a predict request
    handler(load_event("predict_valid"), FakeLambdaContext())

    # Then the scan names the payload it logged
    findings = scan_logs(stream.getvalue(), customers).findings
    assert any("fields named after customer data" in f and "body" in f for f in findings)


def test_a_customer_id_or_a_row_under_other_names_is_found(customers: CustomerData) -> None:
    # Given the first customer of the data set (C00001: day 265.1, eve 197.4, night 244.7 minutes)
    logger, stream = _logger()

    # When one record names the customer and another holds three of its values under made-up names
    logger.info("Scored C00001")
    logger.info("Scored", extra={"a": 265.1, "b": 197.4, "c": 244.7})

    # Then both are found
    findings = scan_logs(stream.getvalue(), customers).findings
    assert any("customer ids ['C00001']" in f for f in findings)
    assert any("3 feature values of data set row 0" in f for f in findings)


def test_metrics_and_operational_logs_are_clean(customers: CustomerData) -> None:
    # Given what an instrumented handler writes: operational fields and an EMF document
    logger, stream = _logger()
    logger.info("Model registered", extra={"model_version": "v20261124-abc", "cv_auc": 0.9375})
    emf = {"_aws": {"CloudWatchMetrics": [{"Namespace": "ServerlessMLOps", "Metrics": [{"Name": "Latency"}]}]}}
    stream.write(json.dumps({**emf, "Latency": 12.5, "service": "scoring"}) + "\n")

    # When scanned
    scan = scan_logs(stream.getvalue(), customers)

    # Then both records are read and nothing is found
    assert scan.records == 2
    assert scan.findings == []
