"""Measures notification delivery in one process: incidents opened (each writing its outbox row
in the same transaction), then the worker routing and delivering them to a signed webhook on
loopback; then the same with the receiver answering 503 (one failed attempt each, retry
scheduled).

    .venv/bin/python bench/bench_notifications.py [--database-url URL] [--incidents 500]

Defaults to a fresh SQLite file under var/bench/. Prints one line per phase with the load
average; figures on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from dragon.app import build_services
from dragon.domain.clock import system_clock
from dragon.domain.enums import Severity
from dragon.logs import configure_logging
from dragon.services.context import SYSTEM_CALLER
from dragon.services.incidents import NewIncident
from dragon.settings import Settings
from dragon.store.database import connect
from dragon.store.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
STATUS = {"code": 200}


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(STATUS["code"])
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


async def main(database_url: str, incidents: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    workdir = ROOT / "var" / "bench"
    routing = workdir / "notifications.yaml"
    routing.write_text(
        yaml.safe_dump(
            {
                "channels": {
                    "hook": {
                        "type": "webhook",
                        "url": f"http://{host!s}:{port}/hook",
                        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    }
                },
                "routes": [{"name": "default", "default": True, "channels": ["hook"]}],
            }
        )
    )
    await upgrade(database_url)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        notifications_file=str(routing),
    )
    configure_logging(level="warning", fmt="console")
    database = connect(database_url, pool_size=4)
    services = build_services(settings, database, clock=system_clock)
    try:
        for phase, status in (("delivered (200)", 200), ("retry scheduled (503)", 503)):
            STATUS["code"] = status
            started = time.perf_counter()
            for n in range(incidents):
                await services.incidents.open(
                    SYSTEM_CALLER, NewIncident(title=f"bench incident {n}", severity=Severity.SEV3)
                )
            opened = time.perf_counter() - started
            started = time.perf_counter()
            await services.notifications.route_pending(batch=incidents)
            attempted = 0
            while attempted < incidents:  # one attempt each; retries come due later
                attempted += await services.notifications.deliver_due(batch=100)
            drained = time.perf_counter() - started
            print(
                f"{phase:<24} open+outbox {incidents / opened:7.0f}/s   "
                f"route+send {incidents / drained:7.0f}/s   ({load()})"
            )
    finally:
        await services.notifications.close()
        await database.dispose()
        server.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--incidents", type=int, default=500)
    args = parser.parse_args()
    workdir = ROOT / "var" / "bench"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'notifications.db'}"
    asyncio.run(main(url, args.incidents))
