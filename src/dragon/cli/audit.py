"""`dragon audit`: verify the audit log's hash chain and export it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from dragon.cli.context import err, out, with_services
from dragon.services.container import Services

audit_cli = typer.Typer(help="Read and verify the audit log.", no_args_is_help=True)


@audit_cli.command("verify")
def audit_verify() -> None:
    """Check the audit log's hash chain; exits 1 if it is broken."""
    report = with_services(lambda s: s.audit.verify())
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

    count = with_services(export)
    err.print(f"exported {count} events")
