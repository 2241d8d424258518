"""Command line of the local platform: `pilot`, `serve` and `score` (what `make pilot|serve|score` run).

Everything runs on the embedded AWS (moto) with the real template, state machine and handlers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT / "layers" / "platform"))  # the layer, as Lambda mounts it under /opt

from pydantic import ValidationError  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from local_cloud.platform import ExecutionResult, LocalPlatform, StateEvent  # noqa: E402
from local_cloud.principals import SigningClient, write_credentials_file  # noqa: E402
from mlops.data.schema import DataSchema  # noqa: E402
from mlops.pilot.criteria import evaluate_success_criteria  # noqa: E402
from mlops.pilot.payloads import PilotExperimentInput, PilotInput, PilotState  # noqa: E402
from mlops.pilot.use_case import (  # noqa: E402
    CampaignAssumptionsInput,
    PilotTargetsInput,
    UseCase,
    resolve_use_case,
)
from mlops.registry.approval import ApprovalPolicy  # noqa: E402

PILOT_STATE_MACHINE = "PilotStateMachine"
# Local runs retry after 1 s instead of 2 s, and warm scoring containers re-read the production alias every second.
LOCAL_PARAMETERS = {"RetryIntervalSeconds": "1", "ModelRefreshSeconds": "1", "BatchConcurrency": "4"}


def pilot_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT / "data" / "telecom_churn.csv")
    parser.add_argument("--schema", type=Path, default=PROJECT_ROOT / "data" / "telecom_churn.schema.json")
    parser.add_argument("--output-dir", type=Path, default=PROJECT_ROOT / "out" / "pilot")
    parser.add_argument("--output-file", type=Path, default=None, help="default: OUTPUT_DIR/pilot_results.json")
    # Targets and campaign economics: each option overrides the schema's `targets`/`campaign`, which overrides
    # the defaults (mlops.pilot.use_case); the run prints and records where every value came from.
    parser.add_argument("--target-accuracy", type=float, default=None, help="default: the schema's, else 0.87")
    parser.add_argument("--target-auc", type=float, default=None, help="default: the schema's, else 0.87")
    parser.add_argument("--max-latency", type=float, default=None, help="p95 scoring latency target in ms (80)")
    parser.add_argument(
        "--target-impact", type=float, default=None, help="least measured annual impact of the A/B test in USD"
    )
    parser.add_argument("--annual-value", type=float, default=None, help="annual value of a retained customer, USD")
    parser.add_argument("--offer-cost", type=float, default=None, help="cost of one retention offer, USD")
    parser.add_argument("--acceptance-rate", type=float, default=None, help="share of would-be churners an offer keeps")
    parser.add_argument("--customer-base", type=int, default=None, help="customers the impact is projected to")
    parser.add_argument(
        "--baseline",
        choices=["rule", "no_action"],
        default=None,
        help="what the A/B test's control serves: the schema's baseline_rule (the default when it declares one) "
        "or no offers",
    )
    parser.add_argument("--smoke-test-calls", type=int, default=200)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the execution")
    parser.add_argument("--verbose", action="store_true", help="show the functions' logs instead of a log file")
    parser.add_argument(
        "--manual-approval",
        action="store_true",
        help="no automatic approval: the pilot waits for POST /models/{version}/approve|reject, served on --port",
    )
    parser.add_argument(
        "--port", type=int, default=3000, help="where the API is served (make serve, --manual-approval)"
    )


@contextlib.contextmanager
def functions_log(args: argparse.Namespace) -> Iterator[TextIO]:
    """Send what the functions print (JSON logs and EMF metrics, as CloudWatch would hold them) and every
    library's log records (moto's Step Functions engine logs each failure it handles, with its internals) to
    OUTPUT_DIR/lambda.log for the whole command, and give back the console for progress lines."""
    console = sys.stdout
    if args.verbose:
        yield console
        return
    args.output_dir.mkdir(parents=True, exist_ok=True)
    with (
        (args.output_dir / "lambda.log").open("w") as log,
        contextlib.redirect_stdout(log),
        _log_records_to(log),
    ):
        yield console


class _JsonLogRecord(logging.Formatter):
    """A library's log record as one JSON document, like the functions' own records beside it."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "timestamp": self.formatTime(record),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


@contextlib.contextmanager
def _log_records_to(stream: TextIO) -> Iterator[None]:
    """The root logger writes to `stream` alone (warnings too, as log records); its handlers are restored after."""
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_JsonLogRecord())
    root.handlers = [handler]
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.handlers = saved


def use_case_lines(pilot_input: PilotInput, schema_path: Path) -> list[str]:
    """What the run will judge and assume, resolved as its PrepareData step will: the baseline, and the values
    neither the options nor the schema gave (defaults)."""
    try:
        use_case: UseCase = resolve_use_case(
            DataSchema.from_file(schema_path),
            pilot_input.targets,
            pilot_input.campaign_assumptions,
            pilot_input.experiment_design.baseline,
        )
    except ValueError as error:  # PrepareData refuses it too, and the run reports it
        return [f"The schema and options do not make a use case: {_one_line(str(error))}"]
    baseline = use_case.baseline
    if baseline.rule is not None:
        lines = [f"Baseline of the A/B test: {baseline.describe()} ({baseline.source})"]
    elif baseline.source == "input":
        lines = ["Baseline of the A/B test: no offers (no_action, as asked)"]
    else:
        lines = ["Baseline of the A/B test: no offers (no_action): the schema declares no baseline_rule"]
    values = use_case.model_dump()
    defaults = []
    for name in use_case.defaults_used():
        section, _, field = name.partition(".")
        if field:
            defaults.append(f"{field}={values[section][field]:g}")
    if defaults:
        lines.append(f"Defaults (neither options nor schema set them): {', '.join(defaults)}")
    return lines


def pilot_input(args: argparse.Namespace, data_key: str, schema_key: str) -> PilotInput:
    """The execution's input from the command's options (targets and economics left None fall to the schema's)."""
    return PilotInput(
        data_key=data_key,
        schema_key=schema_key,
        targets=PilotTargetsInput(
            accuracy=args.target_accuracy,
            auc_roc=args.target_auc,
            latency_p95_ms=args.max_latency,
            projected_annual_impact_usd=args.target_impact,
        ),
        campaign_assumptions=CampaignAssumptionsInput(
            annual_value_per_customer_usd=args.annual_value,
            offer_cost_usd=args.offer_cost,
            offer_acceptance_rate=args.acceptance_rate,
            customer_base=args.customer_base,
        ),
        seed=args.seed,
        smoke_test_calls=args.smoke_test_calls,
        experiment_design=PilotExperimentInput(baseline=args.baseline),
        approval=ApprovalPolicy(auto_approve=not getattr(args, "manual_approval", False)),
    )


def start_pilot(platform: LocalPlatform, args: argparse.Namespace) -> str:
    """Upload the data and start an execution of the pilot state machine; returns its ARN."""
    s3 = platform.client("s3")
    data_bucket = platform.stack.physical_id("DataBucket")
    data_key = f"datasets/{args.data.name}"
    schema_key = f"datasets/{args.schema.name}"
    s3.put_object(Bucket=data_bucket, Key=data_key, Body=args.data.read_bytes())
    s3.put_object(Bucket=data_bucket, Key=schema_key, Body=args.schema.read_bytes())
    return platform.start_execution(
        PILOT_STATE_MACHINE, pilot_input(args, data_key, schema_key).model_dump(mode="json")
    )


def run_pilot(platform: LocalPlatform, args: argparse.Namespace, console: TextIO | None = None) -> dict[str, Any]:
    """Upload the data, execute the pilot state machine, write pilot_results.json and the model files."""
    console = console or sys.stdout
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    print(
        f"Pilot: {args.data.name} on the local stack (moto), state machine {PILOT_STATE_MACHINE}",
        file=console,
        flush=True,
    )
    if getattr(args, "manual_approval", False):
        _serve_in_background(platform, args.port)
        key = ' -H "x-api-key: $LOCAL_API_KEY"' if os.environ.get("LOCAL_API_KEY") else ""
        credentials = write_operator_credentials(platform, args.output_dir)
        region = platform.stack.region
        print(
            f"Manual approval: the pilot waits at WaitForApproval. Decide as the local operator (SigV4), whose "
            f"credentials are in {credentials}:\n"
            f"  set -a; . {credentials}; set +a\n"
            f'  curl --aws-sigv4 "aws:amz:{region}:execute-api" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" '
            f"-X POST localhost:{args.port}/models/<version>/approve   (or /reject)\n"
            f"  (<version>: curl{key} -s localhost:{args.port}/models)",
            file=console,
            flush=True,
        )
    for line in use_case_lines(
        pilot_input(args, f"datasets/{args.data.name}", f"datasets/{args.schema.name}"), args.schema
    ):
        print(line, file=console, flush=True)
    arn = start_pilot(platform, args)
    result = platform.wait_for_execution(arn, timeout_s=args.timeout, on_state=lambda e: _print_state(e, console))
    elapsed = time.perf_counter() - started

    output = result.output or pilot_failure(result).state
    results = pilot_results(result, output, elapsed)
    results["audit"] = audit_summary(platform, started_at)
    output_dir: Path = args.output_dir
    if results["model_version"] and results["status"] == "SUCCEEDED":
        _download_model(platform, output["registration"]["artifacts"], output_dir / "model")
        # The results show what the model card says about explanations (global SHAP importance).
        card = json.loads((output_dir / "model" / "model_card.json").read_text())
        results["explainability"] = card["explainability"]
    if output.get("report"):
        results["report"] = str(_download_artifact(platform, output["report"], output_dir / "report.html"))
    output_file = args.output_file or output_dir / "pilot_results.json"
    output_file.parent.mkdir(parents=True, exist_ok=True)
    output_file.write_text(json.dumps(results, indent=2, default=str) + "\n")
    _print_summary(results, output_file, console)
    return results


_BACKGROUND_SERVERS: dict[int, threading.Thread] = {}
OPERATOR_CREDENTIALS_FILE = "operator-credentials.env"


def write_operator_credentials(platform: LocalPlatform, output_dir: Path) -> Path:
    """The local operator's credentials in OUTPUT_DIR/operator-credentials.env (0600; printed as a path only)."""
    return write_credentials_file(platform.operator, output_dir / OPERATOR_CREDENTIALS_FILE, platform.stack.region)


def _serve_in_background(platform: LocalPlatform, port: int) -> None:
    """The API, served while the pilot waits for a human decision (`make serve` then keeps this server)."""
    from local_cloud.api_server import ApiGatewayApp

    # The key `make serve` enforces, if any; signatures of the local principals on the operator routes, always.
    app = ApiGatewayApp.from_environment(platform.stack, platform.runtime, platform.principals)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="local-api", daemon=True)
    thread.start()
    _BACKGROUND_SERVERS[port] = thread


def pilot_results(result: ExecutionResult, output: dict[str, Any], elapsed_s: float) -> dict[str, Any]:
    """What pilot_results.json holds. A failed execution has no output: `output` is then the state it failed with
    (read from its history when not given), with where and why it failed, and every criterion evaluated on it."""
    failure = pilot_failure(result) if result.status != "SUCCEEDED" else None
    if failure is not None:
        output = output or failure.state
        criteria = _criteria_at_failure(failure)
    else:
        criteria = (output.get("criteria") or {}).get("criteria", {})
    registration = output.get("registration") or {}
    deployment = output.get("deployment") or {}
    passed = result.status == "SUCCEEDED" and bool(criteria) and all(c["passed"] for c in criteria.values())
    return {
        "status": "SUCCEEDED" if passed else "FAILED",
        "execution_status": result.status,
        "execution_time_s": round(elapsed_s, 3),
        "execution_arn": result.execution_arn,
        "failed_state": failure.failed_state if failure else None,
        "error": None if passed else _error_summary(result, failure),
        "model_version": registration.get("model_version"),
        "deployment_id": deployment.get("deployment_id"),
        "deployment": output.get("deployment"),
        "rollback": output.get("rollback")
        or ({"error": output["rollback_error"]} if output.get("rollback_error") else None),
        "algorithm": (output.get("training") or {}).get("selected_algorithm"),
        "metrics": (output.get("evaluation") or {}).get("metrics"),
        "cv_auc": (output.get("training") or {}).get("cv_auc"),
        "latency_ms": (output.get("smoke_test") or {}).get("latency_ms"),
        "feature_store": output.get("features"),
        "dataset": {k: v for k, v in (output.get("dataset") or {}).items() if k not in {"train", "test", "schema_ref"}},
        "success_criteria": criteria,
        "states": [
            {
                "name": s.name,
                "type": s.type,
                "status": s.status,
                "duration_s": round(s.duration_s, 3),
                "error": s.error,
                "message": _error_message(s.cause)[0] if s.error else None,
            }
            for s in result.states
        ],
        "artifacts": registration.get("artifacts"),
        "lineage": lineage(output, result.execution_arn),
        "experiment": experiment_results(output),
        "decision_threshold": (output.get("training") or {}).get("decision_threshold"),
        "monitoring": output.get("monitoring")
        or ({"error": output["monitoring_error"]} if output.get("monitoring_error") else None),
        "report": None,
        "report_error": output.get("report_error"),
    }


@dataclass(frozen=True)
class PilotFailure:
    """Where and why a pilot execution failed, and the state it had then: every step's report so far."""

    state: dict[str, Any]
    failed_state: str | None
    error: str | None
    message: str | None
    stack_trace: list[str] | None = None


def pilot_failure(result: ExecutionResult) -> PilotFailure:
    """A failed execution has no output, but its history holds each state's data. The state is the input of the
    last state entered (the Fail state's: every report, and `$.error`). The failing state is the first whose
    output holds `$.error`: a Task whose Catch stored its error there, or the Pass a criteria gate routed to
    (ModelBelowTargets, CriteriaNotMet, ExperimentCriteriaNotMet), which stores what failed."""
    data = list(_state_data(result.history))
    state = next((d for kind, _, d in reversed(data) if kind == "entered"), {})
    for kind, name, d in data:
        if kind == "exited" and isinstance(d.get("error"), dict):
            return PilotFailure(state, name, d["error"].get("Error"), *_error_message(d["error"].get("Cause")))
    # No Catch stored the error: the state that failed the execution, else the execution's own error.
    failed = next((s for s in reversed(result.states) if s.error and s.type != "Fail"), None)
    if failed is not None:
        return PilotFailure(state, failed.name, failed.error, *_error_message(failed.cause))
    return PilotFailure(state, None, result.error, *_error_message(result.cause))


def _state_data(history: list[dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """("entered" or "exited", the state's name, its input or output) of each history event that has them."""
    for event in history:
        if entered := event.get("stateEnteredEventDetails"):
            kind, name, text = "entered", entered["name"], entered.get("input")
        elif exited := event.get("stateExitedEventDetails"):
            kind, name, text = "exited", exited["name"], exited.get("output")
        else:
            continue
        try:
            data = json.loads(text or "null")
        except ValueError:  # truncated: AWS keeps 256 KB of a state's data
            continue
        if isinstance(data, dict):
            yield kind, name, data


def _error_message(cause: str | None) -> tuple[str | None, list[str] | None]:
    """An error's message and, apart, its stack trace. A Lambda error's cause is the runtime's JSON (errorType,
    errorMessage, stackTrace); a criteria gate's, the JSON list of what failed; any other is the message."""
    try:
        parsed = json.loads(cause) if cause else None
    except ValueError:
        return cause, None
    if isinstance(parsed, dict) and "errorMessage" in parsed:
        return str(parsed["errorMessage"]), parsed.get("stackTrace")
    if isinstance(parsed, list):
        return "; ".join(str(item) for item in parsed), None
    return cause, None


def _error_summary(result: ExecutionResult, failure: PilotFailure | None) -> dict[str, Any]:
    if failure is None:  # the execution succeeded, yet a criterion failed
        return {"state": None, "error": result.error, "message": result.cause, "stack_trace": None}
    return {
        "state": failure.failed_state,
        "error": failure.error,
        "message": failure.message,
        "stack_trace": failure.stack_trace,
    }


def _criteria_at_failure(failure: PilotFailure) -> dict[str, Any]:
    """Every criterion on the state the run failed with, by the criteria steps' own function: those the run
    never reached fail with no value and a detail."""
    try:
        state = PilotState.model_validate(failure.state)
    except ValidationError:  # no pilot state to judge: the execution failed before its first step
        return {}
    report = evaluate_success_criteria(state, "experiment", failed_at=failure.failed_state)
    return report.model_dump(mode="json")["criteria"]


def lineage(output: dict[str, Any], execution_arn: str) -> dict[str, Any] | None:
    """Where the model version came from: data, features, training run, artifacts."""
    registration, dataset = output.get("registration") or {}, output.get("dataset") or {}
    if not registration:
        return None
    features = output.get("features") or {}
    return {
        "model_version": registration.get("model_version"),
        "execution_arn": execution_arn,
        "dataset_key": dataset.get("data_key"),
        "dataset_sha256": dataset.get("dataset_sha256"),
        "feature_source": dataset.get("feature_source"),
        "feature_group": features.get("feature_group"),
        "feature_group_version": features.get("group_version"),
        "features_as_of": features.get("as_of"),
        "algorithm": (output.get("training") or {}).get("selected_algorithm"),
        "artifacts_sha256": {name: ref["sha256"] for name, ref in (registration.get("artifacts") or {}).items()},
    }


def audit_summary(platform: LocalPlatform, since: datetime) -> dict[str, Any]:
    """The run's audit trail through the API: a digest is written (as the hourly job would), every chain is
    verified against it, and the state-changing events since the run started are listed in order."""
    platform.runtime.invoke("AuditDigestFunction", {"source": "aws.events", "detail-type": "Scheduled Event"})
    api = SigningClient(platform.api_app(), platform.operator, platform.stack.region)  # GET /audit is AWS_IAM
    verification = api.get("/audit/verify").get_json()
    records: list[dict[str, Any]] = []
    query: dict[str, Any] = {"since": since.isoformat(), "limit": 1000}
    while True:
        page = api.get("/audit", query_string=query).get_json()
        records += page["records"]
        if not page.get("next_page_token"):
            break
        query["page_token"] = page["next_page_token"]
    events = [r["event"] for r in records]
    predictions = [e for e in events if e["event_type"] == "prediction"]
    return {
        "verification": {k: verification.get(k) for k in ("valid", "records_checked", "first_broken")}
        | {
            "chains": len(verification.get("chains", [])),
            "digests_checked": sum(c["digests_checked"] for c in verification.get("chains", [])),
        },
        "records": len(records),
        "predictions_audited": sum(len(e["details"].get("predictions", [None])) for e in predictions),
        "state_changes": [
            {"event_type": e["event_type"], "entity": e["entity"], "actor": e["actor"], "occurred_at": e["occurred_at"]}
            for e in events
            if e["event_type"] not in ("prediction", "audit_digest")  # the trail's own bookkeeping
        ],
    }


def experiment_results(output: dict[str, Any]) -> dict[str, Any] | None:
    """The A/B test of the run: the experiment, the simulated campaign's results and the business impact."""
    started, campaign, error = output.get("experiment"), output.get("campaign") or {}, output.get("experiment_error")
    if started is None and error is None:
        return None
    return {
        **(started or {}),
        "campaign": {
            k: campaign.get(k)
            for k in (
                "customers",
                "held_out_customers",
                "simulated_customers",
                "generator",
                "acceptance_seed",
                "variants",
            )
        }
        if campaign
        else None,
        "results": campaign.get("results"),
        "business_impact": campaign.get("business_impact"),
        "error": error,
    }


def _print_state(event: StateEvent, console: Any) -> None:
    mark = "ok" if event.status == "SUCCEEDED" else event.status
    detail = ""
    if event.error:  # the error's message, never a Lambda's stack trace; a Fail state's cause is its fixed text
        message = None if event.type == "Fail" else _error_message(event.cause)[0]
        detail = f"  ({event.error}: {_one_line(message)})" if message else f"  ({event.error})"
    print(f"  {event.name:<26} {mark:<10} {event.duration_s:7.2f} s{detail}", file=console, flush=True)


def _print_summary(results: dict[str, Any], output_file: Path, console: Any) -> None:
    succeeded = results["status"] == "SUCCEEDED"
    if succeeded:
        lines = [f"Pilot SUCCEEDED in {results['execution_time_s']:.1f} s; model {results['model_version']}"]
        lines += [
            f"  {'PASS' if c['passed'] else 'FAIL'}  {name}: {c['value']} {c['comparison']} {c['target']}"
            for name, c in results["success_criteria"].items()
        ]
    else:
        at = f" at {results['failed_state']}" if results.get("failed_state") else ""
        lines = [f"Pilot FAILED{at} after {results['execution_time_s']:.1f} s", *_failure_lines(results)]
    if features := results.get("feature_store"):
        lines.append(
            f"Feature store: {features['rows']} records of {features['feature_group']} ingested "
            f"({features['written']} written online, {features['skipped_not_newer']} already current; "
            f"{features['rows_per_second']:,.0f} rows/s)"
        )
    lines += _experiment_summary(results.get("experiment"))
    if monitoring := results.get("monitoring"):
        lines.append(_monitoring_summary(monitoring))
    if audit := results.get("audit"):
        check = audit["verification"]
        lines.append(
            f"Audit trail: {audit['records']} records this run ({audit['predictions_audited']} predictions, "
            f"{len(audit['state_changes'])} state changes); chains {'VALID' if check['valid'] else 'BROKEN'} "
            f"({check['records_checked']} records in {check['chains']} chains, {check['digests_checked']} digests)"
        )
    if results.get("report"):
        lines.append(f"Report: {results['report']}")
    if not succeeded:
        lines.append(_model_outcome(results))
    lines.append(f"Results: {output_file}")
    print("\n".join(lines), file=console, flush=True)


_UNMET = {">=": "<", "<=": ">", "==": "!="}


def _failure_lines(results: dict[str, Any]) -> list[str]:
    """One line per failed criterion and per step that failed, then the criteria the run never checked."""
    criteria = results["success_criteria"]
    lines = [
        f"  FAILED {name}: {_shown(c['value'])} {_UNMET.get(c['comparison'], 'vs')} target {_shown(c['target'])}"
        for name, c in criteria.items()
        if not c["passed"] and c["value"] is not None
    ]
    error = results["error"] or {}
    for state in results["states"]:
        # Steps whose error a Catch stored, or that failed the execution; not a criteria gate (its lines are above).
        if state["status"] == "CAUGHT" or (state["status"] == "FAILED" and state["type"] != "Fail"):
            message = error["message"] if state["name"] == error.get("state") else state["message"]
            lines.append(f"  FAILED at {state['name']}: {_one_line(message or state['error'])}")
    if not lines:  # a gate failed the run with nothing measured failing, or the execution failed on its own
        lines.append(f"  FAILED at {error.get('state') or 'the execution'}: {_one_line(error.get('message'))}")
    unchecked: dict[str, list[str]] = {}
    for name, c in criteria.items():
        if c["value"] is None and not c["passed"]:  # never measured: the detail says why
            unchecked.setdefault(c.get("detail") or "not measured", []).append(name)
    lines += [f"  NOT CHECKED {', '.join(names)} ({detail})" for detail, names in unchecked.items()]
    return lines


def _model_outcome(results: dict[str, Any]) -> str:
    """What became of the run's model, if it registered one."""
    version = results["model_version"]
    if version is None:
        return "Model: no model was registered"
    deployed = results.get("deployment") is not None
    line = f"Model: {version} was registered" + (" and deployed" if deployed else ", not deployed")
    rollback = results.get("rollback") or {}
    if "error" in rollback:
        return f"{line}; rolling production back failed ({rollback['error'].get('Error')})"
    if rollback:
        return f"{line}; production was rolled back to {rollback.get('model_version') or 'no model'}"
    return f"{line} and keeps serving" if deployed else line


def _shown(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _one_line(text: str | None, limit: int = 300) -> str:
    """A message on one console line (pydantic's span several); the results file holds it whole."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _monitoring_summary(monitoring: dict[str, Any]) -> str:
    if "error" in monitoring:  # the Catch's {Error, Cause}: the message, not a Lambda's stack trace
        error = monitoring["error"]
        return f"Monitoring: failed ({error.get('Error')}: {_one_line(_error_message(error.get('Cause'))[0])})"
    drift = {True: "DRIFT in " + ", ".join(monitoring["drifted_features"] or ["the score"]), False: "no drift"}.get(
        monitoring["drift_detected"], "no verdict (too few rows)"
    )
    accuracy, auc = monitoring["accuracy"], monitoring.get("auc")
    return (
        f"Monitoring (later window: {monitoring.get('window_customers', 0)} customers no earlier step used): "
        f"{drift} (max PSI {monitoring['max_feature_psi'] or 0:.3f}); from {monitoring['outcomes_matched']} outcomes "
        f"joined by prediction id, accuracy {'n/a' if accuracy is None else f'{accuracy:.3f}'}, "
        f"AUC {'n/a' if auc is None else f'{auc:.3f}'}"
    )


def _experiment_summary(experiment: dict[str, Any] | None) -> list[str]:
    if not experiment or not experiment.get("results"):
        return []
    results, impact = experiment["results"], experiment["business_impact"]
    primary, measured, truth = impact["primary_effect"], impact["measured_by_experiment"], impact["simulated_truth"]
    low, high = primary["confidence_interval"]
    assumptions = impact["assumptions"]

    def usd(value: float | None) -> str:
        return "?" if value is None else f"${value:,.0f}"

    m_low, m_high = measured["projected_annual_impact_ci_usd"]
    return [
        f"A/B test {experiment['experiment_id']}: {results['units']:,} customers of {primary['planned_units']:,} "
        f"planned ({experiment['campaign']['held_out_customers']:,} held-out, "
        f"{experiment['campaign']['simulated_customers']:,} simulated) "
        f"{results['sample_ratio']['observed']} (SRM p={results['sample_ratio']['p_value']:.3f})",
        f"  {primary['metric']} ({primary['estimate']}): model - baseline = {primary['difference']:+.4f} "
        f"[{low:+.4f}, {high:+.4f}], "
        f"p={primary['p_value']:.4f}, always-valid p={primary['always_valid_p_value']:.4f}",
        f"  measured annual impact ({measured['estimate']}) {usd(measured['projected_annual_impact_usd'])} "
        f"(95% CI {usd(m_low)} to {usd(m_high)}); simulated truth {usd(truth['projected_annual_impact_usd'])}",
        f"  for {assumptions['customer_base']:,} customers at "
        f"${assumptions['annual_value_per_customer_usd']:,.0f}/year, "
        f"${assumptions['offer_cost_usd']:,.0f} per offer, {assumptions['offer_acceptance_rate']:.0%} of offered "
        "would-be churners staying",
    ]


def _download_artifact(platform: LocalPlatform, ref: dict[str, Any], path: Path) -> Path:
    """An artifact of the stack's bucket to a local file, verified by its SHA-256."""
    from mlops.core.artifacts import ArtifactRef, ArtifactStore

    store = ArtifactStore(platform.stack.physical_id("ArtifactBucket"), platform.client("s3"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(store.get_verified(ArtifactRef.model_validate(ref)))
    return path


def _download_model(platform: LocalPlatform, artifacts: dict[str, Any], model_dir: Path) -> None:
    from mlops.serving.batch import MODEL_FILES

    for name, filename in MODEL_FILES.items():
        _download_artifact(platform, artifacts[name], model_dir / filename)


def cmd_pilot(args: argparse.Namespace) -> int:
    # The log first: deploying the template logs too (samtranslator).
    with functions_log(args) as console, LocalPlatform(PROJECT_ROOT, parameter_overrides=LOCAL_PARAMETERS) as platform:
        results = run_pilot(platform, args, console)
    return 0 if results["status"] == "SUCCEEDED" else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from local_cloud.api_server import ApiGatewayApp, serve

    with LocalPlatform(PROJECT_ROOT, parameter_overrides=LOCAL_PARAMETERS) as platform, functions_log(args) as console:
        credentials = write_operator_credentials(platform, args.output_dir)  # the operator routes need them
        if not args.skip_pilot and run_pilot(platform, args, console)["status"] != "SUCCEEDED":
            print("The pilot failed; serving anyway (the API answers 503 until a model is deployed).", file=console)
        # Keys are enforced only with LOCAL_API_KEY set (sam local start-api never enforces them): say which; and
        # how to sign the operator routes (always enforced), with the credentials written above.
        app = ApiGatewayApp.from_environment(platform.stack, platform.runtime, platform.principals)
        base_url = f"http://{args.host}:{args.port}"
        print(f"Serving the template's API on {base_url} (Ctrl-C stops)", file=console, flush=True)
        print(app.api_key_summary(base_url, credentials_file=credentials), file=console, flush=True)
        if args.port in _BACKGROUND_SERVERS:  # already serving since the pilot waited for approval
            _BACKGROUND_SERVERS[args.port].join()
        else:
            serve(app, host=args.host, port=args.port)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from mlops.serving.batch import load_model_dir, score_csv

    loaded = load_model_dir(args.model_dir, threads=getattr(args, "threads", 1))
    started = time.perf_counter()
    rows = score_csv(loaded, args.input, args.output)
    elapsed = time.perf_counter() - started
    print(
        f"Scored {rows} rows with model {loaded.version.version} in {elapsed:.2f} s "
        f"({rows / max(elapsed, 1e-9):,.0f} rows/s) -> {args.output}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local_cloud", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    pilot = commands.add_parser("pilot", help="run the pilot state machine end to end")
    pilot_arguments(pilot)
    pilot.set_defaults(run=cmd_pilot)
    serve = commands.add_parser("serve", help="run the pilot, then serve the template's API routes")
    pilot_arguments(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--skip-pilot", action="store_true", help="serve with no model deployed")
    serve.set_defaults(run=cmd_serve)
    score = commands.add_parser("score", help="batch-score a CSV with a pilot's model directory")
    score.add_argument("--model-dir", type=Path, required=True)
    score.add_argument("--input", type=Path, required=True)
    score.add_argument("--output", type=Path, required=True)
    score.add_argument(
        "--threads",
        type=int,
        default=1,
        help="ONNX Runtime intra-op threads: faster on several cores, but another thread count can change a "
        "probability's 6th decimal (1, the default, gives the scores the batch-scoring state machine and the API give)",
    )
    score.set_defaults(run=cmd_score)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
