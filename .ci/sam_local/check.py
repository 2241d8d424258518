"""`make sam-local-check`: every function the template ships as a container image, and the scoring zip function,
built as `sam build` builds them for deployment and invoked in their Lambda containers (`sam local invoke`), each
answer checked, against a moto server holding a real pilot's model.

Steps: the two images (`docker build` of each Dockerfile the template names, timed: `sam build` then finds their
layers built) and `sam build` of ScoringFunction, its layers and every image function; a pilot on the embedded AWS
(the same LocalPlatform `make pilot` uses) trains, registers and deploys a model; a moto server in this process
serves that same in-memory AWS to the containers on the Docker bridge; then one `sam local invoke
--skip-pull-image` per case (each a new container, so each a cold start):
- ScoringFunction: events/ files, each answer checked against what the in-process tests expect;
- ExplainFunction: events/explain_*.json, each answer the in-process function's for the same event;
- the pilot's image steps (IngestFeatures to PublishReport): the input this pilot's state machine gave the step,
  captured as `make events` captures events/pilot_step_*.json (whose shape it must have), each answer the
  in-process step's but for timings and new ids;
- ScoreChunk: the first chunk PlanBatch plans for events/batch_scoring.json, its part byte for byte the in-process
  one's.
Prints the image sizes beside the zip function's, the build times and each container's cold start (the emulator's
Init Duration). Exits 1 on any mismatch, or if an image function of the template has no case.

How the containers reach moto without touching the template or the handlers:
- resource names: `--env-vars` overrides the functions' template variables (SAM CLI resolves `!Ref Table` to the
  logical id) with the deployed stack's physical names;
- endpoint: SAM CLI 1.170 passes a container only the template's variables (`--env-vars` cannot add one, and
  `--container-env-vars` applies only with `--debug-port`), so AWS_ENDPOINT_URL comes from an image with that one
  ENV line naming the moto server: for the zip function the invoke image (`--invoke-image`: the Lambda base image
  plus the line); for an image function its built image plus the line, named in a copy of the built template
  (`--invoke-image` does not replace an image function's own image);
- credentials and region: SAM CLI passes the host's (LocalPlatform's fake ones) into the container.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import re
import socket
import subprocess  # runs the SAM CLI and the docker CLI with fixed argv
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml
from moto.server import ThreadedMotoServer
from pydantic import BaseModel, ValidationError
from samtranslator.yaml_helper import yaml_parse

from local_cloud.cli import functions_log, pilot_arguments, run_pilot
from local_cloud.platform import LocalPlatform
from mlops.api.contracts import BatchPredictionResponse, ErrorResponse, HealthResponse, ModelListResponse, Prediction

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EVENTS = PROJECT_ROOT / "events"
ZIP_FUNCTION = "ScoringFunction"
BASE_IMAGE = "public.ecr.aws/lambda/python:3.13-x86_64"
INVOKE_IMAGE = "sam-local-check/python:3.13-moto"
# A fixed port keeps the invoke images (and the images sam local builds on them) identical from run to run, so
# Docker's cache reuses them instead of leaving new ones behind each time; any free port if taken.
MOTO_PORT = 5310
# As `make pilot` runs it: local retries after 1 s, warm containers re-read the production pointer every second.
LOCAL_PARAMETERS = {"RetryIntervalSeconds": "1", "ModelRefreshSeconds": "1", "BatchConcurrency": "4"}
LAMBDA_UNZIPPED_LIMIT_MB = 250.0
# The emulator's own log line for the init phase (runtime start and handler import), printed at debug level.
INIT_REPORT = re.compile(r"INIT REPORT\(durationMs: ([0-9.]+)\)")

Check = Callable[[dict[str, Any], dict[str, Any]], list[str]]  # (response, pilot results) -> problems


# ---------------------------------------------------------------- the scoring function's cases
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


def check_case(case: Case, response: Any, pilot: dict[str, Any]) -> list[str]:
    problems = _api_response_problems(response, case.status)
    if problems or not isinstance(response.get("body"), str):
        return problems
    return case.check(response, pilot)


def _api_response_problems(response: Any, status: int) -> list[str]:
    if not isinstance(response, dict):
        return ["no response on stdout"]
    problems = []
    if response.get("statusCode") != status:
        problems.append(f"status {response.get('statusCode')}, expected {status}")
    content_type = (response.get("multiValueHeaders") or {}).get("Content-Type")
    if content_type != ["application/json"]:
        problems.append(f"Content-Type {content_type}")
    if not isinstance(response.get("body"), str):
        problems.append("no body")
    return problems


# ---------------------------------------------------------------- the image functions' cases
# Answer fields that differ from one run of a step to the next (clocks, durations, new ids), at any depth, besides
# every `*_seconds` and `*_at` field.
VOLATILE = {"seconds", "rows_per_second", "explanation_id", "prediction_id"}


def _ignored(key: str, path: str, ignore: set[str]) -> bool:
    """`ignore` names keys at any depth (`sha256`) or one path from the answer's root (`results.units`)."""
    return key in ignore or f"{path}.{key}".lstrip(".") in ignore or key.endswith(("seconds", "_at")) or key in VOLATILE


def differences(expected: Any, actual: Any, ignore: set[str], path: str = "") -> list[str]:
    """Where `actual` differs from `expected` (numbers within 1e-9 relative), the ignored fields left out."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in sorted(set(expected) | set(actual)):
            if _ignored(key, path, ignore):
                continue
            if key not in actual or key not in expected:
                found.append(f"{path}.{key}: {'missing' if key not in actual else 'unexpected'}")
            else:
                found += differences(expected[key], actual[key], ignore, f"{path}.{key}")
        return found
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: {len(actual)} items, in process {len(expected)}"]
        return [
            difference
            for index, (e, a) in enumerate(zip(expected, actual, strict=True))
            for difference in differences(e, a, ignore, f"{path}[{index}]")
        ]
    numbers = (int, float)
    if isinstance(expected, numbers) and isinstance(actual, numbers) and not isinstance(expected, bool):
        if math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-12):
            return []
    elif expected == actual:
        return []
    return [f"{path or 'answer'}: {str(actual)[:80]!r}, in process {str(expected)[:80]!r}"]


def same_answer(reference: Any, ignore: Iterable[str] = ()) -> Callable[[Any], list[str]]:
    """The answer the in-process function gave (for the same event), but for VOLATILE and `ignore` fields."""

    def check(answer: Any) -> list[str]:
        if answer is None:
            return ["no response on stdout"]
        if (
            isinstance(answer, dict)
            and "errorType" in answer
            and not (isinstance(reference, dict) and "errorType" in reference)
        ):
            return [f"{answer['errorType']}: {str(answer.get('errorMessage'))[:300]}"]
        found = differences(reference, answer, set(ignore))
        return found[:5] + ([f"... and {len(found) - 5} more differences"] if len(found) > 5 else [])

    return check


def same_api_answer(reference: dict[str, Any]) -> Callable[[Any], list[str]]:
    """An API answer: the in-process status and body (JSON), but for VOLATILE fields."""

    def check(answer: Any) -> list[str]:
        problems = _api_response_problems(answer, reference["statusCode"])
        if problems:
            return problems
        return same_answer(json.loads(reference["body"]))(json.loads(answer["body"]))

    return check


@dataclass(frozen=True)
class Invocation:
    """One `sam local invoke FUNCTION -e EVENT` and the check of its answer."""

    name: str
    function: str
    event: Path
    check: Callable[[Any], list[str]]
    problems_before: list[str] = field(default_factory=list)  # found while preparing the event


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _key_shape(event: dict[str, Any]) -> tuple[list[str], list[str]]:
    pilot = event.get("pilot")
    return sorted(event), sorted(pilot) if isinstance(pilot, dict) else []


def pilot_step_invocations(
    platform: LocalPlatform, execution_arn: str, images: set[str], events_dir: Path
) -> list[Invocation]:
    """Each image step of the pilot's execution: the input the state machine gave it (written to events_dir as
    `make events` writes events/), checked against events/'s copy for shape, and the step's in-process output.

    Latest step first: each step then reads what the pilot's earlier steps wrote before a re-run of one of them
    rewrites it (a skops payload is not byte-reproducible, so the model a re-run of TrainModel writes would fail
    the SHA-256 that EvaluateModel's and RegisterModel's inputs record)."""
    pages = platform.client("stepfunctions").get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    state, scheduled, steps = None, None, {}
    for event in (event for page in pages for event in page["events"]):
        if event["type"] == "TaskStateEntered":
            state = event["stateEnteredEventDetails"]["name"]
        elif details := event.get("lambdaFunctionScheduledEventDetails"):
            scheduled = (state, platform.stack.function(details["resource"]).logical_id, json.loads(details["input"]))
        elif (details := event.get("lambdaFunctionSucceededEventDetails")) and scheduled:
            steps[scheduled[0]] = (*scheduled[1:], json.loads(details["output"]))  # the last attempt's
            scheduled = None
    invocations = []
    for state, (function, step_input, output) in reversed(steps.items()):
        if function not in images:
            continue
        name = f"pilot_step_{snake_case(state)}"
        path = events_dir / f"{name}.json"
        path.write_text(json.dumps(step_input, indent=2) + "\n")
        recorded = EVENTS / f"{name}.json"
        problems = []
        if not recorded.is_file():
            problems.append(f"no events/{recorded.name} (make events)")
        elif _key_shape(json.loads(recorded.read_text())) != _key_shape(step_input):
            problems.append(f"events/{recorded.name} has another shape than this state machine's input (make events)")
        check = STEP_CHECKS.get(function, lambda _, reference: same_answer(reference))(platform, output)
        invocations.append(Invocation(name, function, path, check, problems))
    return invocations


def _registered_version(_: LocalPlatform, reference: dict[str, Any]) -> Callable[[Any], list[str]]:
    """RegisterModel registers a new version of the same model: the same answer (parity, sizes), but for the
    version's name and the artifacts' bytes, which differ from one registration to the next (skl2onnx names the
    ONNX graph with a uuid4; the drift baseline and the model card say when and which version)."""
    version = reference.get("model_version", "")

    def check(answer: Any) -> list[str]:
        if not isinstance(answer, dict) or not str(answer.get("model_version", "")).startswith("v"):
            return same_answer(reference)(answer)
        renamed = json.loads(json.dumps(answer).replace(answer["model_version"], version))
        regenerated = {
            f"artifacts.{name}.sha256" for name in ("onnx", "drift_baseline", "model_card", "model_card_markdown")
        }
        return same_answer(reference, regenerated)(renamed)

    return check


def _published_report(platform: LocalPlatform, reference: dict[str, Any]) -> Callable[[Any], list[str]]:
    """The report at the same key, as large, with as many figures (drawn in the container) as the in-process one;
    its bytes differ (it says when it was made)."""
    s3, bucket = platform.client("s3"), platform.stack.physical_id("ArtifactBucket")
    figures = s3.get_object(Bucket=bucket, Key=reference["key"])["Body"].read().count(b"data:image/")

    def check(answer: Any) -> list[str]:
        problems = same_answer(reference, {"sha256"})(answer)
        if problems:
            return problems
        written = s3.get_object(Bucket=bucket, Key=answer["key"])["Body"].read()
        if hashlib.sha256(written).hexdigest() != answer["sha256"]:
            problems.append(f"s3://{bucket}/{answer['key']} is not the report the answer describes")
        if written.count(b"data:image/") != figures or not figures:
            problems.append(f"{written.count(b'data:image/')} figures in the report, in process {figures}")
        return problems

    return check


STEP_CHECKS: dict[str, Callable[[LocalPlatform, Any], Callable[[Any], list[str]]]] = {
    # Ingesting the same file again writes nothing new (newest wins): the same answer but for those counts.
    "IngestFeaturesFunction": lambda _, reference: same_answer(
        reference, {"written", "skipped_not_newer", "offline_parts_written"}
    ),
    # The same selection, scores and threshold; the skops payload's bytes differ from one dump to the next.
    "TrainFunction": lambda _, reference: same_answer(reference, {"model.sha256", "model.size_bytes"}),
    "RegisterModelFunction": _registered_version,
    # The customers, what each variant's offers did and the simulated truth; the experiment's analysis reads the
    # whole experiment, whose store the in-process campaign and the scoring cases have already written to.
    "RetentionCampaignFunction": lambda _, reference: same_answer(
        reference,
        {
            "results",
            "business_impact.projected_annual_impact_usd",
            "business_impact.projected_annual_impact_ci_usd",
            "business_impact.measured_by_experiment",
            "business_impact.primary_effect",
        },
    ),
    "PublishReportFunction": _published_report,
}


def explain_invocations(platform: LocalPlatform) -> list[Invocation]:
    invocations = []
    for path in sorted(EVENTS.glob("explain_*.json")):
        reference = platform.runtime.invoke("ExplainFunction", json.loads(path.read_text()))
        invocations.append(Invocation(path.stem, "ExplainFunction", path, same_api_answer(reference)))
    return invocations


def _keys(s3: Any, bucket: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def score_chunk_invocation(platform: LocalPlatform, events_dir: Path) -> Invocation:
    """The first chunk PlanBatch plans for events/batch_scoring.json, as the batch state machine's Map passes it
    (ItemSelector: chunk and plan); the container must answer as the in-process function and write the same part."""
    request = json.loads((EVENTS / "batch_scoring.json").read_text())
    plan = platform.runtime.invoke("PlanBatchFunction", {"request": request, "run_id": "sam-local-check"})
    s3, bucket = platform.client("s3"), plan["bucket"]
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=plan["manifest_key"])["Body"].read())
    event = {"chunk": manifest[0], "plan": plan}
    path = events_dir / "score_chunk.json"
    path.write_text(json.dumps(event, indent=2) + "\n")
    before = _keys(s3, bucket)
    reference = platform.runtime.invoke("ScoreChunkFunction", event)
    written = sorted(_keys(s3, bucket) - before)  # the part
    reference_parts = {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in written}
    for key in written:  # so that the container's part cannot be the in-process one's
        s3.delete_object(Bucket=bucket, Key=key)

    def check(answer: Any) -> list[str]:
        problems = same_answer(reference)(answer)
        for key, expected in reference_parts.items():
            try:
                part = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except s3.exceptions.NoSuchKey:
                problems.append(f"no part s3://{bucket}/{key}")
                continue
            if part != expected:
                problems.append(f"s3://{bucket}/{key}: {len(part)} bytes unlike the in-process {len(expected)}")
        return problems if reference_parts else [*problems, "the in-process ScoreChunk wrote no part"]

    return Invocation("batch_scoring (first chunk)", "ScoreChunkFunction", path, check)


# ---------------------------------------------------------------- building
def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, text=True, capture_output=True, check=False, **kwargs)  # noqa: S603


def image_functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function" and resource["Properties"].get("PackageType") == "Image"
    }


def check_template(template: dict[str, Any]) -> dict[str, Any]:
    """The template with what this check builds: the zip function and its layers, every image function, and the
    resources they name; paths made absolute, so that the copy may live in the work directory."""
    resources = template["Resources"]
    functions = {ZIP_FUNCTION, *image_functions(template)}
    layers = {
        layer["Ref"]
        for name in functions
        for layer in resources[name]["Properties"].get("Layers", [])
        if isinstance(layer, dict) and "Ref" in layer
    }
    kept = {}
    for name, resource in resources.items():
        kind = resource["Type"]
        if (
            (kind == "AWS::Serverless::Function" and name not in functions)
            or (kind == "AWS::Serverless::LayerVersion" and name not in layers)
            or kind == "AWS::Serverless::StateMachine"
        ):
            continue
        resource = json.loads(json.dumps(resource))
        properties, metadata = resource.get("Properties", {}), resource.get("Metadata", {})
        for holder, key in ((properties, "CodeUri"), (properties, "ContentUri"), (metadata, "DockerContext")):
            if isinstance(holder.get(key), str):
                holder[key] = str((PROJECT_ROOT / holder[key]).resolve())
        kept[name] = resource
    return {**template, "Resources": kept, "Outputs": {}}


@dataclass(frozen=True)
class ImageBuild:
    name: str  # the Dockerfile's folder: pipeline, explain
    functions: list[str]
    seconds: float
    tag: str


def docker_build_images(template: dict[str, Any], work_dir: Path) -> list[ImageBuild]:
    """`docker build` of each Dockerfile the image functions name, as `sam build` builds it (classic builder, the
    template's context), timed one by one; explain first, whose layers the pipeline image starts with."""
    by_dockerfile: dict[tuple[str, str], list[str]] = {}
    for name, resource in image_functions(template).items():
        metadata = resource["Metadata"]
        by_dockerfile.setdefault((metadata.get("DockerContext", "."), metadata["Dockerfile"]), []).append(name)
    builds = []
    for (context, dockerfile), functions in sorted(by_dockerfile.items(), key=lambda item: item[0][1]):
        name = Path(dockerfile).parent.name
        tag = f"sam-local-check/{name}:latest"
        started = time.perf_counter()
        result = run(
            ["docker", "build", "-f", str(PROJECT_ROOT / context / dockerfile), "-t", tag, str(PROJECT_ROOT / context)],
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )
        (work_dir / f"docker-build-{name}.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise SystemExit(f"docker build {dockerfile} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        builds.append(ImageBuild(name, sorted(functions), time.perf_counter() - started, tag))
    return builds


def sam_build(sam: str, template: dict[str, Any], work_dir: Path) -> Path:
    source = work_dir / "template.yaml"
    source.write_text(yaml.safe_dump(check_template(template), sort_keys=False))
    build_dir = work_dir / "build"
    result = run([sam, "build", "--template-file", str(source), "--build-dir", str(build_dir)], cwd=PROJECT_ROOT)
    (work_dir / "sam-build.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"sam build failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return build_dir / "template.yaml"


def directory_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def docker_json(argv: list[str]) -> Any:
    result = run(["docker", *argv])
    if result.returncode != 0:
        raise SystemExit(f"docker {' '.join(argv)}: {result.stderr}")
    return json.loads(result.stdout)


def layer_sizes(image: str) -> list[tuple[str, int]]:
    """The image's layers, base first, each with its size in bytes."""
    digests = docker_json(["image", "inspect", "--format", "{{json .RootFS.Layers}}", image])
    history = run(["docker", "history", "--no-trunc", "--human=false", "--format", "{{.Size}}", image])
    sizes = [int(size) for size in reversed(history.stdout.split()) if int(size) > 0]
    # Steps that change no file (ENV, CMD) have no layer; a RUN that writes nothing has an empty one.
    sizes += [0] * (len(digests) - len(sizes))
    return list(zip(digests, sizes, strict=True))


def print_sizes(built_template: Path, builds: list[ImageBuild], console: TextIO) -> None:
    template = yaml_parse(built_template.read_text())
    resources = template["Resources"]
    build_dir = built_template.parent
    zip_properties = resources[ZIP_FUNCTION]["Properties"]
    code = directory_size_mb(build_dir / ZIP_FUNCTION)
    layers = sum(directory_size_mb(build_dir / layer["Ref"]) for layer in zip_properties.get("Layers", []))
    print(
        f"Sizes (zip: unzipped, limit {LAMBDA_UNZIPPED_LIMIT_MB:.0f} MB with layers; images: as Docker stores them)",
        file=console,
    )
    print(
        f"  {ZIP_FUNCTION + ' (zip)':<28} {code + layers:8.1f} MB  (code {code:.1f} MB + layers {layers:.1f} MB)",
        file=console,
    )
    images = {}
    for build in builds:
        image = resources[build.functions[0]]["Properties"]["ImageUri"]
        images[build.name] = layer_sizes(image)
        total = sum(size for _, size in images[build.name])
        print(f"  {build.name + ' image':<28} {total / 1e6:8.1f} MB  ({', '.join(build.functions)})", file=console)
    if len(images) == 2:
        first, second = images.values()
        shared = 0
        for (digest, size), (other, _) in zip(first, second, strict=False):
            if digest != other:
                break
            shared += size
        everything = sum(size for layers in images.values() for _, size in layers) - shared
        print(
            f"  {'shared by both images':<28} {shared / 1e6:8.1f} MB  (the base image and the common requirements;"
            f" both on disk: {everything / 1e6:.1f} MB)",
            file=console,
        )


# ---------------------------------------------------------------- invoking
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


def build_endpoint_image(base: str, tag: str, endpoint: str) -> None:
    dockerfile = f"FROM {base}\nENV AWS_ENDPOINT_URL={endpoint}\n"
    result = run(
        ["docker", "build", "--quiet", "-t", tag, "-"], input=dockerfile, env={**os.environ, "DOCKER_BUILDKIT": "0"}
    )
    if result.returncode != 0:
        raise SystemExit(f"docker build of {tag} failed: {result.stderr}")


def moto_template(built_template: Path, endpoint: str) -> Path:
    """A copy of the built template whose image functions run their built image plus AWS_ENDPOINT_URL."""
    template = yaml_parse(built_template.read_text())
    for resource in image_functions(template).values():
        properties = resource["Properties"]
        built = properties["ImageUri"]
        properties["ImageUri"] = f"sam-local-check/{built.split(':')[0]}:moto"
        build_endpoint_image(built, properties["ImageUri"], endpoint)
    path = built_template.with_name("template.moto.yaml")  # beside it: the zip function's CodeUri is relative
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    return path


@dataclass
class Outcome:
    invocation: Invocation
    status: str
    seconds: float
    init_ms: float | None
    problems: list[str]


def invoke(sam: str, template: Path, env_file: Path, endpoint: str, invocation: Invocation, log: Path) -> Outcome:
    """`sam local invoke` of one case: its answer checked, its log written, its cold start read from the log.

    sam itself gets the endpoint too: with credentials set it asks STS for the account id, which offline costs
    about 8 s of retries per invoke; moto answers at once (and sam passes no host variable into the container).
    SAM_CLI_RIE_DEV makes the emulator log at debug level, its init report included.
    """
    options = {
        "--template-file": template,
        "--event": invocation.event,
        "--env-vars": env_file,
        "--region": os.environ["AWS_DEFAULT_REGION"],
    }
    if invocation.function == ZIP_FUNCTION:
        options["--invoke-image"] = f"{ZIP_FUNCTION}={INVOKE_IMAGE}"
    started = time.perf_counter()
    result = run(
        [
            sam,
            "local",
            "invoke",
            invocation.function,
            "--skip-pull-image",
            *(str(x) for pair in options.items() for x in pair),
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "AWS_ENDPOINT_URL": endpoint, "SAM_CLI_TELEMETRY": "0", "SAM_CLI_RIE_DEV": "1"},
    )
    seconds = time.perf_counter() - started
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    try:
        answer = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        answer = None
    log.write_text(result.stderr)
    log.with_suffix(".answer.json").write_text(json.dumps(answer, indent=2) + "\n")
    init = INIT_REPORT.search(result.stderr)
    problems = invocation.problems_before + invocation.check(answer)
    if isinstance(answer, dict) and "statusCode" in answer:
        status = str(answer["statusCode"])
    elif answer is None:
        status = "none"
    else:
        status = "error" if isinstance(answer, dict) and "errorType" in answer else "json"
    return Outcome(invocation, status, seconds, float(init.group(1)) if init else None, problems)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam", default="sam")
    parser.add_argument("--work-dir", type=Path, default=PROJECT_ROOT / "out" / "sam-local-check")
    parser.add_argument("--cases", nargs="*", help="only these cases (events/ names without .json, as printed)")
    args = parser.parse_args()
    work_dir: Path = args.work_dir.resolve()
    (work_dir / "events").mkdir(parents=True, exist_ok=True)
    (work_dir / "logs").mkdir(exist_ok=True)
    console = sys.stdout
    template = yaml_parse((PROJECT_ROOT / "template.yaml").read_text())
    images = set(image_functions(template))

    started = time.perf_counter()
    builds = docker_build_images(template, work_dir)
    for build in builds:
        print(f"docker build {build.name} image: {build.seconds:.0f} s", file=console, flush=True)
    started_sam = time.perf_counter()
    built_template = sam_build(args.sam, template, work_dir)
    print(
        f"sam build {ZIP_FUNCTION} and the {len(images)} image functions: {time.perf_counter() - started_sam:.0f} s",
        file=console,
        flush=True,
    )
    build_seconds = time.perf_counter() - started
    print_sizes(built_template, builds, console)

    pilot_args = argparse.ArgumentParser()
    pilot_arguments(pilot_args)
    pilot_options = pilot_args.parse_args(["--output-dir", str(work_dir / "pilot")])
    outcomes: list[Outcome] = []
    with LocalPlatform(PROJECT_ROOT, parameter_overrides=LOCAL_PARAMETERS) as platform, functions_log(pilot_options):
        started = time.perf_counter()
        pilot = run_pilot(platform, pilot_options, console)
        pilot_seconds = time.perf_counter() - started
        if pilot["status"] != "SUCCEEDED":
            print(f"The pilot failed ({pilot.get('error')}): no model to serve", file=sys.stderr)
            return 1

        # What the in-process functions answer, for the image functions' cases to compare with.
        invocations = [
            Invocation(
                case.event, ZIP_FUNCTION, EVENTS / f"{case.event}.json", lambda r, c=case: check_case(c, r, pilot)
            )
            for case in CASES
        ]
        invocations += explain_invocations(platform)
        invocations.append(score_chunk_invocation(platform, work_dir / "events"))
        invocations += pilot_step_invocations(platform, pilot["execution_arn"], images, work_dir / "events")
        uncovered = images - {i.function for i in invocations}
        invocations = [i for i in invocations if not args.cases or i.name in args.cases]

        # The in-process AWS the pilot just filled, served over HTTP on the bridge (moto's backends are global).
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request the containers make
        gateway = bridge_gateway()
        server = ThreadedMotoServer(ip_address=gateway, port=MOTO_PORT if port_is_free(gateway, MOTO_PORT) else 0)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            build_endpoint_image(BASE_IMAGE, INVOKE_IMAGE, endpoint)
            template_moto = moto_template(built_template, endpoint)
            env_file = work_dir / "env.json"
            functions = {i.function for i in invocations}
            env_file.write_text(
                json.dumps({name: platform.stack.function(name).environment for name in sorted(functions)}, indent=2)
            )
            print(f"{'case':<40} {'function':<28} {'answer':>6} {'invoke':>7} {'init':>7}", file=console)
            for invocation in invocations:
                log = work_dir / "logs" / f"{invocation.name.split(' ')[0]}.log"
                outcome = invoke(args.sam, template_moto, env_file, endpoint, invocation, log)
                outcomes.append(outcome)
                init = f"{outcome.init_ms / 1000:5.2f} s" if outcome.init_ms is not None else "      ?"
                print(
                    f"  {invocation.name:<38} {invocation.function:<28} {outcome.status:>6} {outcome.seconds:5.1f} s"
                    f" {init}  {'ok' if not outcome.problems else 'FAIL'}",
                    file=console,
                    flush=True,
                )
                for problem in outcome.problems:
                    print(f"      {problem} (sam log: {log.relative_to(PROJECT_ROOT)})", file=console)
        finally:
            server.stop()

    failed = [o.invocation.name for o in outcomes if o.problems]
    print_cold_starts(outcomes, images, console)
    invoke_seconds = sum(o.seconds for o in outcomes)
    print(
        f"sam local invoke: {len(outcomes) - len(failed)}/{len(outcomes)} cases answered as expected, "
        f"{len({o.invocation.function for o in outcomes})} functions (model {pilot['model_version']}); "
        f"builds {build_seconds:.0f} s, pilot {pilot_seconds:.0f} s, invokes {invoke_seconds:.0f} s",
        file=console,
    )
    if uncovered:
        print(f"Image functions without a case: {', '.join(sorted(uncovered))}", file=sys.stderr)
    if failed:
        print(f"Mismatched: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or uncovered else 0


def print_cold_starts(outcomes: list[Outcome], images: set[str], console: TextIO) -> None:
    """Each function's cold start: the emulator's init phase (runtime start and handler import), per container."""
    by_function: dict[str, list[float]] = {}
    for outcome in outcomes:
        if outcome.init_ms is not None:
            by_function.setdefault(outcome.invocation.function, []).append(outcome.init_ms / 1000)
    print("Cold start (Init Duration) per function, over its containers:", file=console)
    for function, inits in sorted(by_function.items(), key=lambda item: (item[0] not in images, item[0])):
        kind = "image" if function in images else "zip"
        print(
            f"  {function:<28} {kind:<5} {min(inits):5.2f} - {max(inits):5.2f} s  ({len(inits)} containers)",
            file=console,
        )


if __name__ == "__main__":
    raise SystemExit(main())
