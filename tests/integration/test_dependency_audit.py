"""The CI dependency audit (.ci/audit_dependencies.py) against a vulnerability service on
loopback that speaks OSV's query API: a known vulnerability in a pinned package fails it, a clean
answer passes it, and a service that cannot answer is reported as NOT RUN, never as clean."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.local_http import serving

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "audit_dependencies.py"
CONSTRAINTS = ROOT / "constraints.txt"
COMMAND_SECONDS = 170


def pinned(name: str) -> str:
    for line in CONSTRAINTS.read_text().splitlines():
        package, _, version = line.partition("==")
        if package.strip().lower() == name:
            return version.strip()
    raise AssertionError(f"{name} is not pinned in constraints.txt")


def osv_service(*, vulnerable: dict[str, str], status: int = 200) -> Starlette:
    """OSV's `POST /v1/query`: the advisory for a (package, version) listed in `vulnerable`,
    `{}` (no known vulnerability) for every other; `status` other than 200 is an outage."""
    asked: list[dict[str, Any]] = []

    async def query(request: Request) -> JSONResponse:
        body = await request.json()
        asked.append(body)
        if status != 200:
            return JSONResponse({"code": 13, "message": "internal error"}, status_code=status)
        name, version = body["package"]["name"], body["version"]
        if vulnerable.get(name) != version:
            return JSONResponse({})
        return JSONResponse(
            {
                "vulns": [
                    {
                        "id": "GHSA-test-0000-0001",
                        "aliases": ["CVE-2099-0001"],
                        "summary": "a vulnerability made up for this test",
                        "affected": [
                            {
                                "package": {"name": name, "ecosystem": "PyPI"},
                                "ranges": [
                                    {
                                        "type": "ECOSYSTEM",
                                        "events": [{"introduced": "0"}, {"fixed": "99.0.0"}],
                                    }
                                ],
                            }
                        ],
                    }
                ]
            }
        )

    app = Starlette(routes=[Route("/v1/query", query, methods=["POST"])])
    app.state.asked = asked
    return app


async def audit(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=COMMAND_SECONDS)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_a_known_vulnerability_in_a_pinned_package_fails_the_audit() -> None:
    jinja = pinned("jinja2")
    app = osv_service(vulnerable={"jinja2": jinja})
    async with serving(app) as base:
        code, output = await audit("--osv-url", f"{base}/v1/query")

    assert code == 1, output
    # pip-audit names an advisory by its CVE alias when it has one.
    assert f"VULNERABLE jinja2 {jinja}: CVE-2099-0001 (fixed in 99.0.0)" in output
    assert output.count("VULNERABLE") == 1
    asked = {(q["package"]["name"], q["version"]) for q in app.state.asked}
    assert ("jinja2", jinja) in asked
    assert len(asked) >= 100  # every pinned package was looked up, not a sample


async def test_a_clean_answer_for_every_package_passes_and_says_how_many_were_audited() -> None:
    async with serving(osv_service(vulnerable={})) as base:
        code, output = await audit("--osv-url", f"{base}/v1/query")

    assert code == 0, output
    assert "packages audited, no known vulnerabilities" in output
    assert "NOT RUN" not in output


async def test_a_service_that_cannot_answer_is_not_run_and_fails_only_when_strict() -> None:
    async with serving(osv_service(vulnerable={}, status=500)) as base:
        lenient = await audit("--osv-url", f"{base}/v1/query")
        strict = await audit("--osv-url", f"{base}/v1/query", "--strict")

    for _, output in (lenient, strict):
        assert "dependency audit NOT RUN" in output, output
        assert "no known vulnerabilities" not in output
    assert (lenient[0], strict[0]) == (0, 2)
