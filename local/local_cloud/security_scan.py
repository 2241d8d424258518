"""`make security`: checkov on template.yaml and on the CloudFormation that `sam deploy` would create from it.

The expanded template matters: SAM policy templates, the usage plan, the scoring alias and its CodeDeploy
group only exist there, so the IAM checks see the statements AWS will really get. Writes
out/security/summary.json and exits non-zero on any failed check or parsing error.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from local_cloud.stack import cloudformation_template

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def scan(checkov: Path, template: Path) -> dict[str, Any]:
    completed = subprocess.run(  # noqa: S603 (our own checkov, our own files)
        [str(checkov), "--file", str(template), "--config-file", str(PROJECT_ROOT / ".checkov.yaml"), "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(completed.stdout)
    failed = report["results"]["failed_checks"]
    return {
        "template": str(template.relative_to(PROJECT_ROOT)),
        **{k: report["summary"][k] for k in ("passed", "failed", "skipped", "parsing_errors", "resource_count")},
        "failures": [f"{f['check_id']} {f['resource']}: {f['check_name']}" for f in failed],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkov", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, default=PROJECT_ROOT / "out" / "security")
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    expanded = args.output_dir / "template.cfn.json"
    expanded.write_text(json.dumps(cloudformation_template(PROJECT_ROOT / "template.yaml"), indent=1))

    results = [scan(args.checkov, PROJECT_ROOT / "template.yaml"), scan(args.checkov, expanded)]
    skipped = re.findall(r"^\s*-\s*(CKV_\w+)", (PROJECT_ROOT / ".checkov.yaml").read_text(), flags=re.MULTILINE)
    print(f"checkov: {len(skipped)} checks skipped by .checkov.yaml, each with its reason there: {', '.join(skipped)}")
    (args.output_dir / "summary.json").write_text(json.dumps(results, indent=2))
    for result in results:
        print(
            f"checkov {result['template']}: {result['resource_count']} resources, {result['passed']} passed, "
            f"{result['failed']} failed, "
            f"{result['parsing_errors']} parsing errors"
        )
        for failure in result["failures"]:
            print(f"  FAILED {failure}")
    return 1 if any(r["failed"] or r["parsing_errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
