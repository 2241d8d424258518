"""Run the stack's Lambda handlers in this process, like Lambda execution environments would.

`InProcessLambdaRuntime.invoke` calls a handler directly; `install()` patches moto's Lambda so that boto3
`lambda.invoke` and Step Functions Tasks reach the same handlers (moto would otherwise need Docker).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from moto.awslambda.models import LambdaFunction

from local_cloud.stack import DeployedStack, FunctionSpec

logger = logging.getLogger(__name__)

_runtime_ids = itertools.count(1)
_patch_lock = threading.Lock()
_installed: InProcessLambdaRuntime | None = None
_original_invoke = LambdaFunction.invoke


class RuntimeMarshalError(Exception):
    """The handler returned something that is not JSON (Lambda's Runtime.MarshalError)."""

    error_type = "Runtime.MarshalError"


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of the Python runtime's context object that handlers and Powertools use."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline_monotonic: float
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline_monotonic - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Invocation:
    """Stats of one invocation."""

    function: str  # logical id
    request_id: str
    duration_ms: float
    cold_start: bool
    error_type: str | None


def error_payload(exc: BaseException) -> dict[str, Any]:
    """The payload Lambda returns for an unhandled exception; Step Functions matches `errorType`."""
    return {
        "errorType": getattr(exc, "error_type", type(exc).__name__),
        "errorMessage": str(exc),
        # Only the handler's frames, as in Lambda: this module's own frames are not the function's.
        "stackTrace": traceback.format_list(
            [frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename != __file__]
        ),
    }


class InProcessLambdaRuntime:
    """One execution environment per function of the stack, all in this process, one invocation at a time."""

    def __init__(
        self,
        stack: DeployedStack,
        project_root: Path,
        extra_environment: dict[str, str] | None = None,
    ) -> None:
        self.stack = stack
        self.project_root = Path(project_root).resolve()
        self.extra_environment = dict(extra_environment or {})
        self.invocations: deque[Invocation] = deque(maxlen=10_000)
        # Local devices around invocations (event sources): called with the function's logical id and the nesting
        # depth (0: an invocation from outside any handler), before each invocation and after each, failed or not.
        self.before_invoke: list[Callable[[str, int], None]] = []
        self.after_invoke: list[Callable[[str, int], None]] = []
        self._depth = 0
        self._id = next(_runtime_ids)
        self._modules: dict[str, ModuleType] = {}
        # Reentrant: a handler may synchronously invoke another function (e.g. a smoke test calling scoring).
        self._lock = threading.RLock()
        self._add_layers_to_path()

    # ------------------------------------------------------------------ invoking
    def invoke(self, function: str, event: Any) -> dict[str, Any] | list[Any] | str | None:
        """Invoke by logical id, name or ARN; returns the JSON result or raises the handler's exception."""
        spec = self.stack.function(function)
        event = json.loads(json.dumps(event))  # the handler gets its own copy, as JSON would give it
        with self._lock:
            self._run_hooks(self.before_invoke, spec.logical_id)
            self._depth += 1
            try:
                return self._invoke(spec, event)
            finally:
                self._depth -= 1
                self._run_hooks(self.after_invoke, spec.logical_id)

    def _invoke(self, spec: FunctionSpec, event: Any) -> dict[str, Any] | list[Any] | str | None:
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        cold_start = spec.logical_id not in self._modules
        error_type = None
        try:
            with self._environment(spec):
                handler = getattr(self._module(spec), spec.handler_name)
                result = handler(event, self._context(spec, request_id, started))
            try:
                return json.loads(json.dumps(result))
            except (TypeError, ValueError) as exc:
                raise RuntimeMarshalError(f"Unable to marshal response: {exc}") from exc
        except Exception as exc:
            error_type = getattr(exc, "error_type", type(exc).__name__)
            raise
        finally:
            duration_ms = (time.monotonic() - started) * 1000
            self.invocations.append(Invocation(spec.logical_id, request_id, duration_ms, cold_start, error_type))
            if duration_ms > spec.timeout_s * 1000:
                logger.warning("%s ran %.0f ms, over its %d s timeout", spec.logical_id, duration_ms, spec.timeout_s)

    def _run_hooks(self, hooks: list[Callable[[str, int], None]], function: str) -> None:
        for hook in hooks:
            try:
                hook(function, self._depth)
            except Exception:  # a local device's failure is not the invoked function's
                logger.exception("a hook around the invocation of %s failed", function)

    def recycle(self, function: str) -> None:
        """Drop the function's execution environment: its next invoke is a cold start (fresh module state, every
        cached client and model gone), as when Lambda starts a new environment."""
        spec = self.stack.function(function)
        with self._lock:
            module = self._modules.pop(spec.logical_id, None)
            if module is not None:
                sys.modules.pop(module.__name__, None)

    def _module(self, spec: FunctionSpec) -> ModuleType:
        """Import the handler module on the first invoke (cold start) and keep it (warm)."""
        module = self._modules.get(spec.logical_id)
        if module is None:
            # A unique name per runtime: two runtimes never share module state, like two environments.
            module = load_module(f"_local_lambda_{self._id}_{spec.logical_id}", spec.module_file)
            self._modules[spec.logical_id] = module
        return module

    @contextmanager
    def _environment(self, spec: FunctionSpec) -> Iterator[None]:
        """os.environ is exactly the function's environment during the call, and is restored after it."""
        saved = dict(os.environ)
        region = self.stack.region
        env = {
            # Kept from the host: the executable path, and moto's own settings (e.g. MOTO_ACCOUNT_ID).
            **{k: v for k, v in saved.items() if k == "PATH" or k.startswith("MOTO_")},
            "LANG": "en_US.UTF-8",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "_HANDLER": f"{spec.module_file.stem}.{spec.handler_name}",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
            **spec.environment,
            **self.extra_environment,
        }
        os.environ.clear()
        os.environ.update(env)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def _context(self, spec: FunctionSpec, request_id: str, started: float) -> LambdaContext:
        return LambdaContext(
            function_name=spec.function_name,
            function_version="$LATEST",
            invoked_function_arn=spec.function_arn,
            memory_limit_in_mb=spec.memory_size,
            aws_request_id=request_id,
            log_group_name=f"/aws/lambda/{spec.function_name}",
            log_stream_name=f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}",
            deadline_monotonic=started + spec.timeout_s,
        )

    def _add_layers_to_path(self) -> None:
        """Layers are on sys.path in Lambda; here once, for the whole process."""
        template_dir = self.stack.template_path.parent
        layer_dirs = [self.project_root / "layers" / "platform"]
        for resource in self.stack.template["Resources"].values():
            content_uri = resource.get("Properties", {}).get("ContentUri")
            if resource["Type"] == "AWS::Serverless::LayerVersion" and isinstance(content_uri, str):
                layer_dirs.append(template_dir / content_uri)
        for layer_dir in layer_dirs:
            if layer_dir.is_dir() and str(layer_dir.resolve()) not in sys.path:
                sys.path.append(str(layer_dir.resolve()))

    # ------------------------------------------------------------------ moto patch
    def install(self) -> None:
        """Route moto's Lambda invoke (boto3 `lambda.invoke`, Step Functions Tasks) to this runtime."""
        global _installed
        with _patch_lock:
            if _installed is not None and _installed is not self:
                raise RuntimeError("another InProcessLambdaRuntime is installed; uninstall it first")
            _installed = self
            LambdaFunction.invoke = _patched_invoke  # type: ignore[method-assign]

    def uninstall(self) -> None:
        global _installed
        with _patch_lock:
            if _installed is self:
                _installed = None
                LambdaFunction.invoke = _original_invoke  # type: ignore[method-assign]

    def __enter__(self) -> InProcessLambdaRuntime:
        self.install()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.uninstall()

    def _handle_moto_invoke(self, function_arn: str, body: Any, request_headers: Any, response_headers: Any) -> bytes:
        spec = self.stack.function(function_arn)
        event = json.loads(body) if body else {}
        if _header(request_headers, "x-amz-invocation-type") == "Event":
            # Asynchronous invocation runs synchronously; its errors never reach the caller.
            try:
                self.invoke(spec.logical_id, event)
            except Exception:
                logger.exception("asynchronous invocation of %s failed", spec.logical_id)
            return b""
        try:
            result = self.invoke(spec.logical_id, event)
        except Exception as exc:
            logger.info("%s raised %s: %s", spec.logical_id, type(exc).__name__, exc)
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(error_payload(exc)).encode()
        return json.dumps(result).encode()


def _patched_invoke(self: LambdaFunction, body: Any, request_headers: Any, response_headers: Any) -> Any:
    runtime = _installed
    if runtime is not None:
        try:
            runtime.stack.function(self.function_arn)
        except KeyError:
            pass  # a function created outside the stack keeps moto's behaviour
        else:
            return runtime._handle_moto_invoke(self.function_arn, body, request_headers, response_headers)
    return _original_invoke(self, body, request_headers, response_headers)


def _header(headers: Any, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


def load_module(name: str, module_file: Path) -> ModuleType:
    """Import a handler module by path under a name of its own (every handler module is called app.py). A module
    whose import fails is forgotten, so the next load runs its init again, as Lambda does after a failed init."""
    module_spec = importlib.util.spec_from_file_location(name, module_file)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot load {module_file}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses, pydantic and pickling look modules up by name
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
