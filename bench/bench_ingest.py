"""Ingest throughput: signed GitHub `workflow_run` deliveries from many concurrent senders.

    make bench-ingest
    .venv/bin/python bench/bench_ingest.py [--seconds 10] [--connections 64] \
        [--databases sqlite,postgres]

For each database it starts `dragon serve` on loopback (embedded mode: the worker runs in the
same process) and drives it with wrk (Debian package `wrk`), every request carrying its own
X-GitHub-Delivery; then the same with the in-process worker off (accepting only, as API
replicas do when workers run apart); and, in the same run, a bare ASGI app that only answers 202,
for the ratio. Prints accepted deliveries per second, p50 and p99 latency, and non-2xx answers.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
DRAGON = Path(sys.executable).with_name("dragon")
UVICORN = Path(sys.executable).with_name("uvicorn")
SECRET = "bench-webhook-secret-" + "x" * 24
POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/dragon_bench"
BODY_BYTES = 10 * 1024
WRK = shutil.which("wrk") or "wrk"

WRK_SCRIPT = """
local f = io.open("{body}", "rb"); local body = f:read("*all"); f:close()
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-GitHub-Event"] = "workflow_run"
wrk.headers["X-Hub-Signature-256"] = "sha256={signature}"
local counter = 0
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
request = function()
  counter = counter + 1
  wrk.headers["X-GitHub-Delivery"] = string.format("%d-%d-%d", tid, counter, math.random(1e9))
  return wrk.format()
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def delivery_body(workdir: Path) -> tuple[Path, str]:
    """The published workflow_run failure example, padded to about 10 KB."""
    fixture = ROOT / "tests" / "fixtures" / "github" / "workflow_run.completed.failure.json"
    payload = json.loads(fixture.read_text())
    # Vendors' payloads vary in size; drop URL templates until the body is about 10 KB.
    run = payload["workflow_run"]
    for owner in (payload["repository"], run["head_repository"], run["repository"]):
        for key in [k for k in owner if k.endswith("_url")]:
            if len(json.dumps(payload)) > BODY_BYTES:
                owner.pop(key)
    body = json.dumps(payload).encode()
    if len(body) < BODY_BYTES:
        payload["workflow_run"]["display_title"] = "x" * (BODY_BYTES - len(body))
        body = json.dumps(payload).encode()
    path = workdir / "body.json"
    path.write_bytes(body)
    return path, hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def wait_ready(port: int, path: str = "/readyz") -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"nothing answered on port {port}")


def run_wrk(port: int, path: str, script: Path, args: argparse.Namespace) -> dict[str, float]:
    out = subprocess.run(
        [
            WRK,
            "-t2",
            f"-c{args.connections}",
            f"-d{args.seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}{path}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    def millis(label: str) -> float:
        found = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if not found:
            return float("nan")
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rate": float(rate.group(1)) if rate else 0.0,
        "p50": millis("50%"),
        "p99": millis("99%"),
        "errors": float(non_2xx.group(1)) if non_2xx else 0.0,
    }


def report(label: str, result: dict[str, float], bare: dict[str, float] | None = None) -> None:
    ratio = f"   {result['rate'] / bare['rate']:.2f} of bare" if bare else ""
    print(
        f"{label:<44} {result['rate']:8.0f}/s   p50 {result['p50']:7.1f} ms   "
        f"p99 {result['p99']:7.1f} ms   non-2xx {result['errors']:.0f}{ratio}",
        flush=True,
    )


def reset_postgres(env: dict[str, str]) -> None:
    script = (
        "import asyncio, sqlalchemy as sa\n"
        "from sqlalchemy.ext.asyncio import create_async_engine\n"
        "async def main():\n"
        "    admin = create_async_engine('postgresql+asyncpg://postgres@127.0.0.1:5432/test',"
        " isolation_level='AUTOCOMMIT')\n"
        "    async with admin.connect() as c:\n"
        "        await c.execute(sa.text('DROP DATABASE IF EXISTS dragon_bench WITH (FORCE)'))\n"
        "        await c.execute(sa.text('CREATE DATABASE dragon_bench'))\n"
        "    await admin.dispose()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True)


def serve_and_load(
    *, url: str, worker: bool, script: Path, args: argparse.Namespace
) -> dict[str, float]:
    port = free_port()
    env = {
        **os.environ,
        "DRAGON_DATABASE_URL": url,
        "DRAGON_LOG_LEVEL": "warning",
        "DRAGON_BOOTSTRAP_ADMIN": "false",
        "DRAGON_GITHUB_WEBHOOK_SECRET": SECRET,
        "DRAGON_WORKER_ENABLED": "true" if worker else "false",
    }
    if url.startswith("postgresql"):
        reset_postgres(env)
    else:
        Path(url.split("///", 1)[1]).unlink(missing_ok=True)
    subprocess.run([str(DRAGON), "migrate"], env=env, check=True, capture_output=True)
    server = subprocess.Popen(
        [str(DRAGON), "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL
    )
    try:
        wait_ready(port)
        return run_wrk(port, "/webhooks/github", script, args)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--databases", default="sqlite,postgres")
    args = parser.parse_args()
    if not Path(WRK).is_absolute():
        raise SystemExit("bench_ingest needs wrk: apt-get install wrk")
    workdir = ROOT / "var" / "bench-ingest"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    body, signature = delivery_body(workdir)
    script = workdir / "deliveries.lua"
    script.write_text(WRK_SCRIPT.format(body=body, signature=signature))
    print(
        f"{body.stat().st_size} byte signed workflow_run deliveries, {args.connections} "
        f"concurrent senders, {args.seconds} s per run",
        flush=True,
    )

    port = free_port()
    bare_server = subprocess.Popen(
        [
            str(UVICORN),
            "bare_asgi:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--app-dir",
            str(ROOT / "bench"),
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(port, "/")
        bare = run_wrk(port, "/", script, args)
    finally:
        bare_server.send_signal(signal.SIGTERM)
        bare_server.wait(timeout=30)
    report("bare ASGI endpoint (answers 202 only)", bare)

    urls = {"sqlite": f"sqlite+aiosqlite:///{workdir / 'ingest.db'}", "postgres": POSTGRES}
    for name in args.databases.split(","):
        url = urls[name.strip()]
        for worker in (True, False):
            result = serve_and_load(url=url, worker=worker, script=script, args=args)
            mode = "embedded worker on" if worker else "accept only, worker apart"
            report(f"dragon on {name}, {mode}", result, bare)


if __name__ == "__main__":
    main()
