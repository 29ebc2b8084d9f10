"""What every `dragon` command works with: its settings, the services on the store, the two
consoles it prints on, and the caller it acts as."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from dragon.domain.clock import system_clock
from dragon.domain.errors import DragonError
from dragon.logs import configure_logging
from dragon.services.container import Services
from dragon.services.context import SYSTEM, Caller
from dragon.settings import SecretFileError, Settings
from dragon.store.database import connect
from dragon.vault import VaultError
from dragon.wiring.services import build_services

T = TypeVar("T")
# Output is read by scripts and editors as much as by people: lines are never wrapped (a
# `FILE:LINE:` must stay whole), and anything that came from input or the store is escaped, so
# text such as "[/x]" in a name or a policy prints as itself instead of being taken for markup.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
CLI_CALLER = Caller(principal=SYSTEM, correlation_id="cli")


def load_settings() -> Settings:
    try:
        settings = Settings()
    except (SecretFileError, VaultError) as exc:
        err.print(f"[red]Dragon cannot read its settings:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    return settings


def with_services(work: Callable[[Services], Awaitable[T]]) -> T:
    """Run `work` on the store the settings name; a DragonError is printed and exits 1."""
    settings = load_settings()

    async def run() -> T:
        database = connect(settings.database_url, pool_size=2)
        services = build_services(settings, database, clock=system_clock)
        try:
            return await work(services)
        finally:
            await services.notifications.close()
            await services.runs.close()
            await database.dispose()

    try:
        return asyncio.run(run())
    except DragonError as exc:
        err.print(f"[red]error[/red] ({exc.code}): {escape(exc.message)}")
        raise typer.Exit(1) from None
