"""The domain package's shape, read from the imports of the code itself (every import, lazy ones included):
capability packages that only import the ones below them, no import cycle, and the pilot as a client of the
platform (no platform module, and no platform function, imports it)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import PROJECT_ROOT, load_template

PACKAGE_ROOT = PROJECT_ROOT / "layers" / "platform"
LAYERS = [
    "core",
    "data",
    "api",
    "audit",
    "feature_store",
    "training",
    "registry",
    "experiments",
    "monitoring",
    "serving",
    "wiring",
    "pilot",
]
"""The domain package's parts from the bottom up: each may import its own part and the parts before it."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path, module: str) -> Iterator[str]:
    """Every mlops module `path` imports, wherever the import statement stands."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.split(".")[0] == "mlops")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            if base.split(".")[0] != "mlops":
                continue
            for alias in node.names:  # `from mlops.x import y` imports module mlops.x.y when y is one
                candidate = f"{base}.{alias.name}"
                yield candidate if _is_module(candidate) else base


def _is_module(name: str) -> bool:
    path = PACKAGE_ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _import_graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted((PACKAGE_ROOT / "mlops").rglob("*.py")):
        module = _module_name(path)
        graph[module] = {imported for imported in _imported_modules(path, module) if imported != module}
    return graph


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_belongs_to_a_known_part() -> None:
    # Given every module of the domain package
    unknown = {m for m in _import_graph() if _part(m) not in LAYERS and m != "mlops"}

    # Then each sits in one of the declared parts (a new part must take its place in LAYERS)
    assert not unknown


def test_no_part_imports_a_part_above_it() -> None:
    # Given the import graph of the domain package
    rank = {part: index for index, part in enumerate(LAYERS)}

    # When each import is compared with the importer's place in the order
    violations = sorted(
        f"{module} imports {imported}"
        for module, imports in _import_graph().items()
        for imported in imports
        if module != "mlops" and _part(imported) in rank and rank[_part(imported)] > rank[_part(module)]
    )

    # Then nothing imports upwards: in particular only the pilot imports the pilot
    assert violations == []


def test_no_import_cycle_between_modules() -> None:
    # Given the import graph of the domain package
    graph = _import_graph()

    # When it is searched for a path from a module back to itself (iterative DFS, colours)
    cycles: list[list[str]] = []
    colour = dict.fromkeys(graph, 0)
    for start in graph:
        if colour[start]:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour.get(child) == 1:
                cycles.append([*path[path.index(child) :], child])
            elif colour.get(child) == 0:
                colour[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))

    # Then there is none
    assert cycles == []


def _platform_functions() -> dict[str, Path]:
    """Functions behind the API, a schedule or the batch-scoring state machine: the platform's own."""
    resources = load_template()["Resources"]
    batch = resources["BatchScoringStateMachine"]["Properties"]["DefinitionSubstitutions"]
    batch_functions = {
        str(value["Fn::GetAtt"]).split(".")[0] if isinstance(value["Fn::GetAtt"], str) else value["Fn::GetAtt"][0]
        for value in batch.values()
        if isinstance(value, dict) and "Fn::GetAtt" in value
    }
    modules = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        if not properties.get("Events") and logical_id not in batch_functions:
            continue
        if properties.get("PackageType") == "Image":
            folder = PROJECT_ROOT / Path(resource["Metadata"]["Dockerfile"]).parent
            module = properties["ImageConfig"]["Command"][0].rpartition(".")[0]
        else:
            folder = PROJECT_ROOT / properties["CodeUri"]
            module = properties["Handler"].rpartition(".")[0]
        modules[logical_id] = folder / f"{module}.py"
    return modules


@pytest.mark.parametrize("logical_id", sorted(_platform_functions()))
def test_platform_functions_do_not_import_the_pilot(logical_id: str) -> None:
    # Given a platform function's handler module
    path = _platform_functions()[logical_id]

    # When its imports are read
    imported = set(_imported_modules(path, path.stem))

    # Then none is the pilot's
    assert not {m for m in imported if m == "mlops.pilot" or m.startswith("mlops.pilot.")}


def test_function_folders_are_named_after_their_resources() -> None:
    # Given the zip functions of the template
    resources = load_template()["Resources"]
    folders = {
        logical_id: resource["Properties"]["CodeUri"]
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function" and "CodeUri" in resource["Properties"]
    }

    # Then each has its own folder, named after it (ScoringFunction -> functions/scoring/)
    expected = {
        logical_id: "functions/" + _snake_case(logical_id.removesuffix("Function")) + "/" for logical_id in folders
    }
    assert folders == expected


def test_pipeline_image_modules_are_named_after_their_resources() -> None:
    # Given the functions built from the pipeline image
    resources = load_template()["Resources"]
    commands = {
        logical_id: resource["Properties"]["ImageConfig"]["Command"][0]
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
        and resource.get("Metadata", {}).get("Dockerfile") == "functions/pipeline/Dockerfile"
    }

    # Then each runs `handler` of the module named after it
    assert commands == {
        logical_id: _snake_case(logical_id.removesuffix("Function")) + ".handler" for logical_id in commands
    }
    assert all(
        (PROJECT_ROOT / "functions/pipeline" / command.replace(".handler", ".py")).is_file()
        for command in commands.values()
    )


def _snake_case(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))
