"""Dependency audit: every pinned package in constraints.txt checked by pip-audit against a
vulnerability service. Exit 1 on a known vulnerability. When the service cannot be reached, or
knows none of the packages (a registry mirror without vulnerability data), say so plainly and
exit 0: an audit that could not run is reported as not run, never as clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIP_AUDIT = Path(sys.executable).with_name("pip-audit")


def main() -> int:
    command = [
        str(PIP_AUDIT),
        "--requirement",
        str(ROOT / "constraints.txt"),
        "--no-deps",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--vulnerability-service",
        "pypi",
        "--format",
        "json",
    ]
    try:
        result = subprocess.run(  # noqa: S603 - this virtual environment's own pip-audit
            command, capture_output=True, text=True, timeout=180, check=False
        )
    except subprocess.TimeoutExpired:
        print("dependency audit NOT RUN: the vulnerability service did not answer in 180 s")
        return 0
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1][:300]
        print(f"dependency audit NOT RUN: pip-audit could not query its service ({reason})")
        return 0
    dependencies = report.get("dependencies", [])
    audited = [d for d in dependencies if "skip_reason" not in d]
    vulnerable = [d for d in audited if d.get("vulns")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions", [])) or "no fixed version yet"
            print(f"VULNERABLE {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixes})")
    if vulnerable:
        return 1
    if not audited:
        print(
            f"dependency audit NOT RUN: the vulnerability service knows none of the "
            f"{len(dependencies)} pinned packages (a registry mirror without vulnerability data?)"
        )
        return 0
    skipped = len(dependencies) - len(audited)
    print(
        f"dependency audit: {len(audited)} packages audited, no known vulnerabilities"
        + (f"; {skipped} could not be audited" if skipped else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
