"""`dragon serve`: the API, console and embedded worker under uvicorn, in one process or in
several sharing the port under a supervisor. Either way a start-up that gives up (the store
stayed unusable) ends the command with exit 4 and a final error."""

from __future__ import annotations

import asyncio
import os
import signal
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from dragon.cli.context import err, load_settings
from dragon.http_protocol import CoalescingHttpToolsProtocol
from dragon.settings import Profile

if TYPE_CHECKING:
    from fastapi import FastAPI

GAVE_UP = 4
GAVE_UP_MESSAGE = "[red]Dragon gave up starting: the store stayed unusable (see the log).[/red]"
WORKER_HEALTHCHECK_SECONDS = 120

# The apps this process serves (their factories, in dragon.cli.served_app, add them).
served_apps: list[FastAPI] = []
_servers: list[uvicorn.Server] = []


def stop_serving() -> None:
    """Start-up gave up (the store stayed unusable): shut the server down, then exit 4."""
    for server in _servers:
        server.should_exit = True


def _startup_failed() -> bool:
    return any(getattr(app.state, "startup_failed", False) for app in served_apps)


class _DrainingServer(uvicorn.Server):
    """uvicorn, except that a shutdown signal first ends the apps' live event streams: uvicorn
    waits for open responses before it shuts down, and an event stream never ends by itself."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for app in served_apps:
            loop.call_soon_threadsafe(app.state.services.live.close)


class _Supervisor(Multiprocess):
    """uvicorn's supervisor of the server processes, which also stops them all when one says
    (SIGUSR1) that its start-up gave up: respawned, it would only wait out the same backoff
    again, not ready, for ever."""

    gave_up = False

    def handle_usr1(self) -> None:  # called by Multiprocess.handle_signals, by signal name
        self.gave_up = True
        self.should_exit.set()

    @property
    def failed_to_start(self) -> bool:
        """A process died before serving (the app or the socket is broken): uvicorn stops."""
        return any(process.exitcode == STARTUP_FAILURE for process in self.processes)


def _exit_after_graceful_shutdown(_signum: int, _frame: object) -> None:
    raise SystemExit(GAVE_UP if _startup_failed() else 0)


def serve(
    host: Annotated[str | None, typer.Option(help="bind address [DRAGON_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="bind port [DRAGON_PORT]")] = None,
    reload: Annotated[bool, typer.Option(help="restart on code changes (development)")] = False,
    workers: Annotated[
        int, typer.Option(min=1, help="server processes sharing the port (one per core)")
    ] = 1,
) -> None:
    """Run the API, console and embedded worker."""
    if host:
        os.environ["DRAGON_HOST"] = host
    if port:
        os.environ["DRAGON_PORT"] = str(port)
    settings = load_settings()
    problems = settings.secret_problems()
    if problems and settings.profile is Profile.PROD:
        err.print("[red]Dragon refuses to start in the prod profile:[/red]")
        for problem in problems:
            err.print(f"  - {problem}")
        raise typer.Exit(2)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the handler
    # that was there before it; this one turns a finished graceful shutdown into exit 0.
    signal.signal(signal.SIGTERM, _exit_after_graceful_shutdown)
    options: dict[str, Any] = {
        "factory": True,
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        # Forwarded headers are the app's to judge (DRAGON_FORWARDED_ALLOW_IPS), not uvicorn's.
        "proxy_headers": False,
        "server_header": False,
        # One write per answer, not one for the headers and one for the body.
        "http": CoalescingHttpToolsProtocol,
        "timeout_graceful_shutdown": 20,
        # The supervisor kills a process that misses a health ping; a spawned process answers
        # only once it has imported Dragon, which takes far longer than uvicorn's 5 s on a busy
        # host, so with the default the processes were killed and respawned for minutes on end.
        "timeout_worker_healthcheck": WORKER_HEALTHCHECK_SECONDS,
    }
    if reload:
        uvicorn.run("dragon.cli.served_app:app_factory", reload=True, **options)
        return
    if workers > 1:
        _supervise(workers=workers, options=options)
        return
    server = _DrainingServer(uvicorn.Config("dragon.cli.served_app:app_factory", **options))
    _servers.append(server)
    server.run()
    if not server.started:
        raise typer.Exit(STARTUP_FAILURE)  # uvicorn's own exit code for a failed start-up
    if _startup_failed():
        err.print(GAVE_UP_MESSAGE)
        raise typer.Exit(GAVE_UP)


def _supervise(*, workers: int, options: dict[str, Any]) -> None:
    """`workers` server processes on one socket, each draining on SIGTERM as uvicorn does."""
    config = uvicorn.Config(
        "dragon.cli.served_app:supervised_app_factory", workers=workers, **options
    )
    supervisor = _Supervisor(config, sockets=[config.bind_socket()])
    supervisor.run()
    if supervisor.gave_up:
        err.print(GAVE_UP_MESSAGE)
        raise typer.Exit(GAVE_UP)
    if supervisor.failed_to_start:
        raise typer.Exit(STARTUP_FAILURE)
