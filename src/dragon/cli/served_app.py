"""The app a `dragon serve` process runs, built by uvicorn from its import string: the command
itself (and the supervisor of several server processes) never imports the ASGI app, only the
processes that serve it do."""

from __future__ import annotations

import asyncio
import os
import signal
from types import FrameType
from typing import Any

from fastapi import FastAPI

from dragon.app import create_app
from dragon.cli.context import load_settings
from dragon.cli.serve import served_apps, stop_serving


def app_factory() -> FastAPI:
    """Used by uvicorn in one process (also with --reload): settings from the environment."""
    app = create_app(load_settings())
    app.state.give_up = stop_serving
    served_apps.append(app)
    return app


def supervised_app_factory() -> FastAPI:
    """Used by each server process of `dragon serve --workers N`: one whose start-up gives up
    tells the supervisor (its parent), which stops them all and exits 4."""
    app = create_app(load_settings())
    app.state.give_up = _tell_supervisor
    _end_streams_on_shutdown_signal(app)
    return app


def _end_streams_on_shutdown_signal(app: FastAPI) -> None:
    """What `_DrainingServer` does in one process, for a server process the supervisor runs:
    uvicorn has installed its shutdown handler by the time it builds the app (and puts the one
    before back after), so the end of the live streams is chained after it."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        shutdown = signal.getsignal(signum)
        if not callable(shutdown):  # not under uvicorn's handler: nothing to chain to
            continue

        def chained(sig: int, frame: FrameType | None, shutdown: Any = shutdown) -> None:
            shutdown(sig, frame)
            loop.call_soon_threadsafe(app.state.services.live.close)

        signal.signal(signum, chained)


def _tell_supervisor() -> None:
    """The parent of a server process is `_Supervisor`, which takes SIGUSR1 to mean this (and
    uvicorn's own supervisor would only log it)."""
    os.kill(os.getppid(), signal.SIGUSR1)
