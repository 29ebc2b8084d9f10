"""What every bench does to the processes it measures: start them on a free loopback port
(stopped again when an ExitStack closes), wait until they answer, read their CPU and memory
off /proc, make a database of their own, and say how loaded the machine was."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
DRAGON = Path(sys.executable).with_name("dragon")
UVICORN = Path(sys.executable).with_name("uvicorn")
SERVER_DSN = "postgresql://postgres@127.0.0.1:5432"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid` and its live children (uvicorn's server processes): on a shared,
    loaded machine this survives contention where wall-clock rates do not."""
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in children(pid))


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return float("nan")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except FileNotFoundError:  # the thread ended while we looked
            continue
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def wait_ready(port: int, path: str = "/readyz", *, seconds: float = 120) -> None:
    """Until something on `port` answers `path` below 500; a start-up on a loaded machine
    takes a while."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"nothing answered on port {port}")


def start_process(
    stack: ExitStack, command: list[str], *, env: dict[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:  # fmt: skip
    """Start `command` (its output to `log`, or nowhere); the stack's close sends SIGTERM,
    waits up to 30 s for a graceful exit, then kills."""
    sink = log.open("wb") if log else None
    output = sink if sink else subprocess.DEVNULL
    process = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
    )

    def stop() -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if sink:
            sink.close()

    stack.callback(stop)
    return process


def start_bare(
    stack: ExitStack, *, workers: int = 2, log: Path | None = None
) -> tuple[int, subprocess.Popen[bytes]]:
    """The baseline, served as Dragon is: uvicorn with `workers` processes on one port and
    Dragon's HTTP protocol (one write per answer); (port, the supervisor)."""
    port = free_port()
    process = start_process(
        stack,
        [str(UVICORN), "bare_asgi:app", "--port", str(port), "--workers", str(workers),
         "--log-level", "warning", "--no-access-log", "--app-dir", str(ROOT / "bench"),
         "--http", "dragon.http_protocol:CoalescingHttpToolsProtocol"],
        log=log,
    )  # fmt: skip
    wait_ready(port, "/")
    return port, process


def sql(statement: str, *, database: str) -> list[asyncpg.Record]:
    """One statement on the local PostgreSQL server, in `database`."""

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(f"{SERVER_DSN}/{database}")
        try:
            return list(await conn.fetch(statement))
        finally:
            await conn.close()

    return asyncio.run(run())


def recreate_database(name: str) -> None:
    """Drop and create the bench's own database (a dragon_bench_* name, never a shared one)."""
    sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", database="postgres")
    sql(f"CREATE DATABASE {name}", database="postgres")


def drop_database(name: str) -> None:
    sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", database="postgres")
