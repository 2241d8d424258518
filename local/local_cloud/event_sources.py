"""Lambda's SQS event source mapping, locally: a queue's messages delivered in batches to its function.

On AWS, Lambda polls the queue, invokes the function with a batch and deletes the messages the function did not
report failed (`ReportBatchItemFailures`); the others come back after the visibility timeout, and after the
queue's `maxReceiveCount` deliveries go to its dead-letter queue; delivery takes about a second. Here the queue is
drained, in the invoking thread, at two moments (`InProcessLambdaRuntime.before_invoke`/`after_invoke`):
- after every outermost invocation (an API request, a state machine's Task, a test's invoke), so what it queued
  is in the table when its caller reads on;
- before the invocation of any function that does not send to the queue (a reader of what was queued, such as
  the model monitor or the audit API), so a step that scores and then monitors sees its own predictions.
Never between two invocations of senders: a step timing its calls to the scoring function (the smoke test)
measures the function, not this device, as on AWS where the writer runs elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from local_cloud.lambda_runtime import InProcessLambdaRuntime
from local_cloud.stack import DeployedStack

logger = logging.getLogger(__name__)

_MAX_RECEIVE = 10  # SQS ReceiveMessage returns at most 10 messages a call


@dataclass(frozen=True)
class SqsEventSourceSpec:
    """An `AWS::Lambda::EventSourceMapping` of the template from one of its queues to one of its functions."""

    function: str  # logical id
    queue: str  # logical id
    batch_size: int
    senders: frozenset[str] = frozenset()  # the functions allowed to send to the queue (logical ids)


def sqs_event_sources(template: dict[str, Any]) -> list[SqsEventSourceSpec]:
    """Every event source mapping of the template from a queue of the template (`!GetAtt <queue>.Arn`) to a
    function of the template (`!Ref <function>`)."""
    specs = []
    resources = template["Resources"]
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::EventSourceMapping":
            continue
        props = resource["Properties"]
        function, source = props.get("FunctionName"), props.get("EventSourceArn")
        get_att = source.get("Fn::GetAtt") if isinstance(source, dict) else None
        queue = (get_att[0] if isinstance(get_att, list) else str(get_att).split(".")[0]) if get_att else None
        if (
            not isinstance(function, dict)
            or "Ref" not in function
            or resources.get(queue, {}).get("Type") != ("AWS::SQS::Queue")
        ):
            raise ValueError(f"{logical_id}: expected FunctionName !Ref <function>, EventSourceArn !GetAtt <queue>.Arn")
        batch_size = int(props.get("BatchSize", 10))
        specs.append(SqsEventSourceSpec(function["Ref"], str(queue), batch_size, _senders(template, str(queue))))
    return specs


def _senders(template: dict[str, Any], queue: str) -> frozenset[str]:
    """The functions whose policies let them send to `queue` (SAM's SQSSendMessagePolicy on it)."""
    senders = set()
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for policy in resource.get("Properties", {}).get("Policies") or []:
            queue_name = policy.get("SQSSendMessagePolicy", {}).get("QueueName") if isinstance(policy, dict) else None
            if isinstance(queue_name, dict) and queue_name.get("Fn::GetAtt") in (
                [queue, "QueueName"],
                f"{queue}.QueueName",
            ):
                senders.add(logical_id)
    return frozenset(senders)


class SqsEventSource:
    """Delivers one queue's messages to one function in batches, as the event source mapping would."""

    def __init__(self, runtime: InProcessLambdaRuntime, stack: DeployedStack, spec: SqsEventSourceSpec, sqs: Any):
        self.runtime = runtime
        self.function = spec.function
        self.batch_size = spec.batch_size
        self.senders = spec.senders
        self.queue_url = stack.physical_id(spec.queue)
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self._sqs = sqs
        self._region = stack.region
        self._draining = False
        self.batches = 0  # delivered, for tests

    def before_invoke(self, function: str, depth: int) -> None:
        """The runtime's hook: drain before a function that does not send to the queue runs."""
        if function != self.function and function not in self.senders and not self._draining:
            self.drain()

    def after_invoke(self, function: str, depth: int) -> None:
        """The runtime's hook: drain after an outermost invocation."""
        if depth == 0 and function != self.function and not self._draining:
            self.drain()

    def drain(self) -> int:
        """Deliver every visible message, in batches; returns how many messages the function was given."""
        self._draining = True
        delivered = 0
        try:
            for batch in self._batches():
                delivered += len(batch)
                self._deliver(batch)
        finally:
            self._draining = False
        return delivered

    def end_visibility_timeouts(self) -> None:
        """Make the messages in flight (delivered, neither deleted nor failed back yet) visible again, as when
        their visibility timeout ends; the next drain delivers them again (moto keeps no clock to wait on)."""
        from moto.sqs.models import sqs_backends  # moto's own state: SQS has no API for "time passes"

        account, name = self.queue_arn.split(":")[4], self.queue_arn.split(":")[5]
        for message in sqs_backends[account][self._region].queues[name]._messages:
            message.change_visibility(0)

    def _batches(self) -> Iterator[list[dict[str, Any]]]:
        while True:
            batch: list[dict[str, Any]] = []
            while len(batch) < self.batch_size:
                response = self._sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=min(_MAX_RECEIVE, self.batch_size - len(batch)),
                    AttributeNames=["All"],
                    WaitTimeSeconds=0,
                )
                messages = response.get("Messages", [])
                batch.extend(messages)
                if len(messages) < _MAX_RECEIVE:
                    break
            if not batch:
                return
            yield batch

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [self._record(message) for message in messages]}
        self.batches += 1
        try:
            result = self.runtime.invoke(self.function, event)
        except Exception:  # the whole batch comes back after the visibility timeout, as on AWS
            logger.exception("%s failed on a batch of %d messages", self.function, len(messages))
            return
        failures = {item["itemIdentifier"] for item in (result or {}).get("batchItemFailures", [])}  # type: ignore[union-attr]
        done = [m for m in messages if m["MessageId"] not in failures]
        for start in range(0, len(done), _MAX_RECEIVE):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
            ]
            self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": message.get("MD5OfBody"),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self._region,
        }
