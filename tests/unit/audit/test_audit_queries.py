"""Queries across audit chains on moto: filters, time ranges, pages and their tokens."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest

from audit_helpers import T0, TABLE, event, no_sleep
from mlops.audit.queries import AuditPage, query_audit
from mlops.audit.records import AuditEventType
from mlops.audit.trail import AuditTrail, writer_chain
from mlops.core.errors import InvalidRequestError


def ids(page: AuditPage) -> list[int]:
    """The `i` of each event of a page (records of several chains share sequence numbers)."""
    return [int(str(record.event.details["i"])) for record in page.records]


def all_pages(query: Callable[[str | None], AuditPage]) -> list[list[int]]:
    """Event ids of every page, following tokens until the last page."""
    pages: list[list[int]] = []
    token: str | None = None
    while True:
        page = query(token)
        pages.append(ids(page))
        token = page.next_page_token
        if token is None:
            return pages
        assert len(pages) < 100, "tokens must progress"


# ---------------------------------------------------------------------- queries across chains
MIXED = [
    (AuditEventType.PREDICTION, "customer:C1"),
    (AuditEventType.MODEL_DEPLOYED, "model:churn/v3"),
    (AuditEventType.PREDICTION, "customer:C2"),
    (AuditEventType.PREDICTION, "customer:C1"),
    (AuditEventType.FEATURE_DELETION, "customer:C1"),
    (AuditEventType.MODEL_ROLLED_BACK, "model:churn/v3"),
]
NOW = (T0 + dt.timedelta(days=1)).timestamp()  # the clock of queries: the day after T0


def query(aws: dict[str, Any], **arguments: Any) -> AuditPage:
    return query_audit(TABLE, aws["dynamodb"], clock=lambda: NOW, sleep=no_sleep, **arguments)


@pytest.fixture
def mixed(aws: dict[str, Any]) -> None:
    """Twelve events (the pattern twice) one minute apart from T0, written alternately by two writers' chains."""
    writers = [AuditTrail(TABLE, aws["dynamodb"], chain=writer_chain("scoring")) for _ in range(2)]
    for i in range(12):
        writers[i % 2].append(event(i, *MIXED[i % len(MIXED)]))


@pytest.mark.usefixtures("mixed")
def test_query_filters_by_event_type_across_chains(aws: dict[str, Any]) -> None:
    page = query(aws, event_type="prediction")
    assert ids(page) == [0, 2, 3, 6, 8, 9]
    assert page.next_page_token is None
    assert ids(query(aws, event_type=AuditEventType.MODEL_DEPLOYED)) == [1, 7]
    window = query(aws, event_type="prediction", since=T0 + dt.timedelta(minutes=3), until=T0.replace(minute=8))
    assert ids(window) == [3, 6, 8]
    assert ids(query(aws, event_type="prediction", until=T0 + dt.timedelta(minutes=6))) == [0, 2, 3, 6]


@pytest.mark.usefixtures("mixed")
def test_query_filters_by_entity_and_time_range(aws: dict[str, Any]) -> None:
    # Entity, time range (inclusive) and type filters combine
    assert ids(query(aws, entity="customer:C1")) == [0, 3, 4, 6, 9, 10]
    assert ids(query(aws, entity="customer:C1", since=T0 + dt.timedelta(minutes=3))) == [3, 4, 6, 9, 10]
    window = query(aws, entity="customer:C1", since=T0 + dt.timedelta(minutes=3), until="2026-11-01T12:09:00Z")
    assert ids(window) == [3, 4, 6, 9]
    typed = query(aws, event_type="prediction", entity="customer:C1", until=T0 + dt.timedelta(minutes=6))
    assert ids(typed) == [0, 3, 6]
    assert query(aws, entity="customer:nobody").records == []
    # And entity pages continue through tokens without repeats or gaps
    assert all_pages(lambda token: query(aws, entity="customer:C1", limit=4, page_token=token)) == [
        [0, 3, 4, 6],
        [9, 10],
    ]
    typed_pages = all_pages(
        lambda token: query(aws, event_type="prediction", entity="customer:C1", limit=2, page_token=token)
    )
    assert [i for page in typed_pages for i in page] == [0, 3, 6, 9]


@pytest.mark.usefixtures("mixed")
def test_query_filters_by_time_range_through_the_days(aws: dict[str, Any]) -> None:
    page = query(aws, since=T0 + dt.timedelta(minutes=3), until=T0 + dt.timedelta(minutes=6))
    assert ids(page) == [3, 4, 5, 6]
    assert ids(query(aws, until="2026-11-01T13:01:00+01:00")) == [0, 1]
    # Without since, the last seven days (before until, or before now) are read
    assert ids(query(aws)) == list(range(12))
    assert query(aws, until=T0 + dt.timedelta(days=8)).records == []
    assert ids(query(aws, until=T0 + dt.timedelta(days=6))) == list(range(12))


def test_pages_continue_across_days_and_chains_without_repeats_or_gaps(aws: dict[str, Any]) -> None:
    # Given 25 events three hours apart (four days), written by three writers' chains
    writers = [AuditTrail(TABLE, aws["dynamodb"], chain=writer_chain("scoring")) for _ in range(3)]
    for i in range(25):
        writers[i % 3].append(event(i, *MIXED[i % len(MIXED)], minutes=180))
    since, until = T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=3, hours=6)
    # Then unfiltered pages are full and in time order, across days and chains (the day before T0 is empty)
    assert all_pages(lambda token: query(aws, since=since, until=until, limit=10, page_token=token)) == [
        list(range(0, 10)),
        list(range(10, 20)),
        list(range(20, 25)),
    ]
    # And a page ending exactly at the end of the days has no token
    assert query(aws, since=since, until=until, limit=25).next_page_token is None
    # And without until, reading stops at today (the clock's day, the day after T0)
    assert ids(query(aws, since=since)) == list(range(12))
    # And filtered pages are full too, although DynamoDB's Limit counts items before the filter
    predictions = [i for i in range(25) if MIXED[i % len(MIXED)][0] == "prediction"]
    pages = all_pages(lambda token: query(aws, event_type="prediction", limit=4, page_token=token))
    assert [i for page in pages for i in page] == predictions
    assert all(len(page) == 4 for page in pages[:-1])
    # And with a tiny read budget per page, pages may be short but tokens still progress over every record
    frugal = all_pages(
        lambda token: query(aws, entity="model:churn/v3", event_type="model_deployed", scan_budget=1, page_token=token)
    )
    assert [i for page in frugal for i in page] == [1, 7, 13, 19]
    assert len(frugal) > 1
    # And a default window without until is read from the token, so pages agree on it whatever the time
    first = query(aws, limit=3)
    later = query_audit(TABLE, aws["dynamodb"], clock=lambda: NOW + 86400, limit=3, page_token=first.next_page_token)
    assert ids(first) + ids(later) == list(range(6))


def retoken(token: str | None, change: Callable[[dict[str, Any]], None]) -> str:
    assert token is not None
    state = json.loads(base64.urlsafe_b64decode(token))
    change(state)
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


@pytest.mark.parametrize(
    ("make_token", "arguments"),
    [
        (lambda aws: "not a token!", {}),
        (lambda aws: "", {}),
        (lambda aws: base64.urlsafe_b64encode(b"[1, 2]").decode(), {}),
        (lambda aws: retoken(query(aws, limit=1).next_page_token, lambda s: s.pop("q")), {}),
        (lambda aws: retoken(query(aws, limit=1).next_page_token, lambda s: s["k"].pop("sk")), {}),
        (lambda aws: retoken(query(aws, limit=1).next_page_token, lambda s: s.update(p="DAY#2020-01-01")), {}),
        (lambda aws: retoken(query(aws, limit=1).next_page_token, lambda s: s.update(s="yesterday")), {}),
        (
            lambda aws: retoken(
                query(aws, entity="customer:C1", limit=1).next_page_token,
                lambda s: s["k"].update(entity_pk={"S": "ENTITY#customer:C2"}),
            ),
            {"entity": "customer:C1"},
        ),
        (lambda aws: query(aws, entity="customer:C1", limit=1).next_page_token, {}),  # another query's token
        (lambda aws: query(aws, event_type="prediction", limit=1).next_page_token, {"event_type": "pilot_run"}),
    ],
    ids=[
        "garbage",
        "empty",
        "not-a-token",
        "no-fingerprint",
        "incomplete-key",
        "day-outside-the-range",
        "malformed-default-since",
        "key-of-another-partition",
        "other-index",
        "other-filter",
    ],
)
@pytest.mark.usefixtures("mixed")
def test_a_malformed_page_token_is_rejected(
    aws: dict[str, Any], make_token: Callable[[dict[str, Any]], str], arguments: dict[str, Any]
) -> None:
    token = make_token(aws)
    with pytest.raises(InvalidRequestError) as raised:
        query(aws, limit=5, page_token=token, **arguments)
    assert raised.value.field == "page_token"


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"event_type": "coffee_break"}, "event_type"),
        ({"entity": "Jane Doe"}, "entity"),
        ({"since": "2026-11-01T12:00:00"}, "since"),  # no time zone
        ({"since": T0, "until": T0 - dt.timedelta(seconds=1)}, "until"),
        ({"since": T0 - dt.timedelta(days=366)}, "since"),  # too many days to read one by one
    ],
)
def test_invalid_query_parameters_are_rejected(aws: dict[str, Any], arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        query(aws, **arguments)
    assert raised.value.field == field
