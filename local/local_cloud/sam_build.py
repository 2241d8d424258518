"""`make build`: `sam build` of every zip function and layer, then their unzipped sizes against Lambda's limit.

Container-image functions need a container engine to build, so this builds a copy of the template without
them (written beside template.yaml so every relative CodeUri still resolves) and leaves images to
`sam build` on a machine with Docker.
"""

from __future__ import annotations

import argparse
import subprocess  # runs the SAM CLI the Makefile installed
import sys
from pathlib import Path

import yaml
from samtranslator.yaml_helper import yaml_parse

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LAMBDA_UNZIPPED_LIMIT_MB = 250.0


def directory_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def zip_only_template(template: dict) -> dict:
    resources = template["Resources"]
    images = {n for n, r in resources.items() if r.get("Properties", {}).get("PackageType") == "Image"}
    kept = {n: r for n, r in resources.items() if n not in images and r["Type"] != "AWS::Serverless::StateMachine"}
    return {**template, "Resources": kept, "Outputs": {}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sam", default="sam")
    parser.add_argument("--build-dir", type=Path, default=PROJECT_ROOT / ".aws-sam" / "build")
    args = parser.parse_args()
    template = yaml_parse((PROJECT_ROOT / "template.yaml").read_text())
    zip_template = PROJECT_ROOT / ".template.zip-functions.yaml"
    zip_template.write_text(yaml.safe_dump(zip_only_template(template), sort_keys=False))
    try:
        subprocess.run(  # noqa: S603  # fixed argv, no shell
            [args.sam, "build", "--template-file", str(zip_template), "--build-dir", str(args.build_dir)],
            check=True,
            cwd=PROJECT_ROOT,
        )
    finally:
        zip_template.unlink()

    resources = template["Resources"]
    layer_sizes = {
        n: directory_size_mb(args.build_dir / n)
        for n, r in resources.items()
        if r["Type"] == "AWS::Serverless::LayerVersion"
    }
    too_big = []
    print(f"\n{'function':<32} {'code MB':>8} {'+ layers MB':>12}  (limit {LAMBDA_UNZIPPED_LIMIT_MB:.0f} MB unzipped)")
    for name, resource in resources.items():
        properties = resource.get("Properties", {})
        if resource["Type"] != "AWS::Serverless::Function" or properties.get("PackageType") == "Image":
            continue
        code = directory_size_mb(args.build_dir / name)
        layers = [layer["Ref"] for layer in properties.get("Layers", []) if isinstance(layer, dict)]
        total = code + sum(layer_sizes[layer] for layer in layers)
        print(f"{name:<32} {code:8.2f} {total:12.1f}")
        if total > LAMBDA_UNZIPPED_LIMIT_MB:
            too_big.append(name)
    if too_big:
        print(f"Over Lambda's unzipped limit: {too_big}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
