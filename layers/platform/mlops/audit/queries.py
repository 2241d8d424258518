"""Queries across every chain of the audit table, through its global secondary indexes.

`query_audit` reads the GSIs (`mlops.audit.table`) across all chains, oldest `occurred_at` first: by entity
through `by_entity` (with a filter on the event type if both are given), by event type through `by_type`,
otherwise day by day through `by_day`. GSIs are eventually consistent: a record shows up in queries shortly after
its append. A page that is not the last carries an opaque token: the position to continue from, bound to the
query's filters by a fingerprint.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from mlops.audit.records import ENTITY_PATTERN, AuditEventType, AuditRecord
from mlops.audit.table import (
    AUDIT_TABLE_INDEXES,
    BY_DAY_INDEX,
    BY_ENTITY_INDEX,
    BY_TYPE_INDEX,
    CHAIN_PATTERN,
    RetryingDynamoDB,
    exclusive_start,
    position,
    readable_record,
)
from mlops.core import retries
from mlops.core.canonical_json import canonical_dumps
from mlops.core.clock import format_timestamp, normalize_timestamp
from mlops.core.errors import InvalidRequestError

MAX_QUERY_LIMIT = 1000
DEFAULT_QUERY_DAYS = 7  # what query_audit reads without event_type, entity or since
MAX_QUERY_DAYS = 366  # the longest span query_audit reads day by day
_MAX_REQUESTS_PER_PAGE = 50  # DynamoDB requests one query page may make (e.g. over many empty days)


class AuditPage(BaseModel):
    records: list[AuditRecord]
    next_page_token: str | None = None


@dataclass(frozen=True)
class _QueryPlan:
    """Which GSI partitions to read, in order, with the key condition's time range and an optional filter."""

    index: str
    partitions: tuple[str, ...]  # values of the index's HASH attribute, read one after the other
    since: str | None
    until: str | None
    event_type: AuditEventType | None  # filtered (not a key condition): only with the entity index

    @property
    def hash_attribute(self) -> str:
        return AUDIT_TABLE_INDEXES[self.index][0]

    @property
    def fingerprint(self) -> str:
        first, last = (self.partitions[0], self.partitions[-1]) if self.partitions else (None, None)
        text = canonical_dumps([self.index, first, last, len(self.partitions), self.since, self.until, self.event_type])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def query_audit(
    table_name: str,
    dynamodb_client: Any,
    event_type: AuditEventType | str | None = None,
    entity: str | None = None,
    since: dt.datetime | str | None = None,
    until: dt.datetime | str | None = None,
    limit: int = 50,
    page_token: str | None = None,
    *,
    clock: Callable[[], float] = time.time,
    scan_budget: int = 2000,
    max_attempts: int = 5,
    sleep: Callable[[float], None] = retries.sleep,
) -> AuditPage:
    """Records of every chain matching every given filter, oldest `occurred_at` first, `limit` per page.

    `since` and `until` are inclusive and apply to `occurred_at`. With `entity`, the `by_entity` index is read
    (and the event type, if given, filtered); with only `event_type`, the `by_type` index; those two read all
    time unless bounded. With neither, `by_day` is read day by day (UTC) from the day of `since` to the day of
    `until`: `since` defaults to `DEFAULT_QUERY_DAYS` (7) days before `until`, or before now (the `clock`)
    when `until` is not given either, in which case reading stops at today; such a span may cover at most
    `MAX_QUERY_DAYS` days. Records with the same `occurred_at` come in an unspecified but stable order.
    Pages are full unless the records end or one page read `scan_budget` items or made 50 requests (a sparse
    filter, many empty days); a short page with a token just means "keep going", and the last page may be
    empty. The token is opaque and only valid for the same filters.
    """
    if not isinstance(limit, int) or not 1 <= limit <= MAX_QUERY_LIMIT:
        raise InvalidRequestError(field="limit", message=f"must be between 1 and {MAX_QUERY_LIMIT}")
    wanted_type = _checked_event_type(event_type)
    if entity is not None and (
        not isinstance(entity, str) or len(entity) > 1024 or not re.fullmatch(ENTITY_PATTERN, entity)
    ):
        raise InvalidRequestError(field="entity", message="must be `<kind>:<id>` in printable ASCII")
    since_at = _checked_timestamp("since", since)
    until_at = _checked_timestamp("until", until)
    if since_at and until_at and since_at > until_at:
        raise InvalidRequestError(field="until", message="must not be before since")
    state = _decode_token(page_token)
    if entity is not None:
        plan = _QueryPlan(BY_ENTITY_INDEX, (f"ENTITY#{entity}",), since_at, until_at, wanted_type)
    elif wanted_type is not None:
        plan = _QueryPlan(BY_TYPE_INDEX, (f"TYPE#{wanted_type.value}",), since_at, until_at, None)
    else:
        plan = _day_plan(since_at, until_at, state, clock)
    start = _start_position(plan, state)
    dynamo = RetryingDynamoDB(dynamodb_client, max_attempts, sleep)
    return _collect_page(dynamo, table_name, plan, limit, start, max(1, scan_budget))


def _day_plan(
    since: str | None, until: str | None, state: Mapping[str, Any] | None, clock: Callable[[], float]
) -> _QueryPlan:
    """The days to read; a default `since` (and last day) is taken from the token, so pages agree on them."""
    now = dt.datetime.fromtimestamp(clock(), tz=dt.UTC)
    if since is None:
        if state is not None and isinstance(state.get("s"), str):
            since = _token_timestamp(state["s"])
        else:
            end = dt.datetime.fromisoformat(until) if until else now
            since = format_timestamp(end - dt.timedelta(days=DEFAULT_QUERY_DAYS))
    if until is not None:
        last_day = dt.date.fromisoformat(until[:10])
    elif state is not None and isinstance(state.get("e"), str):
        last_day = _token_day(state["e"])
    else:
        last_day = max(now.date(), dt.date.fromisoformat(since[:10]))
    first_day = dt.date.fromisoformat(since[:10])
    span = (last_day - first_day).days + 1
    if span > MAX_QUERY_DAYS:
        raise InvalidRequestError(
            field="since", message=f"without event_type or entity, a query spans at most {MAX_QUERY_DAYS} days"
        )
    days = tuple(f"DAY#{first_day + dt.timedelta(days=offset)}" for offset in range(max(0, span)))
    return _QueryPlan(BY_DAY_INDEX, days, since, until, None)


def _collect_page(
    dynamo: RetryingDynamoDB,
    table_name: str,
    plan: _QueryPlan,
    limit: int,
    start: tuple[int, dict[str, Any] | None],
    budget: int,
) -> AuditPage:
    # DynamoDB applies Limit before the filter, so read until the page is full and, when stopping inside a
    # DynamoDB page, continue from the last record returned rather than from LastEvaluatedKey.
    partition, start_key = start
    records: list[AuditRecord] = []
    requests = 0
    while partition < len(plan.partitions):
        names = {"#h": plan.hash_attribute}
        values: dict[str, Any] = {":h": {"S": plan.partitions[partition]}}
        request: dict[str, Any] = {
            "TableName": table_name,
            "IndexName": plan.index,
            "KeyConditionExpression": "#h = :h" + _time_condition(names, values, plan.since, plan.until),
        }
        if plan.event_type is not None:
            names["#type"] = "event_type"
            values[":type"] = {"S": plan.event_type.value}
            request["FilterExpression"] = "#type = :type"
        wanted = limit - len(records)
        page_limit = min(budget, max(wanted, 100) if plan.event_type is not None else wanted)
        response = dynamo.call(
            "query",
            **request,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            Limit=max(1, page_limit),
            **exclusive_start(start_key),
        )
        requests += 1
        items = response.get("Items", [])
        budget -= response.get("ScannedCount", len(items))
        for index, item in enumerate(items):
            records.append(readable_record(item))
            if len(records) == limit:
                if index < len(items) - 1 or "LastEvaluatedKey" in response:
                    resume = (partition, {name: item[name] for name in _token_key_attributes(plan)})
                elif partition + 1 < len(plan.partitions):
                    resume = (partition + 1, None)
                else:
                    return AuditPage(records=records)
                return AuditPage(records=records, next_page_token=_encode_token(plan, *resume))
        start_key = response.get("LastEvaluatedKey")
        if start_key is None:
            partition, start_key = partition + 1, None
        if partition < len(plan.partitions) and (budget <= 0 or requests >= _MAX_REQUESTS_PER_PAGE):
            return AuditPage(records=records, next_page_token=_encode_token(plan, partition, start_key))
    return AuditPage(records=records)


def _token_key_attributes(plan: _QueryPlan) -> tuple[str, ...]:
    return ("pk", "sk", plan.hash_attribute, "occurred_at")


def _encode_token(plan: _QueryPlan, partition: int, key: Mapping[str, Any] | None) -> str:
    state: dict[str, Any] = {"q": plan.fingerprint, "p": plan.partitions[partition], "k": key}
    if plan.index == BY_DAY_INDEX:
        state |= {"s": plan.since, "e": plan.partitions[-1].removeprefix("DAY#")}
    return base64.urlsafe_b64encode(canonical_dumps(state).encode("utf-8")).decode("ascii")


def _decode_token(token: str | None) -> dict[str, Any] | None:
    if token is None:
        return None
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (UnicodeError, binascii.Error, ValueError, AttributeError):
        state = None
    if not isinstance(state, dict) or not isinstance(state.get("q"), str) or not isinstance(state.get("p"), str):
        raise _bad_token()
    return state


def _start_position(plan: _QueryPlan, state: Mapping[str, Any] | None) -> tuple[int, dict[str, Any] | None]:
    if state is None:
        return 0, None
    if state["q"] != plan.fingerprint or state["p"] not in plan.partitions:
        raise _bad_token()
    key = state.get("k")
    if key is not None:
        valid = (
            isinstance(key, dict)
            and set(key) == set(_token_key_attributes(plan))
            and all(isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in key.values())
            and key[plan.hash_attribute]["S"] == state["p"]
            and key["pk"]["S"].startswith("AUDIT#")
            and CHAIN_PATTERN.fullmatch(key["pk"]["S"].removeprefix("AUDIT#")) is not None
            and position(key) is not None
        )
        if not valid:
            raise _bad_token()
    return plan.partitions.index(state["p"]), key


def _token_timestamp(value: str) -> str:
    try:
        return normalize_timestamp(value)
    except ValueError:
        raise _bad_token() from None


def _token_day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _bad_token() from None


def _bad_token() -> InvalidRequestError:
    return InvalidRequestError(field="page_token", message="not a page token of this query")


def _time_condition(names: dict[str, str], values: dict[str, Any], since: str | None, until: str | None) -> str:
    if since is None and until is None:
        return ""
    names["#at"] = "occurred_at"
    if since is not None:
        values[":since"] = {"S": since}
    if until is not None:
        values[":until"] = {"S": until}
    if since is not None and until is not None:
        return " AND #at BETWEEN :since AND :until"
    return " AND #at >= :since" if since is not None else " AND #at <= :until"


def _checked_event_type(value: AuditEventType | str | None) -> AuditEventType | None:
    if value is None:
        return None
    try:
        return AuditEventType(value)
    except ValueError:
        raise InvalidRequestError(field="event_type", message=f"unknown audit event type {value!r}") from None


def _checked_timestamp(field: str, value: dt.datetime | str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalize_timestamp(value)
    except (TypeError, ValueError):
        raise InvalidRequestError(field=field, message="must be an ISO-8601 timestamp with a time zone") from None
