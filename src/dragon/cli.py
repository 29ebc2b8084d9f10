"""The `dragon` command: serve, migrate, manage keys, check policies, verify the audit log,
prune runs."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, TypeVar

import orjson
import typer
import uvicorn
from fastapi import FastAPI
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dragon.app import build_services, create_app, delivery_worker
from dragon.domain.clock import system_clock
from dragon.domain.enums import DeliveryStatus, NotificationStatus, Role
from dragon.domain.errors import DragonError, PolicyInvalid
from dragon.domain.policy import parse_policy
from dragon.domain.ports import DeliveryQuery, NotificationQuery, Page
from dragon.logs import configure_logging
from dragon.services.container import Services
from dragon.services.context import SYSTEM, Caller
from dragon.settings import Profile, SecretFileError, Settings
from dragon.store.database import connect
from dragon.store.migrate import upgrade
from dragon.vault import VaultError
from dragon.wiring.lifecycle import wait_for_store
from dragon.wiring.shared_state import shared_state
from dragon.wiring.tracing import start_tracing, stop_tracing
from dragon.workers.notifications import run_notification_worker
from dragon.workers.runs import run_action_worker
from dragon.workers.stopping import drain
from dragon.workers.sweeper import run_expiry_sweeps
from dragon.workers.triage import run_triage_worker

T = TypeVar("T")
cli = typer.Typer(
    help="Dragon, the governed DevOps incident orchestrator.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals can hold secrets
)
keys_cli = typer.Typer(help="Manage API keys.", no_args_is_help=True)
policy_cli = typer.Typer(help="Work with policy documents.", no_args_is_help=True)
audit_cli = typer.Typer(help="Read and verify the audit log.", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")
cli.add_typer(policy_cli, name="policy")
cli.add_typer(audit_cli, name="audit")
deliveries_cli = typer.Typer(help="Inspect and retry inbox deliveries.", no_args_is_help=True)
cli.add_typer(deliveries_cli, name="deliveries")
notifications_cli = typer.Typer(help="Inspect and retry notifications.", no_args_is_help=True)
cli.add_typer(notifications_cli, name="notifications")
runs_cli = typer.Typer(help="Prune finished runs.", no_args_is_help=True)
cli.add_typer(runs_cli, name="runs")
PRUNE_SHOWN = 50
# Output is read by scripts and editors as much as by people: lines are never wrapped (a
# `FILE:LINE:` must stay whole), and anything that came from input or the store is escaped, so
# text such as "[/x]" in a name or a policy prints as itself instead of being taken for markup.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
CLI_CALLER = Caller(principal=SYSTEM, correlation_id="cli")


def _settings() -> Settings:
    try:
        settings = Settings()
    except (SecretFileError, VaultError) as exc:
        err.print(f"[red]Dragon cannot read its settings:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    return settings


def _with_services(work: Callable[[Services], Awaitable[T]]) -> T:
    settings = _settings()

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


_served: list[FastAPI] = []
_servers: list[uvicorn.Server] = []


def app_factory() -> FastAPI:
    """Used by uvicorn (also with --reload): settings from the environment."""
    app = create_app(_settings())
    app.state.give_up = _stop_serving
    _served.append(app)
    return app


def _stop_serving() -> None:
    """Start-up gave up (the store stayed unusable): shut the server down, then exit 4."""
    for server in _servers:
        server.should_exit = True


def _startup_failed() -> bool:
    return any(getattr(app.state, "startup_failed", False) for app in _served)


class _DrainingServer(uvicorn.Server):
    """uvicorn, except that a shutdown signal first ends the apps' live event streams: uvicorn
    waits for open responses before it shuts down, and an event stream never ends by itself."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for app in _served:
            loop.call_soon_threadsafe(app.state.services.live.close)


WORKER_HEALTHCHECK_SECONDS = 120


def _exit_after_graceful_shutdown(_signum: int, _frame: object) -> None:
    raise SystemExit(4 if _startup_failed() else 0)


@cli.command()
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
    settings = _settings()
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
        "timeout_graceful_shutdown": 20,
    }
    if reload or workers > 1:
        # uvicorn's supervisor runs the processes; each drains on SIGTERM as uvicorn does.
        # It kills a process that misses a health ping; a spawned process answers only once
        # it has imported Dragon, which takes far longer than uvicorn's 5 s on a busy host,
        # so with the default the processes were killed and respawned for minutes on end.
        options["timeout_worker_healthcheck"] = WORKER_HEALTHCHECK_SECONDS
        uvicorn.run("dragon.cli:app_factory", reload=reload, workers=workers, **options)
        return
    server = _DrainingServer(uvicorn.Config("dragon.cli:app_factory", **options))
    _servers.append(server)
    server.run()
    if not server.started:
        raise typer.Exit(3)  # uvicorn's own exit code for a failed start-up
    if _startup_failed():
        err.print("[red]Dragon gave up starting: the store stayed unusable (see the log).[/red]")
        raise typer.Exit(4)


@cli.command()
def worker() -> None:
    """Process deliveries, triage new incidents and expire overdue decisions, without serving
    HTTP. Run any number beside `dragon serve` with DRAGON_WORKER_ENABLED=false; they share the
    work through the store (claims skip rows another worker holds)."""
    settings = _settings()

    async def run() -> None:
        provider = start_tracing(settings)
        database = connect(settings.database_url, pool_size=settings.db_pool_size)
        services = build_services(settings, database, clock=system_clock)
        # Events a worker publishes reach the consoles on every replica through Redis.
        shared = shared_state(settings, services, role="worker")
        if shared.live is not None:
            services = dataclasses.replace(services, live=shared.live)
        checks = await wait_for_store(services, timeout_seconds=settings.startup_timeout_seconds)
        if any(state != "ok" for state in checks.values()):
            await database.dispose()
            failing = ", ".join(f"{name}: {state}" for name, state in checks.items())
            err.print(
                f"[red]dragon worker gave up starting after "
                f"{settings.startup_timeout_seconds:g} s[/red] ({escape(failing)}); check "
                "DRAGON_DATABASE_URL and that the store is up, then run `dragon migrate`"
            )
            raise typer.Exit(4)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        # Decisions (triage's in this worker, too) name the active policy: it must be stored,
        # as `dragon serve` does, before any run is claimed, or runs are refused as unknown.
        await services.policies.ensure_stored(CLI_CALLER)
        stopping = asyncio.Event()
        # The loops that hold leases or call out finish the work in hand on SIGTERM.
        cooperative = [
            asyncio.create_task(
                run_action_worker(
                    services, poll_seconds=settings.worker_poll_seconds, stopping=stopping
                )
            ),
            asyncio.create_task(
                run_notification_worker(
                    services, poll_seconds=settings.notification_poll_seconds, stopping=stopping
                )
            ),
        ]
        if settings.triage_enabled:
            cooperative.append(
                asyncio.create_task(
                    run_triage_worker(
                        services, poll_seconds=settings.triage_poll_seconds, stopping=stopping
                    )
                )
            )
        tasks = [
            asyncio.create_task(delivery_worker(settings, services)),
            asyncio.create_task(
                run_expiry_sweeps(services, every_seconds=settings.expiry_sweep_seconds)
            ),
            *cooperative,
        ]
        if shared.board is not None:
            # Workers serve no HTTP: the API replicas show their breakers from this board.
            tasks.append(asyncio.create_task(shared.board.run(services.breakers.states)))
        await services.actions.record_setting(CLI_CALLER)
        engine = "procrastinate" if settings.uses_procrastinate() else "the inbox"
        err.print(f"dragon worker started on {database.dialect}, jobs on {engine}")
        await stop.wait()
        # Running actions, triage and sends finish (their leases released) up to the deadline;
        # any other pass in progress finishes its transaction or rolls back: nothing is lost.
        busy = await drain(
            cooperative, stopping=stopping, seconds=settings.shutdown_timeout_seconds
        )
        if busy:
            err.print(f"dragon worker: {busy} loop(s) still busy at the shutdown deadline")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await services.ingest.close()
        await services.triage.close()
        await services.runs.close()
        await services.notifications.close()
        await database.dispose()
        if shared.redis is not None:
            await shared.redis.close()
        if provider is not None:
            await asyncio.to_thread(stop_tracing, provider)

    asyncio.run(run())


@cli.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = _settings()
    asyncio.run(upgrade(settings.database_url))
    out.print("database is at the latest schema")


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="principal name, e.g. alice")],
    role: Annotated[Role, typer.Option(help="viewer, developer, approver or admin")],
    email: Annotated[str | None, typer.Option(help="used to match chat users")] = None,
) -> None:
    """Create an API key; the secret is printed once."""
    issued = _with_services(
        lambda s: s.auth.create_key(CLI_CALLER, name=name, role=role, email=email)
    )
    out.print(f"created key {issued.key.id} for {escape(name)} ({role.value}); store it now:")
    print(issued.secret)  # noqa: T201 - plain, so scripts can capture it


@keys_cli.command("list")
def keys_list() -> None:
    """List API keys (never their secrets)."""
    rows = _with_services(lambda s: s.auth.list_keys())
    table = Table("id", "name", "role", "prefix", "created", "last used", "revoked")
    for key, principal in rows:
        table.add_row(
            key.id,
            escape(key.name),
            principal.role.value if principal else "?",
            key.prefix,
            f"{key.created_at:%Y-%m-%d %H:%M}",
            f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "-",
            f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "-",
        )
    out.print(table)


@keys_cli.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key id from `keys list`")]) -> None:
    """Revoke an API key at once."""
    _with_services(lambda s: s.auth.revoke_key(CLI_CALLER, key_id))
    out.print(f"revoked {escape(key_id)}")


@policy_cli.command("check")
def policy_check(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Validate a policy file; every problem is reported with its line number."""
    try:
        policy = parse_policy(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        err.print(f"{escape(str(file))}: not UTF-8 text")
        raise typer.Exit(1) from None
    except PolicyInvalid as exc:
        for problem in exc.problems:
            where = f"{file}:{problem.line}" if problem.line else str(file)
            at = f"{problem.path}: " if problem.path else ""
            err.print(escape(f"{where}: {at}{problem.message}"))
        err.print(f"[red]{len(exc.problems)} problem(s)[/red]")
        raise typer.Exit(1) from None
    out.print(
        escape(f"{file}: ok — policy {policy.name!r}, {len(policy.rules)} rules, {policy.version}")
    )


@audit_cli.command("verify")
def audit_verify() -> None:
    """Check the audit log's hash chain; exits 1 if it is broken."""
    report = _with_services(lambda s: s.audit.verify())
    if report.ok:
        out.print(f"ok: {report.checked} events, chain intact")
        return
    err.print(
        f"[red]broken[/red] at seq {report.first_broken_seq}: {report.reason} "
        f"({report.checked} events verified before it)"
    )
    raise typer.Exit(1)


@audit_cli.command("export")
def audit_export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file; default stdout")
    ] = None,
) -> None:
    """Write every audit event as JSON lines, oldest first."""

    async def export(services: Services) -> int:
        count = 0
        sink = output.open("wb") if output else sys.stdout.buffer
        try:
            async for event in services.audit.export():
                row = {
                    k: getattr(event, k)
                    for k in (
                        "seq",
                        "occurred_at",
                        "actor_id",
                        "actor_name",
                        "action",
                        "target_type",
                        "target_id",
                        "details",
                        "correlation_id",
                        "client_address",
                        "prev_hash",
                        "hash",
                    )
                }
                sink.write(orjson.dumps(row) + b"\n")
                count += 1
        finally:
            if output:
                sink.close()
        return count

    count = _with_services(export)
    err.print(f"exported {count} events")


@deliveries_cli.command("list")
def deliveries_list(
    status: Annotated[
        DeliveryStatus | None, typer.Option(help="pending, processed, ignored or dead")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
) -> None:
    """List deliveries, newest first (dead ones need attention)."""
    rows, _ = _with_services(
        lambda s: s.ingest.find(DeliveryQuery(status=status, page=Page(limit=limit)))
    )
    table = Table("source", "event", "status", "attempts", "received", "last error")
    # Ids are copied into `deliveries retry`, so they never wrap.
    table.add_column("id", no_wrap=True)
    for d in rows:
        table.add_row(
            d.source,
            escape(d.event_type),
            d.status.value,
            str(d.attempts),
            f"{d.received_at:%Y-%m-%d %H:%M:%S}",
            escape((d.last_error or "-")[:60]),
            d.id,
        )
    out.print(table)


@deliveries_cli.command("retry")
def deliveries_retry(
    delivery_id: Annotated[str, typer.Argument(help="a dead delivery's id")],
) -> None:
    """Send a dead delivery back to the worker with its attempts reset (audited)."""
    _with_services(lambda s: s.ingest.retry(CLI_CALLER, delivery_id))
    out.print(f"{escape(delivery_id)} is pending again")


@notifications_cli.command("list")
def notifications_list(
    status: Annotated[
        NotificationStatus | None,
        typer.Option(help="pending, sent, failed, throttled or skipped"),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
) -> None:
    """List notifications, newest first (failed ones need attention). Targets are masked."""
    rows, _ = _with_services(
        lambda s: s.notifications.find(NotificationQuery(status=status, page=Page(limit=limit)))
    )
    table = Table("event", "channel", "status", "attempts", "created", "last error")
    table.add_column("id", no_wrap=True)
    for n in rows:
        table.add_row(
            escape(n.event),
            escape(n.channel),
            n.status.value,
            str(n.attempts),
            f"{n.created_at:%Y-%m-%d %H:%M:%S}",
            escape((n.last_error or "-")[:60]),
            n.id,
        )
    out.print(table)


@notifications_cli.command("retry")
def notifications_retry(
    notification_id: Annotated[str, typer.Argument(help="a failed notification's id")],
) -> None:
    """Send a failed notification again with its attempts reset (audited)."""
    _with_services(lambda s: s.notifications.retry(CLI_CALLER, notification_id))
    out.print(f"{escape(notification_id)} is pending again")


@runs_cli.command("prune")
def runs_prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="say what would be pruned; delete nothing")
    ] = False,
) -> None:
    """Delete finished runs beyond the newest DRAGON_RUN_RETENTION_COUNT that finished more
    than DRAGON_RUN_RETENTION_DAYS ago, as the worker's hourly job does (audited as
    runs.pruned). Incidents, decisions and audit events are never pruned."""
    report = _with_services(lambda s: s.runs.prune(dry_run=dry_run, show=PRUNE_SHOWN))
    if report.runs:
        table = Table("action", "status", "finished", "decision")
        table.add_column("id", no_wrap=True)
        for run in report.runs:
            finished = f"{run.finished_at:%Y-%m-%d %H:%M}" if run.finished_at else "-"
            table.add_row(escape(run.action), run.status.value, finished, run.decision_id, run.id)
        out.print(table)
        if report.count > len(report.runs):
            out.print(f"... and {report.count - len(report.runs)} more")
    verb = "would prune" if dry_run else "pruned"
    out.print(
        f"{verb} {report.count} run(s) finished before {report.older_than:%Y-%m-%d %H:%M} UTC, "
        f"beyond the newest {report.keep} finished"
    )


def main() -> None:
    cli()
