"""Dependency audit: every package pinned in constraints.txt (Dragon's dependencies and the
tools', at the exact versions installed) is looked up by pip-audit in a vulnerability service:
PyPI's JSON API by default, or an OSV-compatible service (`--osv-url`, a mirror of osv.dev).
It checks known advisories for those versions; it reads no code and checks no licence.

Exit 1 on a known vulnerability, listing each with its fixed versions. When the service cannot
be reached, or knows none of the packages (a registry mirror without vulnerability data), it
says `dependency audit NOT RUN` with the reason and exits 0, or 2 with `--strict`: an audit that
could not run is reported as not run, never as clean.

    .venv/bin/python .ci/audit_dependencies.py [--osv-url URL] [--strict]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIP_AUDIT = Path(sys.executable).with_name("pip-audit")
NOT_RUN_STRICT = 2


def pip_audit_command(*, constraints: Path, osv_url: str | None) -> list[str]:
    if osv_url:
        service = ["--vulnerability-service", "osv", "--osv-url", osv_url]
    else:
        service = ["--vulnerability-service", "pypi"]
    return [
        str(PIP_AUDIT),
        "--requirement",
        str(constraints),
        "--no-deps",
        "--disable-pip",
        "--progress-spinner",
        "off",
        *service,
        "--format",
        "json",
    ]


def not_run(reason: str, *, strict: bool) -> int:
    print(f"dependency audit NOT RUN: {reason}")
    return NOT_RUN_STRICT if strict else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--osv-url", help="an OSV-compatible query URL instead of PyPI's API")
    parser.add_argument("--strict", action="store_true", help="exit 2 when the audit cannot run")
    parser.add_argument("--constraints", type=Path, default=ROOT / "constraints.txt")
    args = parser.parse_args(argv)
    command = pip_audit_command(constraints=args.constraints, osv_url=args.osv_url)
    try:
        result = subprocess.run(  # noqa: S603 - this virtual environment's own pip-audit
            command, capture_output=True, text=True, timeout=180, check=False
        )
    except subprocess.TimeoutExpired:
        return not_run("the vulnerability service did not answer in 180 s", strict=args.strict)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return not_run(f"pip-audit could not query its service ({reason})", strict=args.strict)
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
        return not_run(
            f"the vulnerability service knows none of the {len(dependencies)} pinned packages "
            "(a registry mirror without vulnerability data?)",
            strict=args.strict,
        )
    skipped = len(dependencies) - len(audited)
    print(
        f"dependency audit: {len(audited)} packages audited, no known vulnerabilities"
        + (f"; {skipped} could not be audited" if skipped else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
