"""Ingest throughput: signed GitHub `workflow_run` deliveries from many concurrent senders.

    make bench-ingest
    .venv/bin/python bench/bench_ingest.py [--seconds 10] [--connections 64] \
        [--databases sqlite,postgres] [--workers 1,2] [--runs 1]

For each database and server process count it starts `dragon serve --workers N` on loopback
and drives it with wrk (Debian package `wrk`), every request carrying its own
X-GitHub-Delivery: once in embedded mode (the worker runs in the server processes and yields
to accepts; the bench then waits for the backlog to drain and reports how fast it did), once
accepting only (as API replicas do when workers run apart). In the same run, a bare ASGI app
that reads the body and answers 202 is driven the same way with the same process count, for
the ratio. Prints accepted deliveries per second, p50 and p99 latency, non-2xx answers, the
load average at that moment, and whether the issue's floors are met.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from github_bodies import workflow_run_failure
from processes import (
    DRAGON,
    ROOT,
    free_port,
    recreate_database,
    start_bare,
    tree_cpu_seconds,
    wait_ready,
)

SECRET = "bench-webhook-secret-" + "x" * 24
POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/dragon_ingest_bench"
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


def delivery_body(workdir: Path) -> tuple[Path, str]:
    """The published workflow_run failure example, about 10 KB, in a file; its signature."""
    body = workflow_run_failure(BODY_BYTES)
    path = workdir / "body.json"
    path.write_bytes(body)
    return path, hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def run_wrk(
    port: int, path: str, script: Path, args: argparse.Namespace, *, server: int
) -> dict[str, float]:
    cpu_before = tree_cpu_seconds(server)
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
    cpu = tree_cpu_seconds(server) - cpu_before

    def millis(label: str) -> float:
        found = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if not found:
            return float("nan")
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    done = re.search(r"(\d+) requests in", out)
    requests = int(done.group(1)) if done else 0
    return {
        "cpu_us": cpu / requests * 1e6 if requests else float("nan"),
        "rate": float(rate.group(1)) if rate else 0.0,
        "p50": millis("50%"),
        "p99": millis("99%"),
        "errors": float(non_2xx.group(1)) if non_2xx else 0.0,
        "socket_errors": float(sum(int(n) for n in sockets.groups())) if sockets else 0.0,
    }


def pending_count(url: str, env: dict[str, str]) -> int:
    script = (
        "import asyncio, sys, sqlalchemy as sa\n"
        "from sqlalchemy.ext.asyncio import create_async_engine\n"
        "async def main(url):\n"
        "    engine = create_async_engine(url)\n"
        "    async with engine.connect() as c:\n"
        "        q = \"SELECT count(*) FROM deliveries WHERE status = 'pending'\"\n"
        "        print((await c.execute(sa.text(q))).scalar())\n"
        "    await engine.dispose()\n"
        "asyncio.run(main(sys.argv[1]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, url], env=env, check=True, capture_output=True, text=True
    )
    return int(out.stdout.strip())


def serve_and_load(
    *, url: str, worker: bool, workers: int, script: Path, args: argparse.Namespace
) -> dict[str, float]:
    port = free_port()
    env = {
        **os.environ,
        "DRAGON_DATABASE_URL": url,
        "DRAGON_LOG_LEVEL": args.log_level,
        "DRAGON_BOOTSTRAP_ADMIN": "false",
        "DRAGON_GITHUB_WEBHOOK_SECRET": SECRET,
        "DRAGON_WORKER_ENABLED": "true" if worker else "false",
    }
    if url.startswith("postgresql"):
        recreate_database(POSTGRES.rsplit("/", 1)[1])
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(url.split("///", 1)[1] + suffix).unlink(missing_ok=True)
    subprocess.run([str(DRAGON), "migrate"], env=env, check=True, capture_output=True)
    server = subprocess.Popen(
        [str(DRAGON), "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(port)
        result = run_wrk(port, "/webhooks/github", script, args, server=server.pid)
        result["load"] = os.getloadavg()[0]
        if worker and args.drain:
            backlog = pending_count(url, env)
            started = time.monotonic()
            left = backlog
            while left and time.monotonic() - started < args.drain:
                time.sleep(1)
                left = pending_count(url, env)
            spent = time.monotonic() - started
            result["backlog"] = backlog
            result["drained_per_s"] = (backlog - left) / spent if spent else 0.0
            result["left"] = left
        return result
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def bare_load(*, workers: int, script: Path, args: argparse.Namespace) -> dict[str, float]:
    with ExitStack() as stack:
        port, bare_server = start_bare(stack, workers=workers)
        result = run_wrk(port, "/", script, args, server=bare_server.pid)
        result["load"] = os.getloadavg()[0]
        return result


def report(label: str, result: dict[str, float], bare: dict[str, float] | None = None) -> None:
    line = (
        f"{label:<50} {result['rate']:7.0f}/s  p50 {result['p50']:6.1f} ms  "
        f"p99 {result['p99']:6.1f} ms  cpu {result['cpu_us']:4.0f} us/req  "
        f"non-2xx {result['errors']:.0f}  load {result['load']:.2f}"
    )
    if bare:
        ratio = result["rate"] / bare["rate"]
        floors = result["rate"] >= 2000 and result["p99"] < 50 and result["errors"] == 0
        line += f"  {ratio:.2f} of bare  floor(2000/s, p99<50ms) {'met' if floors else 'MISSED'}"
        line += f", half of bare {'met' if ratio >= 0.5 else 'MISSED'}"
    print(line, flush=True)
    if "backlog" in result:
        print(
            f"{'':<50} then drained {result['backlog']:.0f} pending at "
            f"{result['drained_per_s']:.0f}/s ({result['left']:.0f} left)",
            flush=True,
        )


def best(results: list[dict[str, float]]) -> dict[str, float]:
    """The median run by rate: the machine is shared, so one run can be an outlier."""
    return sorted(results, key=lambda r: r["rate"])[len(results) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--workers", default="1,2", help="server process counts to measure")
    parser.add_argument("--runs", type=int, default=1, help="runs per figure; the median shown")
    parser.add_argument("--modes", default="embedded,accept", help="embedded and/or accept")
    parser.add_argument("--drain", type=int, default=60, help="seconds to wait for a backlog")
    parser.add_argument("--log-level", default="warning", help="DRAGON_LOG_LEVEL for the server")
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
        f"concurrent senders, {args.seconds} s per run, {os.cpu_count()} cores",
        flush=True,
    )
    urls = {"sqlite": f"sqlite+aiosqlite:///{workdir / 'ingest.db'}", "postgres": POSTGRES}
    modes = [m.strip() for m in args.modes.split(",")]
    for workers in [int(w) for w in args.workers.split(",")]:
        processes = f"{workers} process{'es' if workers > 1 else ''}"
        bare = best(
            [bare_load(workers=workers, script=script, args=args) for _ in range(args.runs)]
        )
        report(f"bare ASGI endpoint, {processes}", bare)
        for name in args.databases.split(","):
            url = urls[name.strip()]
            for mode in modes:
                worker = mode == "embedded"
                runs = [
                    serve_and_load(
                        url=url, worker=worker, workers=workers, script=script, args=args
                    )
                    for _ in range(args.runs)
                ]
                label = "embedded worker on" if worker else "accept only, worker apart"
                report(f"dragon on {name}, {processes}, {label}", best(runs), bare)


if __name__ == "__main__":
    main()
