"""`make bench`: every performance figure of the platform in one run, each with its target and conditions.

Measures, in this order (subprocesses for cold start, batch scoring and the two existing benchmarks):

1. the pilot on the local stack (moto), total and per state (`local_cloud.cli.run_pilot`, as `make pilot`);
2. the scoring core per request, warm: `score_and_prepare` (ONNX) against the scikit-learn pipeline the
   pilot trained (`model.skops`), one held-out customer at a time, with the deployed model;
3. the scoring Lambda handler end to end on the same local stack, warm: an API Gateway event for /predict
   with every feature, then with only a customer id (feature-store lookup), with the time spent in AWS
   calls (moto) measured apart;
4. the scoring function's cold start in fresh interpreters, up to its first answer;
5. batch scoring throughput and peak memory (`python -m local_cloud.cli score`, i.e. `make score`) on
   1,000,000 and 200,000 synthetic customers;
6. explanation latency (`bench/explain_latency.py`) and 7. the feature store (`bench/feature_store.py`),
   run as they are, their JSON written under out/bench/ instead of bench/.

Writes bench/results.json (figures plus raw sections) and bench/results.md (a table for the README), and
prints the table. A missed target is reported, not fatal: the exit status is 0 unless a measurement fails.

    make bench      # PYTHONPATH=local:layers/platform .venv/bin/python bench/suite.py
"""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import os
import platform as host
import re
import subprocess  # fresh interpreters: cold start, batch scoring, the existing benchmarks
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
for _path in ("local", "layers/platform", "tests"):
    if str(PROJECT_ROOT / _path) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT / _path))

from botocore.client import BaseClient  # noqa: E402

from helpers import TELECOM_CSV, TELECOM_SCHEMA, pilot_args  # noqa: E402
from local_cloud.cli import LOCAL_PARAMETERS, functions_log, run_pilot  # noqa: E402
from local_cloud.platform import LocalPlatform  # noqa: E402
from mlops.api.contracts import PredictRequest  # noqa: E402
from mlops.data.dataset import frame_to_columns, prepared_to_frame, read_dataset, split_dataset  # noqa: E402
from mlops.data.features import prepare_features, records_to_columns  # noqa: E402
from mlops.data.schema import DataSchema  # noqa: E402
from mlops.pilot.lambda_api import api_gateway_event  # noqa: E402
from mlops.training.export import load_skops  # noqa: E402

# mlops.serving.batch and mlops.serving.scoring are imported where they are used: they create the functions'
# logger, which writes to whatever sys.stdout is at that moment, and the functions' logs belong in the pilot's
# lambda.log.

BENCH_DIR = PROJECT_ROOT / "bench"
WORK_DIR = PROJECT_ROOT / "out" / "bench"  # out/ is git-ignored: the pilot's output, synthetic data, scores
RESULTS_JSON = BENCH_DIR / "results.json"
RESULTS_MD = BENCH_DIR / "results.md"
CONSOLE = sys.stdout  # progress lines; the functions' own logs go to WORK_DIR/pilot/lambda.log

CORE_WARMUP = 100
CORE_CALLS = 2000
HANDLER_CUSTOMERS = 100  # each called once before measuring: its experiment exposure is already logged
HANDLER_CALLS = 500
COLD_START_RUNS = 3
BATCH_ROWS = 1_000_000
BATCH_SMALL_ROWS = 200_000
SYNTHETIC_SEED = 7
PARITY_TOLERANCE = 1e-4

TARGETS = {
    "core_p99_ms": 1.0,
    "core_speedup": 20.0,
    "handler_p99_ms": 5.0,
    "cold_start_s": 1.5,
    "batch_rows_per_s": 200_000.0,
    "batch_rss_ratio": 1.2,
    "pilot_s": 30.0,
}


# --------------------------------------------------------------------------------------------------------
# Figures and small helpers.
# --------------------------------------------------------------------------------------------------------


LOAD_SEEN: list[float] = []  # 1-minute load average at each progress line: how busy the machine was


def say(message: str) -> None:
    LOAD_SEEN.append(os.getloadavg()[0])
    print(message, file=CONSOLE, flush=True)


def figure(
    name: str,
    value: float,
    unit: str,
    conditions: str,
    target: float | None = None,
    rule: str = "<",
    why: str | None = None,
) -> dict[str, Any]:
    """One reported figure; `rule` is how the value must compare with the target ("<", "<=" or ">="), `why`
    what the measurements say about a miss (kept only when the target is missed)."""
    checks: dict[str, Callable[[float, float], bool]] = {
        "<": lambda v, t: v < t,
        "<=": lambda v, t: v <= t,
        ">=": lambda v, t: v >= t,
    }
    meets = None if target is None else bool(checks[rule](value, target))
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "target": target,
        "target_rule": rule if target is not None else None,
        "meets_target": meets,
        "conditions": conditions,
        "why_missed": why if meets is False else None,
    }


def percentiles(samples_ms: list[float] | np.ndarray) -> dict[str, float]:
    p50, p99 = np.percentile(samples_ms, [50, 99])
    return {
        "p50_ms": round(float(p50), 4),
        "p99_ms": round(float(p99), 4),
        "mean_ms": round(float(np.mean(samples_ms)), 4),
        "max_ms": round(float(np.max(samples_ms)), 4),
        "samples": len(samples_ms),
    }


def held_out_requests() -> list[PredictRequest]:
    """The pilot's held-out customers (its split: test_size 0.2, seed 42) with every feature present."""
    schema = DataSchema.from_file(TELECOM_SCHEMA)
    data = read_dataset(TELECOM_CSV, schema, require_target=True)
    _, test = split_dataset(data, schema, test_size=0.2, seed=42)
    test = test.dropna(subset=schema.feature_columns)
    records = test[[schema.id_column, *schema.feature_columns]].to_dict("records")
    return [PredictRequest(customer_id=str(r.pop(schema.id_column)), features=r) for r in records]


@contextmanager
def aws_call_timer() -> Iterator[dict[str, Any]]:
    """Time every boto3 API call (here: moto, in process) made inside the block; `seconds` and `operations`
    of the returned dict are reset by the caller between measurements."""
    tally: dict[str, Any] = {"seconds": 0.0, "operations": Counter()}
    original = BaseClient._make_api_call

    def timed(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        started = time.perf_counter()
        try:
            return original(client, operation, params)
        finally:
            tally["seconds"] += time.perf_counter() - started
            tally["operations"][f"{client.meta.service_model.service_name}:{operation}"] += 1

    BaseClient._make_api_call = timed  # type: ignore[method-assign]
    try:
        yield tally
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]


def run_measured(command: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command to completion: wall time, peak RSS of that child (wait4's rusage), exit code, output."""
    started = time.perf_counter()
    with log.open("w") as output:
        process = subprocess.Popen(  # noqa: S603  # this interpreter or a fixed command
            command, stdout=output, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT, env=env
        )
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    return {
        "wall_s": round(time.perf_counter() - started, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # kilobytes on Linux
        "returncode": process.returncode,
        "output": log.read_text(),
    }


def layer_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(PROJECT_ROOT / p) for p in ("local", "layers/platform"))}


# --------------------------------------------------------------------------------------------------------
# 1-3. Pilot, scoring core and scoring handler, on one local stack.
# --------------------------------------------------------------------------------------------------------


def pilot_and_online_scoring(requests: list[PredictRequest]) -> dict[str, Any]:
    output_dir = WORK_DIR / "pilot"
    args = pilot_args(output_dir, verbose=False)
    say("[1/8] pilot on the local stack (moto)")
    started = time.perf_counter()
    with LocalPlatform(PROJECT_ROOT, parameter_overrides=LOCAL_PARAMETERS) as platform, functions_log(args) as console:
        deploy_s = time.perf_counter() - started
        results = run_pilot(platform, args, console)
        if results["status"] != "SUCCEEDED":
            raise RuntimeError(f"the pilot failed: {results['error']}")
        say("[2/8] scoring core per request (ONNX vs scikit-learn)")
        core = scoring_core(output_dir / "model", requests)
        say("[3/8] scoring Lambda handler end to end (API Gateway event, moto)")
        handler = scoring_handler(platform, requests)
    pilot = {
        "stack_deploy_s": round(deploy_s, 3),
        "execution_time_s": results["execution_time_s"],
        "model_version": results["model_version"],
        "algorithm": results["algorithm"],
        "states": results["states"],
        "output_dir": str(output_dir.relative_to(PROJECT_ROOT)),
    }
    return {"pilot": pilot, "scoring_core": core, "scoring_handler": handler}


def scoring_core(model_dir: Path, requests: list[PredictRequest]) -> dict[str, Any]:
    from mlops.serving.batch import load_model_dir
    from mlops.serving.scoring import score_and_prepare

    loaded = load_model_dir(model_dir)
    pipeline = load_skops((model_dir / "model.skops").read_bytes())
    spec = loaded.spec

    def onnx(request: PredictRequest) -> float:
        (prediction,), _, _ = score_and_prepare([request], loaded)
        return prediction.churn_probability

    def sklearn(request: PredictRequest) -> float:
        prepared = prepare_features(records_to_columns([request.features], spec), spec)
        return float(pipeline.predict_proba(prepared_to_frame(prepared))[0, 1])

    calls = [requests[i % len(requests)] for i in range(CORE_CALLS)]
    timings: dict[str, list[float]] = {}
    answers: dict[str, list[float]] = {}
    for name, score in (("onnx", onnx), ("sklearn", sklearn)):
        for request in calls[:CORE_WARMUP]:
            score(request)
        samples, values = [], []
        for request in calls:
            started = time.perf_counter()
            values.append(score(request))
            samples.append((time.perf_counter() - started) * 1e3)
        timings[name], answers[name] = samples, values
    parity = float(np.max(np.abs(np.array(answers["onnx"]) - np.array(answers["sklearn"]))))
    if parity > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX and scikit-learn disagree by {parity:.2e}: not the same model")
    onnx_p, sklearn_p = percentiles(timings["onnx"]), percentiles(timings["sklearn"])
    return {
        "model_version": loaded.version.version,
        "algorithm": loaded.version.algorithm,
        "customers": len(requests),
        "onnx": onnx_p,
        "sklearn": sklearn_p,
        "speedup_p50": round(sklearn_p["p50_ms"] / onnx_p["p50_ms"], 2),
        "speedup_p99": round(sklearn_p["p99_ms"] / onnx_p["p99_ms"], 2),
        "max_probability_difference": parity,
    }


def scoring_handler(platform: LocalPlatform, requests: list[PredictRequest]) -> dict[str, Any]:
    customers = requests[:HANDLER_CUSTOMERS]
    bodies: dict[str, Callable[[PredictRequest], dict[str, Any]]] = {
        "full_features": lambda r: r.model_dump(mode="json"),
        "customer_id_only": lambda r: {"customer_id": r.customer_id},
    }
    expected_source = {"full_features": "request", "customer_id_only": "store"}
    results: dict[str, Any] = {}
    # The audit writer drains the queue elsewhere on AWS: here only after the timed calls, outside them.
    with platform.event_sources_paused(), aws_call_timer() as aws:
        for mode, body in bodies.items():

            def invoke(request: PredictRequest, call: int, mode: str = mode, body: Any = body) -> dict[str, Any]:
                """One timed invocation (only runtime.invoke is timed); the answer, checked."""
                event = api_gateway_event("POST", "/predict", body(request), f"bench-{mode}-{call}")
                aws["seconds"] = 0.0
                started = time.perf_counter()
                response = platform.runtime.invoke("ScoringFunction", event)
                elapsed_ms = (time.perf_counter() - started) * 1e3
                if not isinstance(response, dict) or response.get("statusCode") != 200:
                    raise RuntimeError(f"/predict ({mode}) answered {response}")
                return {"ms": elapsed_ms, "aws_ms": aws["seconds"] * 1e3, "answer": json.loads(response["body"])}

            for call, request in enumerate(customers):  # warm, and every customer's exposure logged once
                answer = invoke(request, call)["answer"]
            sources = set(answer["feature_sources"].values())
            if sources != {expected_source[mode]}:
                raise RuntimeError(f"/predict ({mode}) used features from {sources}")
            total, in_aws = [], []
            aws["operations"].clear()
            for call in range(HANDLER_CALLS):
                timed = invoke(customers[call % len(customers)], call + len(customers))
                total.append(timed["ms"])
                in_aws.append(timed["aws_ms"])
            results[mode] = {
                "total": percentiles(total),
                "aws_calls": percentiles(in_aws),
                "excluding_aws_calls": percentiles(np.array(total) - np.array(in_aws)),
                "aws_operations_per_call": {
                    name: round(count / HANDLER_CALLS, 3) for name, count in sorted(aws["operations"].items())
                },
                "experiment_id": answer.get("experiment_id"),
            }
    return results


# --------------------------------------------------------------------------------------------------------
# 4. Cold start of the scoring function.
# --------------------------------------------------------------------------------------------------------

# Runs in a fresh interpreter: the scoring function's module (functions/scoring/app.py, what Lambda imports
# at init), then its model loader (load_model_version: ONNX graph and feature spec, each SHA-256 verified)
# reading the pilot's model directory instead of S3, then one request through score_and_prepare.
_COLD_START = """
import time
ready = time.time()
import importlib.util, io, json, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("scoring_app", {app!r})
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
imported = time.time()
from mlops.core.artifacts import ArtifactStore
from mlops.api.contracts import PredictRequest
from mlops.registry.store import ModelVersion
from mlops.serving.scoring import load_model_version, score_and_prepare
model_dir = Path({model_dir!r})

class ModelDirectory:
    def get_object(self, *, Key, **_):
        return {{"Body": io.BytesIO((model_dir / Key.rsplit("/", 1)[-1]).read_bytes())}}

loaded = load_model_version(ModelVersion.model_validate_json({version!r}), ArtifactStore("local", ModelDirectory()))
model_loaded = time.time()
(prediction,), _, _ = score_and_prepare([PredictRequest.model_validate_json({request!r})], loaded)
answered = time.time()
heavy = sorted(m for m in ("pandas", "sklearn", "scipy", "moto") if m in sys.modules)
print(json.dumps({{"ready": ready, "imported": imported, "model_loaded": model_loaded, "answered": answered,
                   "probability": prediction.churn_probability, "heavy_modules": heavy}}))
"""


def cold_start(model_dir: Path, request: PredictRequest) -> dict[str, Any]:
    from mlops.serving.batch import load_model_dir

    code = _COLD_START.format(
        app=str(PROJECT_ROOT / "functions" / "scoring" / "app.py"),
        model_dir=str(model_dir),
        version=load_model_dir(model_dir).version.model_dump_json(),
        request=request.model_dump_json(),
    )
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "layers" / "platform")}
    runs = []
    for _ in range(COLD_START_RUNS):
        spawned = time.time()
        completed = subprocess.run(  # noqa: S603  # this interpreter, fixed code
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment
        )
        child = json.loads(completed.stdout.strip().splitlines()[-1])
        runs.append(
            {
                "interpreter_start_s": round(child["ready"] - spawned, 3),
                "import_s": round(child["imported"] - child["ready"], 3),
                "model_load_s": round(child["model_loaded"] - child["imported"], 3),
                "first_score_s": round(child["answered"] - child["model_loaded"], 4),
                "to_first_response_s": round(child["answered"] - spawned, 3),
                "heavy_modules": child["heavy_modules"],
            }
        )
    totals = [run["to_first_response_s"] for run in runs]
    return {"runs": runs, "median_s": round(float(np.median(totals)), 3), "max_s": round(max(totals), 3)}


# --------------------------------------------------------------------------------------------------------
# 5. Batch scoring.
# --------------------------------------------------------------------------------------------------------


def synthetic_files() -> dict[str, Any]:
    large = WORK_DIR / "data" / f"synthetic_{BATCH_ROWS // 1000}k_seed{SYNTHETIC_SEED}.csv"
    small = WORK_DIR / "data" / f"synthetic_{BATCH_SMALL_ROWS // 1000}k_seed{SYNTHETIC_SEED}.csv"
    generated_s = None
    if not large.exists():
        large.parent.mkdir(parents=True, exist_ok=True)
        partial = large.with_suffix(".partial")
        say(f"      generating {BATCH_ROWS:,} synthetic customers once, kept in {large.relative_to(PROJECT_ROOT)}")
        started = time.perf_counter()
        subprocess.run(  # noqa: S603  # this interpreter, fixed arguments
            [
                sys.executable,
                "-m",
                "mlops.pilot.synthetic",
                *("--data", str(TELECOM_CSV), "--schema", str(TELECOM_SCHEMA)),
                *("--rows", str(BATCH_ROWS), "--seed", str(SYNTHETIC_SEED)),
                *("--output", str(partial)),
            ],
            check=True,
            cwd=PROJECT_ROOT,
            env=layer_env(),
            stdout=subprocess.DEVNULL,
        )
        generated_s = round(time.perf_counter() - started, 1)
        partial.rename(large)
    if not small.exists():
        with large.open() as source, small.open("w") as target:
            for _ in range(BATCH_SMALL_ROWS + 1):  # the header, then the first rows
                target.write(source.readline())
    return {"large": large, "small": small, "generated_s": generated_s}


def batch_scoring(model_dir: Path) -> dict[str, Any]:
    files = synthetic_files()
    results: dict[str, Any] = {"generation_s": files["generated_s"], "runs": {}}
    for label, rows, path in (("1m", BATCH_ROWS, files["large"]), ("200k", BATCH_SMALL_ROWS, files["small"])):
        scores = WORK_DIR / f"scores_{label}.csv"
        command = [sys.executable, "-m", "local_cloud.cli", "score"]
        command += ["--model-dir", str(model_dir), "--input", str(path), "--output", str(scores)]
        run = run_measured(command, WORK_DIR / f"score_{label}.log", env=layer_env())
        if run["returncode"] != 0:
            raise RuntimeError(f"batch scoring of {path} failed:\n{run['output']}")
        match = re.search(r"Scored (\d+) rows .* in ([\d.]+) s", run["output"])
        if match is None or int(match.group(1)) != rows:
            raise RuntimeError(f"unexpected output of the score command:\n{run['output']}")
        with scores.open("rb") as handle:
            written = sum(1 for _ in handle) - 1
        if written != rows:
            raise RuntimeError(f"{scores} has {written} rows, expected {rows}")
        score_csv_s = float(match.group(2))
        results["runs"][label] = {
            "rows": rows,
            "input_mb": round(path.stat().st_size / 2**20, 1),
            "process_wall_s": run["wall_s"],
            "score_csv_s": score_csv_s,
            "rows_per_s_process": round(rows / run["wall_s"]),
            "rows_per_s_score_csv": round(rows / score_csv_s),
            "peak_rss_mb": run["peak_rss_mb"],
        }
    runs = results["runs"]
    results["peak_rss_ratio_1m_to_200k"] = round(runs["1m"]["peak_rss_mb"] / runs["200k"]["peak_rss_mb"], 3)
    results["steps_200k"] = batch_steps(model_dir, files["small"])
    return results


def batch_steps(model_dir: Path, path: Path) -> dict[str, Any]:
    """Where score_csv's time goes: its steps timed one by one, in this process, on the 200k-row file, ONNX
    on one intra-op thread; the ONNX step is also timed apart on every core (OnnxChurnModel's `threads`)."""
    from mlops.serving.batch import DEFAULT_CHUNK_ROWS, load_model_dir
    from mlops.serving.onnx_model import OnnxChurnModel

    loaded = load_model_dir(model_dir)  # digests checked; one intra-op thread
    cores = os.cpu_count() or 1
    every_core = OnnxChurnModel((model_dir / "model.onnx").read_bytes(), loaded.spec, threads=cores)
    schema = loaded.spec.data_schema
    seconds: Counter[str] = Counter()
    onnx_every_core_s = 0.0
    rows = 0
    chunks = read_dataset(path, schema, chunksize=DEFAULT_CHUNK_ROWS)
    while True:
        started = time.perf_counter()
        chunk = next(chunks, None)
        seconds["read_csv (read_dataset)"] += time.perf_counter() - started
        if chunk is None:
            break
        started = time.perf_counter()
        columns = frame_to_columns(chunk, schema)
        seconds["frame_to_columns"] += time.perf_counter() - started
        started = time.perf_counter()
        prepared = prepare_features(columns, loaded.spec)
        seconds["prepare_features"] += time.perf_counter() - started
        started = time.perf_counter()
        probabilities = loaded.model.predict_proba(prepared)
        seconds["onnx"] += time.perf_counter() - started
        started = time.perf_counter()
        every_core.predict_proba(prepared)
        onnx_every_core_s += time.perf_counter() - started
        started = time.perf_counter()
        scored = pd.DataFrame(
            {
                schema.id_column: chunk[schema.id_column].to_numpy(),
                "churn_probability": np.round(probabilities, 6),
                "churn_prediction": probabilities >= loaded.version.threshold,
                "model_version": loaded.version.version,
            }
        )
        scored.to_csv(io.StringIO(), header=rows == 0, index=False)
        seconds["write_csv (to_csv)"] += time.perf_counter() - started
        rows += len(chunk)
    total = sum(seconds.values())
    return {
        "rows": rows,
        "chunk_rows": DEFAULT_CHUNK_ROWS,
        "seconds": {name: round(value, 3) for name, value in seconds.items()},
        "share": {name: round(value / total, 3) for name, value in seconds.items()},
        "rows_per_s": round(rows / total),
        "onnx_threads": 1,
        "onnx_every_core": {"threads": cores, "seconds": round(onnx_every_core_s, 3)},
    }


# --------------------------------------------------------------------------------------------------------
# 6-7. The existing benchmarks, run as they are (their JSON redirected under out/bench/).
# --------------------------------------------------------------------------------------------------------

_EXISTING = """
import sys
from pathlib import Path
sys.path.insert(0, {bench!r})
import {module} as bench
bench.OUTPUT = Path({output!r})
sys.exit(bench.main())
"""


HTTP_PORT = 3057
HTTP_USERS = 200  # each sends one request a second (bench/locustfile.py): 200 requests/s offered
HTTP_SECONDS = 60


def http_load() -> dict[str, Any]:
    """`make serve` in a subprocess (a fresh pilot, then the API), and locust headless against it."""
    serve_log = (WORK_DIR / "serve.log").open("w")
    server = subprocess.Popen(  # noqa: S603  # this interpreter, fixed arguments
        [
            sys.executable,
            "-m",
            "local_cloud.cli",
            "serve",
            "--port",
            str(HTTP_PORT),
            "--output-dir",
            str(WORK_DIR / "serve"),
        ],
        cwd=PROJECT_ROOT,
        env=layer_env(),
        stdout=serve_log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_until_serving(f"http://127.0.0.1:{HTTP_PORT}/health", timeout_s=600)
        prefix = WORK_DIR / "locust"
        locust = subprocess.run(  # noqa: S603  # this interpreter, fixed arguments
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(BENCH_DIR / "locustfile.py"),
                "--headless",
                "-u",
                str(HTTP_USERS),
                "-r",
                "50",
                "-t",
                f"{HTTP_SECONDS}s",
                "--stop-timeout",
                "5",
                "--host",
                f"http://127.0.0.1:{HTTP_PORT}",
                "--csv",
                str(prefix),
                "--only-summary",
            ],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=HTTP_SECONDS + 180,
            check=False,  # locust exits 1 when any request failed: that is a result
        )
        (WORK_DIR / "locust.log").write_text(locust.stdout + locust.stderr)
        with Path(f"{prefix}_stats.csv").open() as handle:
            row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    finally:
        server.terminate()
        server.wait(timeout=60)
        serve_log.close()
    return {
        "users": HTTP_USERS,
        "seconds": HTTP_SECONDS,
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "requests_per_second": round(float(row["Requests/s"]), 1),
        "p50_ms": float(row["50%"]),
        "p95_ms": float(row["95%"]),
        "p99_ms": float(row["99%"]),
    }


def _wait_until_serving(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  # our own local server
                if json.loads(response.read()).get("status") == "ok":
                    return
        except (OSError, ValueError):
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer ok within {timeout_s} s (see out/bench/serve.log)")


def existing_benchmark(module: str, ok_codes: tuple[int, ...] = (0,)) -> dict[str, Any]:
    """Run bench/<module>.py's main() in a fresh interpreter (as `make bench-...`), its JSON to out/bench/."""
    output = WORK_DIR / f"{module}.json"
    output.unlink(missing_ok=True)
    code = _EXISTING.format(bench=str(BENCH_DIR), module=module, output=str(output))
    started = time.perf_counter()
    completed = subprocess.run(  # noqa: S603  # this interpreter, fixed code
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "layers" / "platform")},
    )
    for line in completed.stdout.strip().splitlines():
        say(f"      {line}")
    if completed.returncode not in ok_codes or not output.exists():
        raise RuntimeError(f"bench/{module}.py failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return {"seconds": round(time.perf_counter() - started, 1), "json": str(output.relative_to(PROJECT_ROOT))} | (
        json.loads(output.read_text())
    )


# --------------------------------------------------------------------------------------------------------
# Figures, report.
# --------------------------------------------------------------------------------------------------------


def figures_of(raw: dict[str, Any], load: float) -> list[dict[str, Any]]:
    """The reported figures, from the raw measurements; `load` is the highest 1-minute load average seen."""
    pilot, core, handler = raw["pilot"], raw["scoring_core"], raw["scoring_handler"]
    cold, batch, explain, features = raw["cold_start"], raw["batch_scoring"], raw["explain"], raw["feature_store"]
    busy = f"load average up to {load:.2f} on {os.cpu_count()} CPUs during the suite"
    slowest = sorted(pilot["states"], key=lambda s: s["duration_s"], reverse=True)[:3]
    slowest_text = ", ".join(f"{s['name']} {s['duration_s']:.1f} s" for s in slowest)
    slowest_share = sum(s["duration_s"] for s in slowest) / pilot["execution_time_s"]
    onnx, sk = core["onnx"], core["sklearn"]
    core_tail = f"p99 is {onnx['p99_ms'] / onnx['p50_ms']:.1f}x the p50 ({onnx['p50_ms']:.3f} ms); {busy}"
    core_conditions = (
        f"{core['algorithm']} model {core['model_version']} as deployed (load_model_dir: ONNX, 1 intra-op thread); "
        f"score_and_prepare of one PredictRequest (validation, feature preparation, ONNX, Prediction), "
        f"{onnx['samples']} calls over {core['customers']} held-out customers with every feature, warm "
        f"({CORE_WARMUP} calls first)"
    )
    sklearn_conditions = (
        f"same requests one at a time: records_to_columns + prepare_features + prepared_to_frame + "
        f"predict_proba of model.skops; {sk['samples']} calls; probabilities equal ONNX's within "
        f"{core['max_probability_difference']:.1e}"
    )
    rows: list[dict[str, Any]] = [
        figure(
            "Pilot, whole run",
            pilot["execution_time_s"],
            "s",
            f"run_pilot on LocalPlatform (moto, in process; RetryIntervalSeconds 1): upload, state machine "
            f"execution ({len(pilot['states'])} states), results and model download; stack deploy before it "
            f"{pilot['stack_deploy_s']:.1f} s not included. Slowest states: {slowest_text} (table below)",
            TARGETS["pilot_s"],
            why=f"{slowest_share:.0%} of the run is in its three slowest states ({slowest_text}); every state runs "
            f"on moto in this one process; {busy}",
        ),
        figure("Scoring core p50 (ONNX)", onnx["p50_ms"], "ms", core_conditions),
        figure("Scoring core p99 (ONNX)", onnx["p99_ms"], "ms", core_conditions, TARGETS["core_p99_ms"], why=core_tail),
        figure("scikit-learn per request p50", sk["p50_ms"], "ms", sklearn_conditions),
        figure("scikit-learn per request p99", sk["p99_ms"], "ms", sklearn_conditions),
        figure(
            "Speed-up ONNX vs scikit-learn, p50",
            core["speedup_p50"],
            "x",
            "scikit-learn p50 / scoring core p50, same requests",
            TARGETS["core_speedup"],
            ">=",
            why=f"scikit-learn p50 {sk['p50_ms']:.2f} ms vs ONNX p50 {onnx['p50_ms']:.3f} ms",
        ),
        figure(
            "Speed-up ONNX vs scikit-learn, p99",
            core["speedup_p99"],
            "x",
            "scikit-learn p99 / scoring core p99, same requests",
            TARGETS["core_speedup"],
            ">=",
            why=f"scikit-learn p99 {sk['p99_ms']:.2f} ms vs ONNX p99 {onnx['p99_ms']:.3f} ms; {core_tail}",
        ),
    ]
    for mode, label, target in (
        ("full_features", "every feature, no lookup", TARGETS["handler_p99_ms"]),
        ("customer_id_only", "customer id only, feature-store lookup", None),
    ):
        result = handler[mode]
        operations = ", ".join(f"{n} x{c:g}" for n, c in result["aws_operations_per_call"].items())
        conditions = (
            f"ScoringFunction handler via the local Lambda runtime, API Gateway v1 event for POST /predict "
            f"({label}), warm, {result['total']['samples']} calls over {HANDLER_CUSTOMERS} customers; each call "
            f"queues its audit record (one SQS send; the audit writer drains the queue after the measurement)"
            + (
                " and, the pilot's A/B experiment running, its exposure (conditional put, already logged)"
                if result["experiment_id"]
                else ""
            )
            + f"; AWS calls per request: {operations}. Of the p50, "
            f"{result['aws_calls']['p50_ms']:.2f} ms is inside boto3/moto"
        )
        rows.append(figure(f"Handler p50, {label}", result["total"]["p50_ms"], "ms", conditions))
        calls = sum(result["aws_operations_per_call"].values())
        why = (
            f"the {calls:g} AWS calls per request (moto, in process) alone take p50 {result['aws_calls']['p50_ms']:.2f}"
            f" ms, p99 {result['aws_calls']['p99_ms']:.2f} ms; without them the handler's p99 is "
            f"{result['excluding_aws_calls']['p99_ms']:.2f} ms; {busy}"
        )
        rows.append(figure(f"Handler p99, {label}", result["total"]["p99_ms"], "ms", conditions, target, why=why))
        rows.append(
            figure(
                f"Handler p99 excluding AWS calls, {label}",
                result["excluding_aws_calls"]["p99_ms"],
                "ms",
                "same calls, minus the time spent inside boto3 API calls (moto): the handler's own code "
                "(powertools, routing, validation, scoring, JSON, logs and metrics to a file)",
            )
        )
    heavy = sorted({m for run in cold["runs"] for m in run["heavy_modules"]})
    first = cold["runs"][0]
    rows.append(
        figure(
            "Cold start to first response, median",
            cold["median_s"],
            "s",
            f"fresh python per run ({len(cold['runs'])} runs, page cache warm): interpreter start, "
            f"import functions/scoring/app.py, load_model_version (SHA-256 verified) reading the pilot's model "
            f"directory instead of S3 (no moto, no network), score_and_prepare of one request. First run: "
            f"interpreter {first['interpreter_start_s']:.2f} s, import {first['import_s']:.2f} s, model "
            f"{first['model_load_s']:.2f} s, first score {first['first_score_s'] * 1e3:.0f} ms; heavy modules "
            f"imported: {', '.join(heavy) or 'none (no pandas, scikit-learn, scipy)'}",
            TARGETS["cold_start_s"],
            why=f"importing functions/scoring/app.py takes {first['import_s']:.2f} s of it; {busy}",
        )
    )
    slowest_run = max(cold["runs"], key=lambda run: run["to_first_response_s"])
    rows.append(
        figure(
            "Cold start to first response, max",
            cold["max_s"],
            "s",
            "same runs",
            TARGETS["cold_start_s"],
            why=f"that run's import took {slowest_run['import_s']:.2f} s; {busy}",
        )
    )
    large, small = batch["runs"]["1m"], batch["runs"]["200k"]
    steps = batch["steps_200k"]
    step_text = ", ".join(f"{name} {share:.0%}" for name, share in steps["share"].items())
    every_core = steps["onnx_every_core"]
    batch_why = (
        f"score_csv's steps timed apart in process on 200k rows with 1 ONNX thread ({steps['rows_per_s']:,} rows/s): "
        f"{step_text}; ONNX on {every_core['threads']} threads {every_core['seconds']:.2f} s instead of "
        f"{steps['seconds']['onnx']:.2f} s; {busy}"
    )
    batch_conditions = (
        f"python -m local_cloud.cli score (make score) on {large['rows']:,} synthetic customers "
        f"(mlops.pilot.synthetic seed {SYNTHETIC_SEED}, {large['input_mb']:.0f} MB CSV) to a CSV of scores, "
        f"{steps['chunk_rows']:,}-row chunks, ONNX threads as the command sets them"
    )
    rows += [
        figure(
            "Batch scoring, whole process",
            large["rows_per_s_process"],
            "rows/s",
            f"{batch_conditions}; wall time of the process {large['process_wall_s']:.1f} s, interpreter start, "
            f"imports and model load included",
            TARGETS["batch_rows_per_s"],
            ">=",
            why=f"process start, imports (pandas, scikit-learn) and model load take "
            f"{large['process_wall_s'] - large['score_csv_s']:.1f} s; {batch_why}",
        ),
        figure(
            "Batch scoring, CSV to CSV",
            large["rows_per_s_score_csv"],
            "rows/s",
            f"{batch_conditions}; score_csv only (read, prepare, ONNX, write): {large['score_csv_s']:.1f} s as "
            f"the command reports it",
            TARGETS["batch_rows_per_s"],
            ">=",
            why=batch_why,
        ),
        figure(
            "Batch scoring peak RSS, 1M rows",
            large["peak_rss_mb"],
            "MB",
            "peak resident memory of the score process (wait4 rusage)",
        ),
        figure(
            "Batch peak RSS ratio, 1M / 200k rows",
            batch["peak_rss_ratio_1m_to_200k"],
            "x",
            f"memory bounded: 5x the rows, {large['peak_rss_mb']:.0f} MB vs {small['peak_rss_mb']:.0f} MB "
            f"peak (200k: first rows of the same file); target set by this suite",
            TARGETS["batch_rss_ratio"],
            "<=",
            why="the peak grows with the row count: the file is not streamed in bounded chunks",
        ),
    ]
    explain_conditions = (
        f"bench/explain_latency.py: {explain['model']['algorithm']} trained by the training code, "
        f"{explain['model']['held_out_rows']} held-out customers, load_explainable_version; per row"
    )
    explain_target = explain.get("target_p99_ms")
    explain_cold = explain["cold_start"]
    rows += [
        figure(
            "Explanation p99, single request",
            explain["single_ms_per_row"]["p99"],
            "ms/row",
            f"{explain_conditions}, one request at a time (p50 {explain['single_ms_per_row']['p50']} ms)",
            explain_target,
            why=busy,
        ),
        figure(
            "Explanation p99, 100-record batch",
            explain["batch_100_ms_per_row"]["p99"],
            "ms/row",
            f"{explain_conditions}, batch time / 100 (p50 {explain['batch_100_ms_per_row']['p50']} ms)",
            explain_target,
            why=busy,
        ),
        figure(
            "Explain function cold start",
            round(explain_cold["import_s"] + explain_cold["model_load_s"] + explain_cold["first_explanation_s"], 3),
            "s",
            f"median of {explain_cold['runs']} fresh processes: import {explain_cold['import_s']} s + model load "
            f"{explain_cold['model_load_s']} s + first explanation {explain_cold['first_explanation_s']} s "
            "(interpreter start not included)",
        ),
    ]
    http = raw["http_load"]
    http_conditions = (
        f"locust {importlib.metadata.version('locust')} headless, {http['users']} clients each sending one "
        f"request a second (200 requests/s offered) for {http['seconds']} s, POST /predict with every feature "
        f"of held-out customers, against make serve (werkzeug threaded server, the in-process Lambda runtime on "
        f"moto: every request also queues its audit record, which the audit writer appends in the same process, and "
        f"checks its experiment exposure), load generator "
        f"and server on the same {os.cpu_count()} CPUs; {http['requests']} requests"
    )
    http_why = (
        "one Python process serves every request (the GIL), the audit writer's appends included, and locust shares the "
        f"same CPUs; {busy}"
    )
    rows += [
        figure("HTTP sustained requests/s", http["requests_per_second"], "req/s", http_conditions, 200, ">=", http_why),
        figure("HTTP p95", http["p95_ms"], "ms", http_conditions, 50, "<", http_why),
        figure("HTTP p99", http["p99_ms"], "ms", http_conditions),
        figure("HTTP errors", http["failures"], "count", http_conditions, 0, "<=", "see out/bench/locust.log"),
    ]
    store = f"bench/feature_store.py on {features['store']}; {features['data']}"
    single, batch100, ingestion = features["lookup_single"], features["lookup_batch_100"], features["ingestion"]
    rows += [
        figure("Feature lookup p50, one customer", single["p50_ms"], "ms", f"{store}; OnlineFeatureStore.get"),
        figure("Feature lookup p99, one customer", single["p99_ms"], "ms", f"{store}; OnlineFeatureStore.get"),
        figure(
            "Feature lookup p99, 100-id batch",
            batch100["p99_ms"],
            "ms",
            f"{store}; batch_get (one BatchGetItem), p50 {batch100['p50_ms']} ms = {batch100['per_id_p50_ms']} ms/id",
        ),
        figure(
            "Feature ingestion",
            ingestion["first_rows_per_second"],
            "rows/s",
            f"{store}; ingest_file into an empty store (conditional newest-wins puts, offline Parquet, catalog); "
            f"re-ingestion {ingestion['reingest_rows_per_second']:,.0f} rows/s",
        ),
    ]
    return rows


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        host.processor() or "unknown",
    )
    versions = {p: importlib.metadata.version(p) for p in ("onnxruntime", "scikit-learn", "numpy", "pandas", "moto")}
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": host.python_version(),
        "platform": host.platform(),
        "packages": versions,
    }


def format_value(value: float, unit: str) -> str:
    if unit == "rows/s":
        return f"{value:,.0f} rows/s"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "count":
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}" if abs(value) < 10 else f"{value:.1f} {unit}"


def format_target(row: dict[str, Any]) -> str:
    if row["target"] is None:
        return "-"
    symbol = {"<": "<", "<=": "≤", ">=": "≥"}[row["target_rule"]]
    target, unit = row["target"], row["unit"]
    if unit == "x":
        return f"{symbol} {target:g}x"
    return f"{symbol} {target:,.0f} {unit}" if target >= 1000 else f"{symbol} {target:g} {unit}"


def markdown(report: dict[str, Any]) -> str:
    mach = report["machine"]
    load = report["load_average"]
    lines = [
        "# Benchmarks (`make bench`)",
        "",
        f"Measured {report['date']} on {mach['cpus']} CPUs ({mach['cpu_model']}), Python {mach['python']}, "
        f"onnxruntime {mach['packages']['onnxruntime']}, scikit-learn {mach['packages']['scikit-learn']}, "
        f"moto {mach['packages']['moto']}; load average {load['start'][0]:.2f} at the start, "
        f"{load['end'][0]:.2f} at the end; the suite took {report['suite_seconds']:.0f} s.",
        "",
        "| Figure | Value | Target | Met | Conditions |",
        "|---|---:|---|---|---|",
    ]
    for row in report["figures"]:
        met = {True: "yes", False: "**missed**", None: "-"}[row["meets_target"]]
        conditions = row["conditions"] + (f". **Why missed:** {row['why_missed']}" if row["why_missed"] else "")
        conditions = conditions.replace("|", "\\|")
        lines.append(
            f"| {row['name']} | {format_value(row['value'], row['unit'])} | {format_target(row)} | {met} | "
            f"{conditions} |"
        )
    lines += ["", "Pilot wall time per state (Step Functions history on moto):", "", "| State | Status | Seconds |"]
    lines.append("|---|---|---:|")
    lines += [f"| {s['name']} | {s['status']} | {s['duration_s']:.2f} |" for s in report["pilot"]["states"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    started = time.perf_counter()
    load_start = os.getloadavg()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    requests = held_out_requests()
    raw = pilot_and_online_scoring(requests)
    model_dir = WORK_DIR / "pilot" / "model"
    say("[4/8] cold start of the scoring function (fresh interpreters)")
    raw["cold_start"] = cold_start(model_dir, requests[0])
    say("[5/8] batch scoring (make score) on synthetic customers")
    raw["batch_scoring"] = batch_scoring(model_dir)
    say("[6/8] explanation latency (bench/explain_latency.py)")
    raw["explain"] = existing_benchmark("explain_latency", ok_codes=(0, 1))  # 1: its own target missed
    say("[7/8] feature store (bench/feature_store.py)")
    raw["feature_store"] = existing_benchmark("feature_store")
    say(f"[8/8] HTTP load: make serve, then locust with {HTTP_USERS} clients for {HTTP_SECONDS} s")
    raw["http_load"] = http_load()
    load_end = os.getloadavg()
    (WORK_DIR / "raw.json").write_text(json.dumps(raw, indent=2) + "\n")  # kept if the report below fails
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "load_average": {"start": [round(v, 2) for v in load_start], "end": [round(v, 2) for v in load_end]},
        "suite_seconds": round(time.perf_counter() - started, 1),
        "figures": figures_of(raw, max(LOAD_SEEN)),
        **raw,
    }
    RESULTS_JSON.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    RESULTS_MD.write_text(table)
    say("")
    say(table)
    missed = [row["name"] for row in report["figures"] if row["meets_target"] is False]
    say(f"Wrote {RESULTS_JSON.relative_to(PROJECT_ROOT)} and {RESULTS_MD.relative_to(PROJECT_ROOT)}")
    say(f"Targets missed: {', '.join(missed)}" if missed else "Every target met.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
