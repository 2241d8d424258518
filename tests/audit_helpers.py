"""What the audit tests share: a mocked audit table and bucket, events, raw item access, and failing clients."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.exceptions import ClientError, ReadTimeoutError
from moto import mock_aws

from mlops.audit.records import AuditEvent, AuditEventType

TABLE = "audit"
BUCKET = "audit-digests-bucket"
T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)

# What a template declares for the audit table (AUDIT_TABLE_INDEXES names the same indexes and keys).
ATTRIBUTE_DEFINITIONS = [
    {"AttributeName": name, "AttributeType": "S"}
    for name in ("pk", "sk", "type_pk", "entity_pk", "day_pk", "occurred_at")
]
GLOBAL_SECONDARY_INDEXES = [
    {
        "IndexName": name,
        "KeySchema": [
            {"AttributeName": partition, "KeyType": "HASH"},
            {"AttributeName": "occurred_at", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }
    for name, partition in (("by_type", "type_pk"), ("by_entity", "entity_pk"), ("by_day", "day_pk"))
]


def no_sleep(_: float) -> None:
    """Backoff without waiting, to keep retry tests fast."""


class TickingClock:
    """A clock that moves one second per reading, so records get distinct, predictable recorded_at values."""

    def __init__(self, start: dt.datetime = T0) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        self.now += 1
        return self.now


@contextmanager
def mocked_audit_aws() -> Iterator[dict[str, Any]]:
    """The audit table (as a template declares it), the digest bucket and the audit queue, on moto."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName=TABLE,
            AttributeDefinitions=ATTRIBUTE_DEFINITIONS,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=GLOBAL_SECONDARY_INDEXES,
            BillingMode="PAY_PER_REQUEST",
        )
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="audit-queue")["QueueUrl"]
        yield {"dynamodb": dynamodb, "s3": s3, "sqs": sqs, "queue_url": queue_url}


def event(
    i: int,
    event_type: AuditEventType = AuditEventType.PREDICTION,
    entity: str = "customer:C00011",
    actor: str = "function:score",
    minutes: int = 1,
) -> AuditEvent:
    """Event `i`, occurring `i * minutes` minutes after T0."""
    return AuditEvent(
        event_type=event_type,
        entity=entity,
        actor=actor,
        details={"features_sha256": hashlib.sha256(str(i).encode()).hexdigest(), "i": i},
        occurred_at=T0 + dt.timedelta(minutes=i * minutes),
    )


def key(sequence: int, chain: str = "main") -> dict[str, Any]:
    return {"pk": {"S": f"AUDIT#{chain}"}, "sk": {"S": f"SEQ#{sequence:012d}"}}


def head_key(chain: str = "main") -> dict[str, Any]:
    return {"pk": {"S": f"AUDIT#{chain}"}, "sk": {"S": "HEAD"}}


def stored_item(dynamodb: Any, sequence: int, chain: str = "main") -> dict[str, Any]:
    return dynamodb.get_item(TableName=TABLE, Key=key(sequence, chain))["Item"]


def stored_document(dynamodb: Any, sequence: int, chain: str = "main") -> dict[str, Any]:
    return json.loads(stored_item(dynamodb, sequence, chain)["document"]["S"])


def record_count(dynamodb: Any, chain: str = "main") -> int:
    return dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :seq)",
        ExpressionAttributeValues={":pk": {"S": f"AUDIT#{chain}"}, ":seq": {"S": "SEQ#"}},
    )["Count"]


def attacker_hash(document: dict[str, Any]) -> str:
    """The hash as anyone who read the module docs could recompute it (independent of mlops.audit)."""
    payload = {name: value for name, value in document.items() if name != "record_hash"}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_document(dynamodb: Any, sequence: int, document: dict[str, Any], chain: str = "main") -> None:
    dynamodb.update_item(
        TableName=TABLE,
        Key=key(sequence, chain),
        UpdateExpression="SET document = :d",
        ExpressionAttributeValues={":d": {"S": json.dumps(document)}},
    )


def set_head(dynamodb: Any, sequence: int, record_hash: str, chain: str = "main") -> None:
    dynamodb.update_item(
        TableName=TABLE,
        Key=head_key(chain),
        UpdateExpression="SET #s = :s, record_hash = :h",
        ExpressionAttributeNames={"#s": "sequence"},
        ExpressionAttributeValues={":s": {"N": str(sequence)}, ":h": {"S": record_hash}},
    )


def throttled(operation: str = "PutItem") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        operation,
    )


class FailingPuts:
    """The real client, except that appends of records (transactions) fail according to `plan` (one entry per call):
    `throttle` (rejected), `timeout` (not applied, response lost), `lose-response` (applied, response lost)."""

    def __init__(self, client: Any, plan: Callable[[int], str]) -> None:
        self._client = client
        self._plan = plan
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.calls += 1
        action = self._plan(self.calls)
        if action == "throttle":
            raise throttled("TransactWriteItems")
        if action == "timeout":
            raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
        response = self._client.transact_write_items(**kwargs)
        if action == "lose-response":
            raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
        return response


class FailingHeadUpdates:
    """The real client, except that every update of a head item is throttled."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_item(self, **kwargs: Any) -> Any:
        raise throttled("UpdateItem")
