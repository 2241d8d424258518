"""The monitoring section of template.yaml: the pilot spec's alarms with their thresholds, the topic they notify
and the dashboard, checked against the metrics the handlers emit (METRIC_CONTRACT below)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from helpers import load_template, parameter_value

# ------------------------------------------------------------------------------------------- the contract
NAMESPACE = "ServerlessMLOps"  # Globals POWERTOOLS_METRICS_NAMESPACE
SCORE_BUCKETS = frozenset(f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10))  # "0.0-0.1" ... "0.9-1.0"


@dataclass(frozen=True)
class EmittedMetric:
    """A metric the handlers emit in NAMESPACE: its dimension names, the services that emit it (None: every
    instrumented function) and, where the set is closed, the values a dimension takes."""

    dimensions: frozenset[str]
    services: frozenset[str] | None = None
    values: dict[str, frozenset[str]] = field(default_factory=dict)


def _emitted(*services: str, extra: str | None = None, values: frozenset[str] | None = None) -> EmittedMetric:
    dimensions = frozenset({"service", extra} if extra else {"service"})
    return EmittedMetric(dimensions, frozenset(services) or None, {extra: values} if extra and values else {})


# What the handlers must emit (Powertools adds `service` = the function's POWERTOOLS_SERVICE_NAME to each).
METRIC_CONTRACT: dict[str, EmittedMetric] = {
    # mlops.core.observability.instrumented_handler, every function (ClientErrors: API functions only)
    "Requests": _emitted(),
    "Latency": _emitted(),
    "Errors": _emitted(),
    "ClientErrors": _emitted(),
    # Powertools' cold-start metric, every function
    "ColdStart": _emitted(extra="function_name"),
    # the scoring function
    "Predictions": _emitted("scoring"),
    "PredictedChurn": _emitted("scoring"),
    "PredictionsByVariant": _emitted("scoring", extra="variant"),
    "PredictionsByModelVersion": _emitted("scoring", extra="model_version"),
    "ChurnScoreBucket": _emitted("scoring", extra="bucket", values=SCORE_BUCKETS),
    "CaptureFailures": _emitted("scoring"),
    # the scheduled model monitor (hourly)
    "DriftDetected": _emitted("model-monitor"),
    "DriftedFeatures": _emitted("model-monitor"),
    "MaxFeaturePSI": _emitted("model-monitor"),
    "ScorePSI": _emitted("model-monitor"),
    "MonitoredRows": _emitted("model-monitor"),
    "ModelAccuracy": _emitted("model-monitor"),
    "ModelRecall": _emitted("model-monitor"),
    "OutcomesMatched": _emitted("model-monitor"),
    # the outcomes API
    "OutcomesLogged": _emitted("monitoring"),
    # audit verification (API) and the hourly digest
    "AuditChainBroken": _emitted("audit", "audit-digest"),
}

# AWS's own metrics the alarms and the dashboard may read: namespace -> metric names, dimension names.
AWS_METRICS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "AWS/Lambda": (frozenset({"Errors", "Throttles", "ConcurrentExecutions"}), frozenset({"FunctionName"})),
    "AWS/ApiGateway": (frozenset({"5XXError", "4XXError", "Latency"}), frozenset({"ApiName", "Stage"})),
    "AWS/States": (frozenset({"ExecutionsFailed", "ExecutionsTimedOut"}), frozenset({"StateMachineArn"})),
    "AWS/SQS": (
        frozenset({"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"}),
        frozenset({"QueueName"}),
    ),
}


# ------------------------------------------------------------------------------------------- the pilot spec
@dataclass(frozen=True)
class SpecAlarm:
    alert: str  # as the pilot spec words it
    logical_id: str
    metric: str
    service: str
    statistics: frozenset[str]
    comparison: str
    threshold: float
    period: int
    per: str | None = None  # the alarm is on metric / per (a rate)


PILOT_SPEC_ALARMS = [
    SpecAlarm(
        alert="model accuracy (from logged outcomes) below 80%",
        logical_id="ModelAccuracyAlarm",
        metric="ModelAccuracy",
        service="model-monitor",
        statistics=frozenset({"Minimum", "Average"}),
        comparison="LessThanThreshold",
        threshold=0.80,
        period=3600,
    ),
    SpecAlarm(
        alert="p99 latency above 100 ms",
        logical_id="ScoringLatencyP99Alarm",
        metric="Latency",
        service="scoring",
        statistics=frozenset({"p99"}),
        comparison="GreaterThanThreshold",
        threshold=100,
        period=300,
    ),
    SpecAlarm(
        alert="errors: more than 1% of scoring requests fail",
        logical_id="ScoringErrorRateAlarm",
        metric="Errors",
        per="Requests",
        service="scoring",
        statistics=frozenset({"Sum"}),
        comparison="GreaterThanThreshold",
        threshold=0.01,
        period=300,
    ),
    SpecAlarm(
        alert="data drift detected",
        logical_id="DataDriftAlarm",
        metric="DriftDetected",
        service="model-monitor",
        statistics=frozenset({"Maximum"}),
        comparison="GreaterThanOrEqualToThreshold",
        threshold=1,
        period=3600,
    ),
]

DASHBOARD_SECTIONS = {
    "Model performance": {
        "ModelAccuracy",
        "ModelRecall",
        "OutcomesMatched",
        "PredictionsByModelVersion",
        "ChurnScoreBucket",
    },
    "Data quality": {"MaxFeaturePSI", "ScorePSI", "DriftedFeatures", "DriftDetected", "MonitoredRows"},
    "Business impact": {"Predictions", "PredictedChurn", "PredictionsByVariant", "OutcomesLogged"},
    "Infrastructure": {"Latency", "Requests", "Errors", "ClientErrors", "ColdStart", "Throttles", "ExecutionsFailed"},
}
PSI_SIGNIFICANT_SHIFT = 0.2


# ------------------------------------------------------------------------------------------- reading the template
@dataclass(frozen=True)
class MetricRef:
    namespace: str
    name: str
    dimensions: dict[str, str | None]  # None: any value (a SEARCH over that dimension)
    stat: str | None = None
    period: int | None = None
    id: str | None = None


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert found, "no alarm in template.yaml"
    return found


def substitute(text: str, template: dict[str, Any]) -> str:
    """A Fn::Sub string with every ${...} replaced: parameters by their defaults (Number ones unquoted, as they
    sit in the JSON), pseudo parameters and resources by placeholders. An unknown name fails, as it would deploy."""
    parameters, resources = template.get("Parameters", {}), template["Resources"]

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in parameters:
            return str(parameters[name]["Default"])
        if name.startswith("AWS::"):
            return f"pseudo-{name.removeprefix('AWS::')}"
        assert name.split(".")[0] in resources, f"${{{name}}} names no parameter or resource"
        return f"ref-{name.replace('.', '-')}"

    return re.sub(r"\$\{([^}]+)\}", replace, text)


def alarm_metrics(alarm: dict[str, Any], template: dict[str, Any]) -> list[MetricRef]:
    """Every metric an alarm reads (the single metric, or each MetricStat of its metric math)."""
    if "MetricName" in alarm:
        dimensions = {d["Name"]: parameter_value(template, d["Value"]) for d in alarm.get("Dimensions", [])}
        stat = alarm.get("Statistic") or alarm.get("ExtendedStatistic")
        return [MetricRef(alarm["Namespace"], alarm["MetricName"], dimensions, stat, alarm["Period"])]
    found = []
    for query in alarm["Metrics"]:
        if "MetricStat" in query:
            stat, metric = query["MetricStat"], query["MetricStat"]["Metric"]
            dimensions = {d["Name"]: parameter_value(template, d["Value"]) for d in metric.get("Dimensions", [])}
            found.append(
                MetricRef(
                    metric["Namespace"], metric["MetricName"], dimensions, stat["Stat"], stat["Period"], query["Id"]
                )
            )
    return found


def contract_violations(metric: MetricRef, services: set[str]) -> list[str]:
    """Why the handlers (or AWS) would never publish this metric with these dimensions; empty when they do."""
    where = f"{metric.namespace}/{metric.name} {metric.dimensions}"
    if metric.namespace in AWS_METRICS:
        names, dimensions = AWS_METRICS[metric.namespace]
        problems = [] if metric.name in names else [f"{where}: not an {metric.namespace} metric this stack reads"]
        if set(metric.dimensions) != dimensions:
            problems.append(f"{where}: {metric.namespace} dimensions are {sorted(dimensions)}")
        return problems
    if metric.namespace != NAMESPACE:
        return [f"{where}: namespace is not {NAMESPACE}"]
    contract = METRIC_CONTRACT.get(metric.name)
    if contract is None:
        return [f"{where}: no handler emits {metric.name}"]
    problems = []
    if set(metric.dimensions) != contract.dimensions:
        problems.append(f"{where}: emitted with dimensions {sorted(contract.dimensions)}")
    service = metric.dimensions.get("service")
    allowed = contract.services if contract.services is not None else services
    if service is not None and service not in allowed:
        problems.append(f"{where}: emitted by services {sorted(allowed)} only")
    for dimension, values in contract.values.items():
        value = metric.dimensions.get(dimension)
        if value is not None and value not in values:
            problems.append(f"{where}: {dimension} takes only {sorted(values)}")
    return problems


@pytest.fixture(scope="module")
def services(template: dict[str, Any]) -> set[str]:
    """The services that emit metrics: every function's POWERTOOLS_SERVICE_NAME, and those the contract names."""
    in_template = {
        r["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
    }
    return in_template | {s for m in METRIC_CONTRACT.values() for s in m.services or ()}


# ------------------------------------------------------------------------------------------- alarms
def test_the_contract_namespace_is_the_functions_namespace(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE


@pytest.mark.parametrize("spec", PILOT_SPEC_ALARMS, ids=lambda s: s.logical_id)
def test_pilot_spec_alarm_exists_with_its_threshold(
    spec: SpecAlarm, template: dict[str, Any], alarms: dict[str, dict[str, Any]]
) -> None:
    # Given the alarm for this alert of the pilot spec
    assert spec.logical_id in alarms, f"no alarm for the pilot spec's '{spec.alert}'"
    alarm = alarms[spec.logical_id]
    # When reading the metrics it evaluates
    metrics = {m.name: m for m in alarm_metrics(alarm, template)}
    # Then it reads the stated metric of the stated service, with the stated statistic and period
    wanted = [spec.metric] + ([spec.per] if spec.per else [])
    assert set(metrics) == set(wanted), f"{spec.alert}: reads {sorted(metrics)}"
    for name in wanted:
        metric = metrics[name]
        assert metric.namespace == NAMESPACE
        assert metric.dimensions == {"service": spec.service}
        assert metric.stat in spec.statistics
        assert metric.period == spec.period
    # And a rate is the metric divided by its denominator, the only series returned
    if spec.per:
        returned = [q for q in alarm["Metrics"] if q.get("ReturnData", True)]
        assert len(returned) == 1
        assert "Expression" in returned[0]
        numerator, denominator = metrics[spec.metric].id, metrics[spec.per].id
        assert re.search(rf"\b{numerator}\b.*/\s*{denominator}\b", returned[0]["Expression"]), returned[0]
    # And it fires on the stated side of the stated threshold (an operator may tune it through a parameter)
    assert alarm["ComparisonOperator"] == spec.comparison
    assert float(parameter_value(template, alarm["Threshold"])) == pytest.approx(spec.threshold)


def test_every_alarm_notifies_the_topic_and_says_what_to_do(alarms: dict[str, dict[str, Any]]) -> None:
    for logical_id, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], logical_id
        assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}], logical_id
        assert len(alarm.get("AlarmDescription", "")) > 80, f"{logical_id}: say what happened and what to do"
        # Missing data is a deliberate choice per metric, never the default
        assert alarm.get("TreatMissingData") in {"breaching", "notBreaching", "ignore", "missing"}, logical_id


def test_every_alarm_reads_a_metric_that_is_emitted(
    template: dict[str, Any], alarms: dict[str, dict[str, Any]], services: set[str]
) -> None:
    problems = [
        p for a in alarms.values() for m in alarm_metrics(a, template) for p in contract_violations(m, services)
    ]
    assert problems == []


def test_alarm_names_are_unique_per_stack(alarms: dict[str, dict[str, Any]]) -> None:
    names = [a["AlarmName"]["Fn::Sub"] for a in alarms.values()]
    assert all(n.startswith("${AWS::StackName}-") for n in names)
    assert len(set(names)) == len(names)


def test_alarm_topic_uses_a_key_cloudwatch_may_use(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    topic = resources["AlarmTopic"]
    assert topic["Type"] == "AWS::SNS::Topic"
    # Given the topic's encryption key: CloudWatch cannot publish to a topic under alias/aws/sns
    key_ref = topic["Properties"]["KmsMasterKeyId"]
    assert isinstance(key_ref, dict), "an AWS managed key (alias/aws/sns) would silence every alarm"
    key = resources[key_ref["Ref"]]
    assert key["Type"] == "AWS::KMS::Key"
    # Then its policy lets the CloudWatch service encrypt messages for the topic
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com"]
    assert cloudwatch
    assert cloudwatch[0]["Effect"] == "Allow"
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch[0]["Action"])


def test_email_subscription_only_when_an_address_is_given(template: dict[str, Any]) -> None:
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    assert subscription["Condition"] == "HasAlarmEmail"
    assert template["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert subscription["Properties"]["TopicArn"] == {"Ref": "AlarmTopic"}
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


# ------------------------------------------------------------------------------------------- dashboard
@pytest.fixture(scope="module")
def dashboard(template: dict[str, Any]) -> dict[str, Any]:
    body = template["Resources"]["MonitoringDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return json.loads(substitute(body, template))


def widget_metrics(widget: dict[str, Any]) -> Iterator[MetricRef]:
    """The metrics of a metric widget: its rows ("." repeats the row above) and its SEARCH expressions."""
    previous: list[Any] = []
    for row in widget["properties"].get("metrics", []):
        assert isinstance(row, list), f"a metrics row must be an array: {row}"
        parts = [p for p in row if not isinstance(p, dict)]
        options = next((p for p in row if isinstance(p, dict)), {})
        if not parts:
            yield from search_metrics(options.get("expression", ""))
            continue
        parts = [previous[i] if p == "." else p for i, p in enumerate(parts)]
        previous = parts
        namespace, name, *dimensions = parts
        assert len(dimensions) % 2 == 0, row
        yield MetricRef(namespace, name, dict(zip(dimensions[::2], dimensions[1::2], strict=True)), options.get("stat"))


def search_metrics(expression: str) -> Iterator[MetricRef]:
    for schema, terms in re.findall(r"SEARCH\(\s*'\{([^}]*)\}([^']*)'", expression):
        namespace, *dimensions = [s.strip() for s in schema.split(",")]
        values = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', terms))
        assert "MetricName" in values, f"a SEARCH without MetricName: {expression}"
        yield MetricRef(namespace, values.pop("MetricName"), {d: values.get(d) for d in dimensions})


def sections(dashboard: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The widgets under each '## <section>' text widget, by position (a section runs to the next header)."""
    headers = sorted(
        (w["y"], w["properties"]["markdown"].removeprefix("## ").splitlines()[0].strip())
        for w in dashboard["widgets"]
        if w["type"] == "text" and w["properties"]["markdown"].startswith("## ")
    )
    found: dict[str, list[dict[str, Any]]] = {title: [] for _, title in headers}
    for widget in dashboard["widgets"]:
        above = [title for y, title in headers if y < widget["y"]]
        if widget["type"] == "metric" and above:
            found[above[-1]].append(widget)
    return found


def test_dashboard_has_the_four_sections_with_their_metrics(dashboard: dict[str, Any]) -> None:
    # When grouping the widgets under their section headers
    found = sections(dashboard)
    # Then the four sections are there, in order, each showing its metrics
    assert list(found) == list(DASHBOARD_SECTIONS)
    for title, wanted in DASHBOARD_SECTIONS.items():
        shown = {m.name for w in found[title] for m in widget_metrics(w)}
        assert wanted <= shown, f"{title} lacks {sorted(wanted - shown)}"


def test_dashboard_widgets_fit_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    taken: set[tuple[int, int]] = set()
    for widget in dashboard["widgets"]:
        assert widget["x"] >= 0, widget
        assert widget["x"] + widget["width"] <= 24, widget
        cells = {
            (widget["x"] + dx, widget["y"] + dy) for dx in range(widget["width"]) for dy in range(widget["height"])
        }
        assert not cells & taken, f"overlaps: {widget['properties'].get('title')}"
        taken |= cells


def test_every_dashboard_metric_is_emitted(dashboard: dict[str, Any], services: set[str]) -> None:
    metrics = [m for w in dashboard["widgets"] if w["type"] == "metric" for m in widget_metrics(w)]
    assert metrics
    problems = [p for m in metrics for p in contract_violations(m, services)]
    assert problems == []
    # And the score distribution shows every bucket
    shown = {m.dimensions["bucket"] for m in metrics if m.name == "ChurnScoreBucket"}
    assert shown == SCORE_BUCKETS


def test_dashboard_lists_every_alarm(
    template: dict[str, Any], dashboard: dict[str, Any], alarms: dict[str, dict[str, Any]]
) -> None:
    # Given the alarms' names, resolved as the dashboard body is
    names = {substitute(a["AlarmName"]["Fn::Sub"], template) for a in alarms.values()}
    # When reading the alarm status widget
    (widget,) = [w for w in dashboard["widgets"] if w["type"] == "alarm"]
    listed = {arn.split(":alarm:")[1] for arn in widget["properties"]["alarms"]}
    # Then it shows exactly the template's alarms
    assert listed == names


def test_dashboard_marks_the_alarm_thresholds(
    template: dict[str, Any], dashboard: dict[str, Any], alarms: dict[str, dict[str, Any]]
) -> None:
    def lines_on(metric_name: str, stat: str | None = None) -> set[float]:
        return {
            float(a["value"])
            for w in dashboard["widgets"]
            if w["type"] == "metric"
            and any(m.name == metric_name and (stat is None or m.stat == stat) for m in widget_metrics(w))
            for a in w["properties"].get("annotations", {}).get("horizontal", [])
        }

    accuracy = float(parameter_value(template, alarms["ModelAccuracyAlarm"]["Threshold"]))
    latency = float(parameter_value(template, alarms["ScoringLatencyP99Alarm"]["Threshold"]))
    assert accuracy in lines_on("ModelAccuracy")
    assert latency in lines_on("Latency", "p99")
    assert PSI_SIGNIFICANT_SHIFT in lines_on("MaxFeaturePSI")


def test_api_gateway_panels_name_the_deployed_api(template: dict[str, Any], dashboard: dict[str, Any]) -> None:
    # SAM titles the API's OpenAPI body with the stack name, which becomes the RestApi's name
    stage = template["Resources"]["PlatformApi"]["Properties"]["StageName"]
    api_metrics = [m for w in dashboard["widgets"] for m in widget_metrics(w) if m.namespace == "AWS/ApiGateway"]
    assert api_metrics
    assert all(m.dimensions == {"ApiName": "pseudo-StackName", "Stage": stage} for m in api_metrics)


def test_outputs_give_the_topic_and_the_dashboard(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}
    url = outputs["DashboardUrl"]["Value"]["Fn::Sub"]
    assert url.startswith("https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}")
    assert url.endswith("#dashboards:name=${MonitoringDashboard}")
