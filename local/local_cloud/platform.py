"""The whole local cloud in one context manager: moto, the deployed stack, the Lambda runtime and helpers."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws
from moto.core.responses import EmptyResult
from moto.stepfunctions.responses import StepFunctionResponse

from local_cloud.api_server import ApiGatewayApp
from local_cloud.event_sources import SqsEventSource, sqs_event_sources
from local_cloud.lambda_runtime import InProcessLambdaRuntime
from local_cloud.principals import LocalPrincipals, Principal
from local_cloud.stack import DEFAULT_REGION, DeployedStack, deploy_template

_FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": DEFAULT_REGION,
    "AWS_REGION": DEFAULT_REGION,
}
# Removed while the platform runs: a profile or endpoint from the host would send boto3 elsewhere.
_HOST_AWS_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE")

_POLL_INTERVAL_S = 0.05
_MOTO_SEND_TASK_FAILURE = StepFunctionResponse.send_task_failure


def _pass_the_cause_of_task_failures() -> None:
    """moto 5.2.5's SendTaskFailure drops `cause` (AWS keeps it): pass it on, so a Catch sees `$.error.Cause`
    as on AWS (the pilot's RecordFailure stores it). Undone when the platform stops."""

    def send_task_failure(self: StepFunctionResponse) -> EmptyResult:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
        )
        return EmptyResult()

    StepFunctionResponse.send_task_failure = send_task_failure  # type: ignore[method-assign]


@dataclass(frozen=True)
class StateEvent:
    """One state of an execution, once it has finished."""

    name: str
    type: str  # Task, Pass, Choice, Wait, Succeed, Fail, Map, Parallel
    status: str  # SUCCEEDED | CAUGHT (failed, and a Catch moved on) | FAILED (the execution failed here)
    started_at: datetime
    finished_at: datetime
    duration_s: float
    error: str | None = None
    cause: str | None = None
    retries: int = 0  # failed attempts that a Retry repeated


@dataclass(frozen=True)
class ExecutionResult:
    execution_arn: str
    status: str  # SUCCEEDED | FAILED | TIMED_OUT | ABORTED
    output: Any
    error: str | None
    cause: str | None
    states: list[StateEvent]
    # The raw history events (get_execution_history): a failed execution has no output, only its states' data.
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _OpenState:
    name: str
    type: str
    started_at: datetime
    failures: int = 0
    last_failed: bool = False
    error: str | None = None
    cause: str | None = None

    def close(self, finished_at: datetime, status: str) -> StateEvent:
        failed = status != "SUCCEEDED"
        return StateEvent(
            name=self.name,
            type=self.type,
            status=status,
            started_at=self.started_at,
            finished_at=finished_at,
            duration_s=(finished_at - self.started_at).total_seconds(),
            error=self.error if failed else None,
            cause=self.cause if failed else None,
            retries=self.failures - 1 if failed and self.failures else self.failures,
        )


@dataclass
class _HistoryReader:
    """Turns Step Functions history events into StateEvents, one per state as it finishes.

    moto's history: `<Type>StateEntered` / `<Type>StateExited` carry the state name; in between a Task has
    LambdaFunctionScheduled/Started/Succeeded|Failed (plain function ARN) or TaskScheduled/Started/
    Succeeded|Failed (integrations), repeated per Retry attempt. A caught failure is a failure event followed
    by the state's Exited event; an uncaught one by ExecutionFailed. A Fail state has no Exited event.
    """

    open_states: dict[str, _OpenState] = field(default_factory=dict)
    seen: int = 0

    def feed(self, event: dict[str, Any]) -> StateEvent | None:
        kind: str = event["type"]
        details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
        if kind.endswith("StateEntered"):
            name = details["name"]
            self.open_states[name] = _OpenState(name, kind.removesuffix("StateEntered"), event["timestamp"])
        elif kind.endswith("StateExited"):
            state = self.open_states.pop(details["name"], None)
            if state is not None:
                return state.close(event["timestamp"], "CAUGHT" if state.last_failed else "SUCCEEDED")
        elif kind.startswith("Execution"):
            return None
        elif self.open_states and (kind.endswith(("Failed", "TimedOut"))):
            state = list(self.open_states.values())[-1]  # failures carry no state name: the latest entered
            state.failures += 1
            state.last_failed = True
            state.error, state.cause = details.get("error"), details.get("cause")
        elif self.open_states and kind.endswith("Succeeded"):
            list(self.open_states.values())[-1].last_failed = False
        return None

    def finish(self, finished_at: datetime, error: str | None, cause: str | None) -> list[StateEvent]:
        """The execution ended: states still open failed it (e.g. a Fail state, an uncaught error)."""
        finished = []
        for state in self.open_states.values():
            if not state.last_failed:
                state.error, state.cause = error, cause
            finished.append(state.close(finished_at, "FAILED"))
        self.open_states.clear()
        return finished


class LocalPlatform:
    """`with LocalPlatform(project_root) as platform:` runs the SAM application in-process on moto."""

    def __init__(
        self,
        project_root: Path,
        parameter_overrides: dict[str, str] | None = None,
        *,
        template_path: Path | None = None,
        stack_name: str = "mlops-local",
        extra_environment: dict[str, str] | None = None,
    ) -> None:
        self.project_root = Path(project_root).resolve()
        self.template_path = Path(template_path) if template_path else self.project_root / "template.yaml"
        self.parameter_overrides = dict(parameter_overrides or {})
        self.stack_name = stack_name
        self.extra_environment = extra_environment
        self._saved_env: dict[str, str | None] = {}
        self._mock: Any = None
        self._clients: dict[str, Any] = {}
        self._api_app: ApiGatewayApp | None = None
        self.stack: DeployedStack
        self.runtime: InProcessLambdaRuntime
        self.principals: LocalPrincipals  # the IAM identities that may sign requests to the AWS_IAM routes
        self.event_sources: list[SqsEventSource] = []

    def __enter__(self) -> LocalPlatform:
        for name in (*_FAKE_AWS_ENV, *_HOST_AWS_ENV):
            self._saved_env[name] = os.environ.pop(name, None)
        os.environ.update(_FAKE_AWS_ENV)
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        _pass_the_cause_of_task_failures()
        try:
            self.stack = deploy_template(self.template_path, self.parameter_overrides, self.stack_name)
            self.runtime = InProcessLambdaRuntime(self.stack, self.project_root, self.extra_environment)
            self.runtime.install()
            self.principals = LocalPrincipals.create(self.stack)
            self.event_sources = [
                SqsEventSource(self.runtime, self.stack, spec, self.client("sqs"))
                for spec in sqs_event_sources(self.stack.template)
            ]
            for source in self.event_sources:
                self.runtime.before_invoke.append(source.before_invoke)
                self.runtime.after_invoke.append(source.after_invoke)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        StepFunctionResponse.send_task_failure = _MOTO_SEND_TASK_FAILURE  # type: ignore[method-assign]
        if getattr(self, "runtime", None) is not None:
            self.runtime.uninstall()
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}
        self._clients.clear()

    @contextmanager
    def event_sources_paused(self) -> Iterator[None]:
        """No queue is drained inside the block (a benchmark times the handler alone); all are drained after it."""
        hooks = list(self.runtime.before_invoke), list(self.runtime.after_invoke)
        self.runtime.before_invoke.clear()
        self.runtime.after_invoke.clear()
        try:
            yield
        finally:
            self.runtime.before_invoke[:], self.runtime.after_invoke[:] = hooks
            for source in self.event_sources:
                source.drain()

    def client(self, service_name: str) -> Any:
        """A boto3 client bound to the in-process AWS."""
        if service_name not in self._clients:
            self._clients[service_name] = boto3.client(service_name, region_name=self.stack.region)
        return self._clients[service_name]

    @property
    def operator(self) -> Principal:
        """The local stack's operator (IAM user local-operator): its credentials sign the operator routes."""
        return self.principals.operator

    def api_app(self) -> ApiGatewayApp:
        if self._api_app is None:
            self._api_app = ApiGatewayApp(self.stack, self.runtime, principals=self.principals)
        return self._api_app

    # ------------------------------------------------------------------ Step Functions
    def start_execution(self, state_machine_logical_id: str, input: dict[str, Any], name: str | None = None) -> str:
        response = self.client("stepfunctions").start_execution(
            stateMachineArn=self.stack.state_machine_arn(state_machine_logical_id),
            name=name or f"local-{uuid.uuid4().hex[:12]}",
            input=json.dumps(input),
        )
        return response["executionArn"]

    def wait_for_execution(
        self,
        execution_arn: str,
        timeout_s: float,
        on_state: Callable[[StateEvent], None] | None = None,
    ) -> ExecutionResult:
        """Poll until the execution ends; `on_state` is called once per state as it finishes."""
        sfn = self.client("stepfunctions")
        reader = _HistoryReader()
        states: list[StateEvent] = []

        def emit(finished: list[StateEvent]) -> None:
            for state in finished:
                states.append(state)
                if on_state is not None:
                    on_state(state)

        deadline = time.monotonic() + timeout_s
        while True:
            # describe first: once it reports an end, the history read after it is complete.
            execution = sfn.describe_execution(executionArn=execution_arn)
            events = _history(sfn, execution_arn)
            for event in events[reader.seen :]:
                state = reader.feed(event)
                if state is not None:
                    emit([state])
            reader.seen = len(events)
            if execution["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_arn} still running after {timeout_s} s")
            time.sleep(_POLL_INTERVAL_S)

        error, cause = execution.get("error"), execution.get("cause")
        emit(reader.finish(execution.get("stopDate") or events[-1]["timestamp"], error, cause))
        output = execution.get("output")
        return ExecutionResult(
            execution_arn=execution_arn,
            status=execution["status"],
            output=json.loads(output) if output is not None else None,
            error=error,
            cause=cause,
            states=states,
            history=events,
        )


def _history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    paginator = sfn.get_paginator("get_execution_history")
    return [e for page in paginator.paginate(executionArn=execution_arn) for e in page["events"]]
