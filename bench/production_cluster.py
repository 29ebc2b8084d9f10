"""Dragon in production mode for the benchmarks: a private redis-server, a dedicated
PostgreSQL database (dragon_bench_*, dropped on exit), `dragon serve --workers 2` and two
`dragon worker` processes; plus what the bench reads off them (/proc CPU and RSS, the
database's own backends).

Everything started here is stopped, and the database dropped, when the ExitStack closes:
on success, on an exception, on Ctrl-C and on SIGTERM (turned into SystemExit).
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from processes import (
    DRAGON,
    children,
    cmdline,
    cpu_seconds,
    drop_database,
    free_port,
    recreate_database,
    sql,
    start_process,
    wait_ready,
)

_LOG_NUMBERS = itertools.count()


def stop_on_sigterm() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C does, so every cleanup callback runs."""

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGHUP, leave)


@dataclass
class Cluster:
    """The processes of one production-mode Dragon and what they cost."""

    stack: ExitStack
    workdir: Path
    database: str
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(
        self, command: list[str], *, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{Path(command[0]).name}-{next(_LOG_NUMBERS)}.log"
        return start_process(self.stack, command, env=env, log=log)

    def sql(self, statement: str) -> list[asyncpg.Record]:
        return sql(statement, database=self.database)

    def create_database(self) -> None:
        recreate_database(self.database)
        # DRAGON_BENCH_KEEP_DATABASE=1 leaves it for EXPLAIN (ANALYZE) on the grown tables;
        # the next run recreates it.
        if os.environ.get("DRAGON_BENCH_KEEP_DATABASE") != "1":
            self.stack.callback(drop_database, self.database)

    def boot(
        self,
        *,
        secret: str,
        pool_size: int,
        concurrency: int,
        worker_nice: int = 0,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        redis_server = shutil.which("redis-server")
        if not redis_server:
            raise SystemExit("the production bench needs redis-server (Debian package redis)")
        redis_port = free_port()
        self.start([redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", str(self.workdir)])  # fmt: skip
        self.create_database()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DRAGON_")},
            "DRAGON_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.database}",
            "DRAGON_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "DRAGON_LOG_LEVEL": "warning",
            "DRAGON_BOOTSTRAP_ADMIN": "false",
            "DRAGON_GITHUB_WEBHOOK_SECRET": secret,
            "DRAGON_WORKER_ENABLED": "false",
            "DRAGON_DB_POOL_SIZE": str(pool_size),
            "DRAGON_WORKER_CONCURRENCY": str(concurrency),
            "DRAGON_WORKER_NICE": str(worker_nice),
            **(extra_env or {}),
        }
        migrated = subprocess.run(
            [str(DRAGON), "migrate"], env=self.env, capture_output=True, text=True, check=False
        )
        if migrated.returncode:
            raise SystemExit(f"dragon migrate failed:\n{migrated.stderr[-3000:]}")
        self.port = free_port()
        self.api = self.start(
            [str(DRAGON), "serve", "--port", str(self.port), "--workers", "2"], env=self.env
        )
        self.workers = [self.start([str(DRAGON), "worker"], env=self.env) for _ in range(2)]
        wait_ready(self.port, seconds=300)

    def admin_key(self) -> str:
        out = subprocess.run(
            [str(DRAGON), "keys", "create", "--name", "bench", "--role", "admin"],
            env=self.env, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        return out.strip().splitlines()[-1]

    def processes(self) -> dict[str, int]:
        """Name → pid of every Dragon process: the API's server processes and the workers."""
        assert self.api is not None
        # The supervisor's children are the server processes and multiprocessing's
        # resource tracker; only the former serve.
        apis = sorted(p for p in children(self.api.pid) if b"spawn_main" in cmdline(p))
        return {f"api-{i}": pid for i, pid in enumerate(apis)} | {
            f"worker-{i}": w.pid for i, w in enumerate(self.workers)
        }

    def postgres_backends(self) -> list[int]:
        mine = f"datname = '{self.database}' AND pid <> pg_backend_pid()"
        rows = self.sql(f"SELECT pid FROM pg_stat_activity WHERE {mine}")  # noqa: S608 - own name
        return [int(r["pid"]) for r in rows]


class CpuMeter:
    """CPU seconds each named process (and the database's backends together) spent between
    `start()` and `stop()`: the cost per delivery that survives other load on the machine."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._before: dict[str, float] = {}
        self._pg_before: dict[int, float] = {}

    def start(self) -> None:
        self._before = {n: cpu_seconds(p) for n, p in self._cluster.processes().items()}
        self._pg_before = {p: cpu_seconds(p) for p in self._cluster.postgres_backends()}

    def stop(self) -> dict[str, float]:
        spent = {
            n: cpu_seconds(p) - self._before.get(n, 0.0)
            for n, p in self._cluster.processes().items()
        }
        backends = set(self._cluster.postgres_backends()) | set(self._pg_before)
        spent["postgres"] = sum(
            max(0.0, cpu_seconds(p) - self._pg_before.get(p, 0.0)) for p in backends
        )
        return spent
