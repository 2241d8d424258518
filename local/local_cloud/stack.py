"""Deploy a SAM template into moto's in-process AWS, the way `sam package` + CloudFormation would.

The SAM template is transformed offline with aws-sam-translator, code locations are pointed at a placeholder
zip in a deployment bucket, and moto's CloudFormation builds the stack. State machines are created here
instead, through the Step Functions API (see `deploy_template`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from samtranslator.metrics.method_decorator import MetricsMethodWrapperSingleton
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

DEFAULT_REGION = "us-east-1"
_DEPLOY_BUCKET = "local-cloud-deployment"
_PLACEHOLDER_KEY = "placeholder.zip"
_PLACEHOLDER_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/local-cloud:latest"

# Resources that moto's CloudFormation cannot build for a SAM template, and that local devices replace:
# - the state machine: CloudFormation ignores DefinitionSubstitutions, and with `execute_state_machine`
#   a machine it creates is invisible to the Step Functions API;
# - the API deployment/stage: moto ignores the OpenAPI Body of the RestApi, so the deployment finds no
#   methods and fails (the local API is served by api_server.ApiGatewayApp from the SAM events instead);
# - alarms and topic subscriptions: moto's CloudFormation skips them with a warning each (nothing evaluates
#   alarms locally: the tests check emitted metrics against the template's thresholds instead);
# - CodeDeploy (the scoring function's canary releases): moto's CloudFormation does not support it, and a
#   local stack is created once, never updated, so there is no traffic to shift;
# - event source mappings: moto's invokes the function with one SQS message at a time inside the sender's
#   SendMessage and deletes it whatever the partial batch response says (event_sources.SqsEventSource instead).
# - API keys (and so their usage plans): moto's CloudFormation has no ApiKey; api_server enforces a key instead.
_REPLACED_TYPES = {
    "AWS::ApiGateway::ApiKey",
    "AWS::Lambda::EventSourceMapping",
    "AWS::CodeDeploy::Application",
    "AWS::CodeDeploy::DeploymentGroup",
    "AWS::StepFunctions::StateMachine",
    "AWS::ApiGateway::Deployment",
    "AWS::ApiGateway::Stage",
    "AWS::CloudWatch::Alarm",
    "AWS::SNS::Subscription",
}


@dataclass(frozen=True)
class FunctionSpec:
    """Where a function's code lives locally and how moto deployed it."""

    logical_id: str
    function_name: str
    function_arn: str
    package_type: str  # "Zip" | "Image"
    code_dir: Path
    module_file: Path
    handler_name: str
    memory_size: int
    timeout_s: int
    environment: dict[str, str]


@dataclass
class DeployedStack:
    """A SAM template deployed into moto: names, ARNs, parameters, outputs and function specs."""

    stack_name: str
    region: str
    template_path: Path
    template: dict[str, Any]
    parameters: dict[str, str]
    outputs: dict[str, str]
    functions: dict[str, FunctionSpec]
    physical_ids: dict[str, str] = field(repr=False)
    state_machine_arns: dict[str, str] = field(repr=False)

    def physical_id(self, logical_id: str) -> str:
        if logical_id in self.state_machine_arns:
            return self.state_machine_arns[logical_id]
        try:
            return self.physical_ids[logical_id]
        except KeyError:
            raise KeyError(f"no resource {logical_id!r} in stack {self.stack_name}") from None

    def function(self, name_or_arn_or_logical_id: str) -> FunctionSpec:
        """The function with this logical id, name or ARN (a version/alias qualifier is ignored)."""
        key = name_or_arn_or_logical_id
        if key in self.functions:
            return self.functions[key]
        if key.startswith("arn:"):
            # arn:aws:lambda:region:account:function:name[:qualifier]
            key = key.split(":")[6]
        for spec in self.functions.values():
            if spec.function_name == key:
                return spec
        raise KeyError(f"no function {name_or_arn_or_logical_id!r} in stack {self.stack_name}")

    def function_name(self, logical_id: str) -> str:
        return self.function(logical_id).function_name

    def function_arn(self, logical_id: str) -> str:
        return self.function(logical_id).function_arn

    def state_machine_arn(self, logical_id: str) -> str:
        try:
            return self.state_machine_arns[logical_id]
        except KeyError:
            raise KeyError(f"no state machine {logical_id!r} in stack {self.stack_name}") from None


def deploy_template(
    template_path: Path,
    parameter_overrides: dict[str, str] | None = None,
    stack_name: str = "mlops-local",
) -> DeployedStack:
    """Deploy the SAM template into moto. Must be called inside an active `mock_aws`."""
    template_path = Path(template_path).resolve()
    region = os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    os.environ.setdefault("AWS_DEFAULT_REGION", region)  # the SAM translator needs it
    sam_template = yaml_parse(template_path.read_text())
    parameters = _parameters(sam_template, parameter_overrides or {})

    account_id = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
    # We name the state machines ourselves, so their ARNs are known before the stack exists.
    state_machine_names = {
        logical_id: resource.get("Properties", {}).get("Name") or f"{stack_name}-{logical_id}"
        for logical_id, resource in sam_template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::StateMachine"
    }
    state_machine_arns = {
        logical_id: f"arn:aws:states:{region}:{account_id}:stateMachine:{name}"
        for logical_id, name in state_machine_names.items()
    }

    cfn_template = _transform(sam_template, parameters)
    removed = _remove_replaced_resources(cfn_template)
    cfn_template, aliases = _point_aliases_at_their_functions(cfn_template)
    # What refers to a state machine (a function's environment, an output) gets its ARN or name directly.
    cfn_template = _rewrite_state_machine_references(cfn_template, state_machine_arns, state_machine_names)
    for logical_id, resource in cfn_template["Resources"].items():
        if resource["Type"] == "AWS::ApiGateway::RestApi":
            # moto requires a Name (CloudFormation derives it from the OpenAPI body title).
            resource["Properties"].setdefault("Name", f"{stack_name}-{logical_id}")

    _upload_placeholder_code(region)
    cloudformation = boto3.client("cloudformation", region_name=region)
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(cfn_template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"stack {stack_name} ended in {stack['StackStatus']}: {stack.get('StackStatusReason')}")
    physical_ids = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in _stack_resources(cloudformation, stack_name)
    }
    lambda_client = boto3.client("lambda", region_name=region)
    for function_logical_id, alias in aliases.items():
        lambda_client.create_alias(
            FunctionName=physical_ids[function_logical_id], Name=alias, FunctionVersion="$LATEST"
        )

    functions = _function_specs(sam_template, template_path.parent, physical_ids, region)
    resolver = _Resolver(parameters, physical_ids, functions, state_machine_arns, region, account_id)
    for logical_id, name in state_machine_names.items():
        arn = _create_state_machine(
            logical_id,
            name,
            sam_template["Resources"][logical_id],
            removed[logical_id],
            template_path.parent,
            resolver,
        )
        if arn != state_machine_arns[logical_id]:
            raise RuntimeError(f"{logical_id}: Step Functions created {arn}, expected {state_machine_arns[logical_id]}")

    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    for name, output in sam_template.get("Outputs", {}).items():
        if name not in outputs:
            with contextlib.suppress(ValueError):  # an output we cannot resolve locally is left out
                outputs[name] = resolver.resolve(output["Value"])
    return DeployedStack(
        stack_name=stack_name,
        region=region,
        template_path=template_path,
        template=sam_template,
        parameters=parameters,
        outputs=outputs,
        functions=functions,
        physical_ids=physical_ids,
        state_machine_arns=state_machine_arns,
    )


def cloudformation_template(template_path: Path, parameter_overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """The plain CloudFormation that `sam deploy` would create from the SAM template (policy templates, the
    API's usage plan, the scoring alias and its deployment group expanded), for security checks."""
    os.environ.setdefault("AWS_DEFAULT_REGION", DEFAULT_REGION)  # the SAM translator needs it
    sam_template = yaml_parse(Path(template_path).read_text())
    return _transform(sam_template, _parameters(sam_template, parameter_overrides or {}))


def _parameters(sam_template: dict[str, Any], overrides: dict[str, str]) -> dict[str, str]:
    declared = sam_template.get("Parameters", {})
    unknown = set(overrides) - set(declared)
    if unknown:
        raise ValueError(f"unknown parameter override(s): {sorted(unknown)}")
    values = {}
    for name, spec in declared.items():
        value = overrides.get(name, spec.get("Default"))
        if value is None:
            raise ValueError(f"parameter {name} has no default and no override")
        values[name] = str(value)
    return values


def _transform(sam_template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """Point code at placeholders (as `sam package` would upload it) and run the SAM transform."""
    sam = copy.deepcopy(sam_template)
    placeholder_uri = f"s3://{_DEPLOY_BUCKET}/{_PLACEHOLDER_KEY}"
    for resource in sam["Resources"].values():
        props = resource.setdefault("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            if props.get("PackageType") == "Image":
                props["ImageUri"] = _PLACEHOLDER_IMAGE
            else:
                props["CodeUri"] = placeholder_uri
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = placeholder_uri
        elif resource["Type"] == "AWS::Serverless::StateMachine":
            # The real definition is created later through the Step Functions API.
            props.pop("DefinitionUri", None)
            props["Definition"] = {
                "StartAt": "Placeholder",
                "States": {"Placeholder": {"Type": "Pass", "End": True}},
            }

    class _NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    cfn_template = transform(sam, dict(parameters), _NoManagedPolicies())
    # The translator records usage metrics and warns at exit when nobody published them: drop them quietly.
    MetricsMethodWrapperSingleton.get_instance().publish()
    return cfn_template


def _references(value: Any) -> set[str]:
    """Logical ids that a piece of CloudFormation refers to (Ref, GetAtt, Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found.update(m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text))
                if isinstance(inner, list):
                    found.update(_references(inner[1]))
            else:
                found.update(_references(inner))
    elif isinstance(value, list):
        for inner in value:
            found.update(_references(inner))
    return found


def _point_aliases_at_their_functions(cfn_template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """moto's CloudFormation cannot create a Lambda alias (AutoPublishAlias): drop each alias and refer to
    `<function ARN>:<alias>` instead, which is what Ref of an alias gives on AWS. Returns the template and
    {function logical id: alias name}, for `deploy_template` to create the aliases through the Lambda API."""
    resources = cfn_template["Resources"]
    aliases = {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::Lambda::Alias"}
    for logical_id in aliases:
        del resources[logical_id]
    for resource in resources.values():
        # moto's permissions need an existing function (no alias to qualify): grant on the function itself.
        target = resource.get("Properties", {}).get("FunctionName")
        if resource["Type"] == "AWS::Lambda::Permission" and isinstance(target, dict) and target.get("Ref") in aliases:
            resource["Properties"]["FunctionName"] = aliases[target["Ref"]]["FunctionName"]
    text = json.dumps(cfn_template)
    for logical_id, alias in aliases.items():
        function = alias["FunctionName"]["Ref"]
        qualified = {"Fn::Join": [":", [{"Fn::GetAtt": [function, "Arn"]}, alias["Name"]]]}
        text = text.replace(json.dumps({"Ref": logical_id}), json.dumps(qualified))
        text = text.replace(f"${{{logical_id}}}", f"${{{function}.Arn}}:{alias['Name']}")
    return json.loads(text), {alias["FunctionName"]["Ref"]: alias["Name"] for alias in aliases.values()}


def _rewrite_state_machine_references(value: Any, arns: dict[str, str], names: dict[str, str]) -> Any:
    """Replace Ref / GetAtt / ${} of a state machine (created outside CloudFormation) by its ARN or name."""
    if isinstance(value, list):
        return [_rewrite_state_machine_references(v, arns, names) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and arg in arns:
            return arns[arg]
        if key == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            if logical_id in arns:
                return {"Arn": arns, "Name": names}[attribute][logical_id]
        if key == "Fn::Sub":
            text = arg[0] if isinstance(arg, list) else arg
            for logical_id in arns:
                text = text.replace(f"${{{logical_id}}}", arns[logical_id])
                text = text.replace(f"${{{logical_id}.Arn}}", arns[logical_id])
                text = text.replace(f"${{{logical_id}.Name}}", names[logical_id])
            if isinstance(arg, list):
                return {key: [text, _rewrite_state_machine_references(arg[1], arns, names)]}
            return {key: text}
    return {k: _rewrite_state_machine_references(v, arns, names) for k, v in value.items()}


def _remove_replaced_resources(cfn_template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Remove the resources local devices replace, and what depends on them (but for state machines,
    whose references are rewritten to their ARN); returns the removed resources."""
    resources = cfn_template["Resources"]
    for resource in resources.values():
        # The alias's CodeDeploy update policy only acts on stack updates, which local stacks never get.
        resource.pop("UpdatePolicy", None)
    removed = {k: resources.pop(k) for k in [k for k, r in resources.items() if r["Type"] in _REPLACED_TYPES]}
    blocking = {k for k, r in removed.items() if r["Type"] != "AWS::StepFunctions::StateMachine"}
    while True:
        dependent = [k for k, r in resources.items() if (_references(r) | set(_as_list(r.get("DependsOn")))) & blocking]
        if not dependent:
            break
        removed.update({k: resources.pop(k) for k in dependent})
        blocking.update(dependent)
    for resource in resources.values():
        if isinstance(resource.get("DependsOn"), list | str):
            resource["DependsOn"] = [d for d in _as_list(resource["DependsOn"]) if d not in removed]
    outputs = cfn_template.get("Outputs", {})
    for name in [n for n, o in outputs.items() if _references(o) & blocking]:
        del outputs[name]  # resolved by deploy_template itself where possible
    return removed


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _upload_placeholder_code(region: str) -> None:
    """moto's create_function fetches the S3 code, so a small valid zip has to exist."""
    s3 = boto3.client("s3", region_name=region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=_DEPLOY_BUCKET)
    else:
        s3.create_bucket(Bucket=_DEPLOY_BUCKET, CreateBucketConfiguration={"LocationConstraint": region})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "Code runs in-process from the project tree (local_cloud).\n")
    s3.put_object(Bucket=_DEPLOY_BUCKET, Key=_PLACEHOLDER_KEY, Body=buffer.getvalue())


def _stack_resources(cloudformation: Any, stack_name: str) -> list[dict[str, Any]]:
    paginator = cloudformation.get_paginator("list_stack_resources")
    return [r for page in paginator.paginate(StackName=stack_name) for r in page["StackResourceSummaries"]]


@dataclass(frozen=True)
class HandlerLocation:
    """Where `sam build` finds a function's handler: zip, CodeUri + Handler; image, the Dockerfile's directory and
    the image command."""

    package_type: str  # "Zip" | "Image"
    code_dir: Path
    module_file: Path
    handler_name: str


def handler_location(sam_template: dict[str, Any], logical_id: str, template_dir: Path) -> HandlerLocation:
    resource = sam_template["Resources"][logical_id]
    props = resource.get("Properties", {})
    if props.get("PackageType") == "Image":
        metadata = resource.get("Metadata", {})
        code_dir = (template_dir / metadata.get("DockerContext", ".") / metadata["Dockerfile"]).parent
        handler = props["ImageConfig"]["Command"][0]
        package_type = "Image"
    else:
        code_uri = props.get("CodeUri", sam_template.get("Globals", {}).get("Function", {}).get("CodeUri"))
        if not isinstance(code_uri, str) or code_uri.startswith("s3://"):
            raise ValueError(f"{logical_id}: only a local CodeUri directory is supported, got {code_uri!r}")
        code_dir = template_dir / code_uri
        handler = props["Handler"]
        package_type = "Zip"
    module_path, handler_name = handler.rsplit(".", 1)
    module_file = (code_dir / (module_path.replace(".", "/") + ".py")).resolve()
    return HandlerLocation(package_type, code_dir.resolve(), module_file, handler_name)


def _function_specs(
    sam_template: dict[str, Any],
    template_dir: Path,
    physical_ids: dict[str, str],
    region: str,
) -> dict[str, FunctionSpec]:
    lambda_client = boto3.client("lambda", region_name=region)
    specs = {}
    for logical_id, resource in sam_template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        location = handler_location(sam_template, logical_id, template_dir)
        config = lambda_client.get_function_configuration(FunctionName=physical_ids[logical_id])
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            function_name=config["FunctionName"],
            function_arn=config["FunctionArn"],
            package_type=location.package_type,
            code_dir=location.code_dir,
            module_file=location.module_file,
            handler_name=location.handler_name,
            memory_size=int(config.get("MemorySize", 128)),
            timeout_s=int(config.get("Timeout", 3)),
            environment={k: _env_string(v) for k, v in config.get("Environment", {}).get("Variables", {}).items()},
        )
    return specs


def _env_string(value: Any) -> str:
    # moto keeps template scalars as parsed (numbers, booleans); Lambda only has strings.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Resolver:
    """Resolves the intrinsics that DefinitionSubstitutions and Outputs use, against the deployed stack."""

    def __init__(
        self,
        parameters: dict[str, str],
        physical_ids: dict[str, str],
        functions: dict[str, FunctionSpec],
        state_machine_arns: dict[str, str],
        region: str,
        account_id: str,
    ) -> None:
        self.parameters = parameters
        self.physical_ids = physical_ids
        self.functions = functions
        self.state_machine_arns = state_machine_arns
        self.region = region
        self.account_id = account_id

    def resolve(self, value: Any) -> str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::Sub" and isinstance(arg, str):
                return re.sub(r"\$\{([^!}][^}]*)\}", lambda m: self._sub_variable(m.group(1)), arg)
        raise ValueError(f"cannot resolve {value!r} locally")

    def ref(self, name: str) -> str:
        pseudo = {"AWS::Region": self.region, "AWS::AccountId": self.account_id, "AWS::Partition": "aws"}
        for table in (pseudo, self.parameters, self.state_machine_arns, self.physical_ids):
            if name in table:
                return table[name]
        raise ValueError(f"cannot resolve Ref {name!r}")

    def get_att(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn" and logical_id in self.functions:
            return self.functions[logical_id].function_arn
        if attribute == "Arn" and logical_id in self.state_machine_arns:
            return self.state_machine_arns[logical_id]
        if attribute == "Arn" and logical_id in self.physical_ids:
            return self._arn_of(logical_id)
        raise ValueError(f"cannot resolve Fn::GetAtt {logical_id}.{attribute}")

    def _sub_variable(self, name: str) -> str:
        if "." in name:
            return self.get_att(*name.split(".", 1))
        return self.ref(name)

    def _arn_of(self, logical_id: str) -> str:
        physical = self.physical_ids[logical_id]
        if physical.startswith("arn:"):
            return physical
        # Roles are the only other resources whose ARN a SAM state machine needs (its execution role).
        try:
            return boto3.client("iam", region_name=self.region).get_role(RoleName=physical)["Role"]["Arn"]
        except Exception as exc:
            raise ValueError(f"cannot resolve the ARN of {logical_id}") from exc


def _create_state_machine(
    logical_id: str,
    name: str,
    sam_resource: dict[str, Any],
    cfn_resource: dict[str, Any],
    template_dir: Path,
    resolver: _Resolver,
) -> str:
    props = sam_resource.get("Properties", {})
    if "DefinitionUri" in props:
        if not isinstance(props["DefinitionUri"], str):
            raise ValueError(f"{logical_id}: only a local DefinitionUri file is supported")
        text = (template_dir / props["DefinitionUri"]).read_text()
    else:
        text = json.dumps(props["Definition"])
    # Substitute textually: before substitution the file need not be JSON ("IntervalSeconds": ${X}).
    for variable, value in props.get("DefinitionSubstitutions", {}).items():
        text = text.replace("${" + variable + "}", resolver.resolve(value))
    if "${" in text:
        left = sorted(set(re.findall(r"\$\{[^}]*\}", text)))
        raise ValueError(f"{logical_id}: definition still contains {left} after DefinitionSubstitutions")
    definition = json.loads(text)  # fail loudly here rather than inside Step Functions

    role = cfn_resource.get("Properties", {}).get("RoleArn")
    try:
        role_arn = resolver.resolve(role) if role else None
    except ValueError:
        role_arn = None
    response = boto3.client("stepfunctions", region_name=resolver.region).create_state_machine(
        name=name,
        definition=json.dumps(definition),
        roleArn=role_arn or f"arn:aws:iam::{resolver.account_id}:role/local-cloud-state-machine",
        type=props.get("Type", "STANDARD"),
    )
    return response["stateMachineArn"]
