"""`make sam-local-check`: the scoring function in its Lambda container (`sam local invoke`) answering events/ files,
each answer checked against what the in-process tests expect, against a moto server holding a real pilot's model.

Steps: `sam build ScoringFunction`; a pilot on the embedded AWS (the same LocalPlatform `make pilot` uses) trains,
registers and deploys a model; a moto server in this process serves that same in-memory AWS to the containers
on the Docker bridge; then one `sam local invoke --skip-pull-image` per event. run.sh provides Docker and the
base image. Exits 1 on any mismatch.

How the container reaches moto without touching the template or the handlers:
- resource names: `--env-vars` overrides the function's template variables (SAM CLI resolves `!Ref Table` to the
  logical id) with the deployed stack's physical names;
- endpoint: SAM CLI 1.170 passes a container only the template's variables (`--env-vars` cannot add one, and
  `--container-env-vars` applies only with `--debug-port`), so AWS_ENDPOINT_URL comes from an invoke image
  (`--invoke-image`): the Lambda base image plus that one ENV line naming the moto server, built here;
- credentials and region: SAM CLI passes the host's (LocalPlatform's fake ones) into the container.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess  # runs the SAM CLI and the docker CLI with fixed argv
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moto.server import ThreadedMotoServer
from pydantic import BaseModel, ValidationError

from local_cloud.cli import functions_log, pilot_arguments, run_pilot
from local_cloud.platform import LocalPlatform
from mlops.api.contracts import BatchPredictionResponse, ErrorResponse, HealthResponse, ModelListResponse, Prediction

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FUNCTION = "ScoringFunction"
BASE_IMAGE = "public.ecr.aws/lambda/python:3.13-x86_64"
INVOKE_IMAGE = "sam-local-check/python:3.13-moto"
# A fixed port keeps the invoke image (and the image sam local builds on it) identical from run to run, so
# Docker's cache reuses them instead of leaving a new pair of images behind each time; any free port if taken.
MOTO_PORT = 5310
# As `make pilot` runs it: local retries after 1 s, warm containers re-read the production pointer every second.
LOCAL_PARAMETERS = {"RetryIntervalSeconds": "1", "ModelRefreshSeconds": "1", "BatchConcurrency": "4"}

Check = Callable[[dict[str, Any], dict[str, Any]], list[str]]  # (response, pilot results) -> problems


@dataclass(frozen=True)
class Case:
    event: str
    status: int
    check: Check


def _parsed[M: BaseModel](model: type[M], body: str, problems: list[str]) -> M | None:
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        wrong = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors()[:3]]
        problems.append(f"body is not a {model.__name__} ({'; '.join(wrong)})")
        return None


def error_naming(field: str) -> Check:
    """The API's one error shape, naming the offending field, and no stack trace."""

    def check(response: dict[str, Any], _: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        error = _parsed(ErrorResponse, response["body"], problems)
        if error is not None and field not in [f.field for f in error.error.fields]:
            problems.append(f"error fields {[f.field for f in error.error.fields]} do not name {field!r}")
        if "Traceback" in response["body"]:
            problems.append("the body carries a stack trace")
        return problems

    return check


def _prediction_problems(prediction: Prediction, pilot: dict[str, Any]) -> list[str]:
    problems = []
    if prediction.model_version != pilot["model_version"]:
        problems.append(f"model_version {prediction.model_version} is not the pilot's {pilot['model_version']}")
    if not 0.0 <= prediction.churn_probability <= 1.0:
        problems.append(f"churn_probability {prediction.churn_probability} outside [0, 1]")
    if not prediction.prediction_id:
        problems.append("no prediction_id")
    return problems


def prediction(expect: Callable[[Prediction], list[str]]) -> Check:
    def check(response: dict[str, Any], pilot: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        parsed = _parsed(Prediction, response["body"], problems)
        if parsed is not None:
            problems += _prediction_problems(parsed, pilot) + expect(parsed)
        return problems

    return check


def _all_given(p: Prediction) -> list[str]:
    return [] if p.imputed_features == [] else [f"imputed {p.imputed_features}, expected none"]


def _some_imputed(p: Prediction) -> list[str]:
    sources = p.feature_sources
    given, filled = sources.get("total_day_minutes"), sources.get("total_eve_minutes")
    if (given, filled) == ("request", "imputed") and "total_eve_minutes" in p.imputed_features:
        return [] if "state" not in p.imputed_features else [f"state imputed although given: {p.imputed_features}"]
    return [f"imputed {p.imputed_features}, sources {sources}: expected total_eve_minutes imputed, state given"]


def _from_the_store(p: Prediction) -> list[str]:
    sources = set(p.feature_sources.values())
    return [] if sources == {"store"} else [f"feature sources {sources}, expected only the feature store"]


def batch_of(records: int) -> Check:
    def check(response: dict[str, Any], pilot: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        batch = _parsed(BatchPredictionResponse, response["body"], problems)
        if batch is not None:
            if len(batch.predictions) != records:
                problems.append(f"{len(batch.predictions)} predictions for {records} records")
            for p in batch.predictions:
                problems += _prediction_problems(p, pilot)
        return problems

    return check


def healthy(response: dict[str, Any], pilot: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    health = _parsed(HealthResponse, response["body"], problems)
    expected = HealthResponse(status="ok", model_name="churn", model_version=pilot["model_version"])
    if health is not None and health != expected:
        problems.append(f"{health} is not {expected}")
    return problems


def serving_the_pilot_model(response: dict[str, Any], pilot: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    models = _parsed(ModelListResponse, response["body"], problems)
    if models is not None and models.production_version != pilot["model_version"]:
        problems.append(f"production_version {models.production_version} is not {pilot['model_version']}")
    return problems


# The answers tests/e2e/test_pilot.py and tests/integration/test_features_api.py expect in-process.
CASES = [
    Case("health", 200, healthy),
    Case("list_models", 200, serving_the_pilot_model),
    Case("predict_valid", 200, prediction(_all_given)),
    Case("predict_customer_id_only", 200, prediction(_from_the_store)),
    Case("predict_missing_features", 200, prediction(_some_imputed)),
    Case("predict_batch_valid", 200, batch_of(5)),
    Case("predict_invalid_type", 422, error_naming("features.total_day_minutes")),
    Case("predict_unknown_feature", 422, error_naming("features.total_day_minute")),
    Case("predict_missing_customer_id", 422, error_naming("customer_id")),
    Case("predict_malformed_json", 400, error_naming("body")),
    Case("predict_batch_too_large", 422, error_naming("records")),
]


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, text=True, capture_output=True, check=False, **kwargs)  # noqa: S603


def sam_build(sam: str, build_dir: Path) -> Path:
    result = run([sam, "build", FUNCTION, "--build-dir", str(build_dir)], cwd=PROJECT_ROOT)
    if result.returncode != 0:
        raise SystemExit(f"sam build failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return build_dir / "template.yaml"


def bridge_gateway() -> str:
    """The host's address on Docker's default bridge, where sam local's containers run (SAM CLI 1.170 ignores
    `--docker-network host`: it attaches a container to a named network only, and maps the emulator's port)."""
    result = run(["docker", "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}"])
    if result.returncode != 0 or not result.stdout.strip():
        raise SystemExit(f"no Docker bridge gateway: {result.stderr}")
    return result.stdout.strip()


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def build_invoke_image(endpoint: str) -> None:
    dockerfile = f"FROM {BASE_IMAGE}\nENV AWS_ENDPOINT_URL={endpoint}\n"
    result = run(
        ["docker", "build", "--quiet", "-t", INVOKE_IMAGE, "-"],
        input=dockerfile,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    if result.returncode != 0:
        raise SystemExit(f"docker build of {INVOKE_IMAGE} failed: {result.stderr}")


def invoke(sam: str, template: Path, env_file: Path, endpoint: str, event: str) -> tuple[dict[str, Any] | None, str]:
    """The function's response to events/EVENT.json (None if sam printed none), and sam's log.

    sam itself gets the endpoint too: with credentials set it asks STS for the account id, which offline costs
    about 8 s of retries per invoke; moto answers at once (and sam passes no host variable into the container).
    """
    options = {
        "--template-file": template,
        "--event": PROJECT_ROOT / "events" / f"{event}.json",
        "--env-vars": env_file,
        "--invoke-image": f"{FUNCTION}={INVOKE_IMAGE}",
        "--region": os.environ["AWS_DEFAULT_REGION"],
    }
    result = run(
        [sam, "local", "invoke", FUNCTION, "--skip-pull-image", *(str(x) for pair in options.items() for x in pair)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "AWS_ENDPOINT_URL": endpoint, "SAM_CLI_TELEMETRY": "0"},
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    try:
        response = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        response = None
    return (response if isinstance(response, dict) else None), result.stderr


def check_case(case: Case, response: dict[str, Any] | None, pilot: dict[str, Any]) -> list[str]:
    if response is None:
        return ["no response on stdout"]
    problems = []
    if response.get("statusCode") != case.status:
        problems.append(f"status {response.get('statusCode')}, expected {case.status}")
    content_type = (response.get("multiValueHeaders") or {}).get("Content-Type")
    if content_type != ["application/json"]:
        problems.append(f"Content-Type {content_type}")
    if not isinstance(response.get("body"), str):
        return [*problems, "no body"]
    return problems + case.check(response, pilot)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam", default="sam")
    parser.add_argument("--work-dir", type=Path, default=PROJECT_ROOT / "out" / "sam-local-check")
    parser.add_argument("--events", nargs="*", help="only these events (names in events/ without .json)")
    args = parser.parse_args()
    cases = [c for c in CASES if not args.events or c.event in args.events]
    work_dir: Path = args.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    started = time.perf_counter()
    template = sam_build(args.sam, work_dir / "build")
    timings["sam build"] = time.perf_counter() - started
    print(f"sam build {FUNCTION}: {timings['sam build']:.0f} s", flush=True)

    pilot_args = argparse.ArgumentParser()
    pilot_arguments(pilot_args)
    pilot_options = pilot_args.parse_args(["--output-dir", str(work_dir / "pilot")])
    with LocalPlatform(PROJECT_ROOT, parameter_overrides=LOCAL_PARAMETERS) as platform:
        started = time.perf_counter()
        with functions_log(pilot_options) as console:
            pilot = run_pilot(platform, pilot_options, console)
        timings["pilot"] = time.perf_counter() - started
        if pilot["status"] != "SUCCEEDED":
            print(f"The pilot failed ({pilot.get('error')}): no model to serve", file=sys.stderr)
            return 1

        # The in-process AWS the pilot just filled, served over HTTP on the bridge (moto's backends are global).
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request the container makes
        gateway = bridge_gateway()
        server = ThreadedMotoServer(ip_address=gateway, port=MOTO_PORT if port_is_free(gateway, MOTO_PORT) else 0)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            build_invoke_image(endpoint)
            env_file = work_dir / "env.json"
            env_file.write_text(json.dumps({FUNCTION: platform.stack.function(FUNCTION).environment}, indent=2))
            results = []
            for case in cases:
                started = time.perf_counter()
                response, log = invoke(args.sam, template, env_file, endpoint, case.event)
                elapsed = time.perf_counter() - started
                problems = check_case(case, response, pilot)
                (work_dir / f"{case.event}.log").write_text(log)
                status = response.get("statusCode") if response else None
                results.append((case.event, status, elapsed, problems))
                print(f"  {case.event:<30} {status!s:>4}  {elapsed:5.1f} s  {'ok' if not problems else 'FAIL'}")
                for problem in problems:
                    print(f"      {problem} (sam log: {work_dir / f'{case.event}.log'})")
        finally:
            server.stop()

    failed = [event for event, _, _, problems in results if problems]
    invoke_s = sum(elapsed for _, _, elapsed, _ in results)
    print(
        f"sam local invoke {FUNCTION}: {len(results) - len(failed)}/{len(results)} events answered as expected "
        f"(model {pilot['model_version']}); sam build {timings['sam build']:.0f} s, pilot {timings['pilot']:.0f} s, "
        f"invokes {invoke_s:.0f} s"
    )
    if failed:
        print(f"Mismatched: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
