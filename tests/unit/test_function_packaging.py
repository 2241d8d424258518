"""Each zip function starts with only what its layers ship (locally every package is installed, so a missing
one would only show on AWS): the scoring path without scipy, the experiments path without onnxruntime."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from importlib import metadata

import pytest
from packaging.requirements import Requirement

from helpers import PROJECT_ROOT, load_template

# What the Lambda Python runtime provides besides the standard library.
LAMBDA_RUNTIME_DISTRIBUTIONS = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
# Imported by the layer's own package, never a distribution.
FIRST_PARTY = {"mlops"}


def zip_functions() -> dict[str, dict]:
    resources = load_template()["Resources"]
    return {
        name: resource["Properties"]
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function" and resource["Properties"].get("PackageType") != "Image"
    }


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def _distribution_closure(names: frozenset[str]) -> frozenset[str]:
    """The distributions pip installs for these requirements (their dependencies, recursively)."""
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = _canonical(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        for requirement in metadata.requires(name) or []:
            parsed = Requirement(requirement)
            if parsed.marker is None or parsed.marker.evaluate({"extra": ""}):
                pending.append(parsed.name)
    return frozenset(seen)


def layer_distributions(layer_logical_id: str) -> set[str]:
    content_uri = load_template()["Resources"][layer_logical_id]["Properties"]["ContentUri"]
    lines = (PROJECT_ROOT / content_uri / "requirements.txt").read_text().splitlines()
    names = {Requirement(line).name for line in lines if line.strip() and not line.startswith("#")}
    return set(_distribution_closure(frozenset(names)))


def allowed_modules(distributions: set[str]) -> set[str]:
    by_module = metadata.packages_distributions()
    return {
        module for module, dists in by_module.items() if any(_canonical(d) in distributions for d in dists)
    } | FIRST_PARTY


def import_with_only(code_uri: str, handler: str, allowed: set[str]) -> subprocess.CompletedProcess[str]:
    """Import the handler module (a cold start) in a fresh interpreter where every other installed package is
    hidden; optional imports (botocore's certifi, numpy's charset_normalizer...) then take their fallbacks."""
    module = handler.rsplit(".", 1)[0]
    code = (
        "import importlib.abc, json, sys\n"
        f"allowed = set(json.loads({json.dumps(json.dumps(sorted(allowed)))}))\n"
        "class ShippedOnly(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        top = name.split('.')[0]\n"
        "        if top in allowed or top in sys.stdlib_module_names or top.startswith('_'):\n"
        "            return None\n"
        "        raise ModuleNotFoundError(f'{name} is not shipped with this function', name=name)\n"
        "sys.meta_path.insert(0, ShippedOnly())\n"
        f"sys.path[:0] = [{str(PROJECT_ROOT / code_uri)!r}, {str(PROJECT_ROOT / 'layers' / 'platform')!r}]\n"
        f"allowed.add({module!r})\n"
        f"import {module}\n"
    )
    return subprocess.run(  # noqa: S603  # fixed argv
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=PROJECT_ROOT
    )


@pytest.mark.parametrize("function", sorted(zip_functions()))
def test_a_zip_function_starts_with_only_what_its_layers_and_the_runtime_ship(function: str) -> None:
    properties = zip_functions()[function]
    # Given the distributions of the function's layers and of the Lambda runtime
    distributions = set(_distribution_closure(frozenset(LAMBDA_RUNTIME_DISTRIBUTIONS)))
    for layer in properties.get("Layers", []):
        distributions |= layer_distributions(layer["Ref"])
    # When its handler module is imported with every other package hidden
    result = import_with_only(properties["CodeUri"], properties["Handler"], allowed_modules(distributions))
    # Then it imports
    assert result.returncode == 0, result.stderr[-2000:]


def test_hiding_a_package_a_function_needs_makes_its_cold_start_fail() -> None:
    # Given the scoring function without its ServingLayer: the check above would notice
    properties = zip_functions()["ScoringFunction"]
    distributions = set(_distribution_closure(frozenset(LAMBDA_RUNTIME_DISTRIBUTIONS))) | layer_distributions(
        "PlatformLayer"
    )
    result = import_with_only(properties["CodeUri"], properties["Handler"], allowed_modules(distributions))
    assert result.returncode != 0
    assert "is not shipped with this function" in result.stderr


def test_the_layers_keep_onnxruntime_and_scipy_apart() -> None:
    functions = zip_functions()
    layers_of = {name: {layer["Ref"] for layer in props.get("Layers", [])} for name, props in functions.items()}
    assert layers_of["ScoringFunction"] == {"PlatformLayer", "ServingLayer"}
    assert layers_of["ExperimentsFunction"] == {"PlatformLayer", "StatsLayer"}
    assert all(not {"ServingLayer", "StatsLayer"} <= layers for layers in layers_of.values())
    assert "scipy" not in layer_distributions("ServingLayer") | layer_distributions("PlatformLayer")
    assert "onnxruntime" not in layer_distributions("StatsLayer") | layer_distributions("PlatformLayer")
