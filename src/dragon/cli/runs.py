"""`dragon runs prune`: delete old finished runs, as the worker's hourly job does."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dragon.cli.context import out, with_services

runs_cli = typer.Typer(help="Prune finished runs.", no_args_is_help=True)
PRUNE_SHOWN = 50


@runs_cli.command("prune")
def runs_prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="say what would be pruned; delete nothing")
    ] = False,
) -> None:
    """Delete finished runs beyond the newest DRAGON_RUN_RETENTION_COUNT that finished more
    than DRAGON_RUN_RETENTION_DAYS ago, as the worker's hourly job does (audited as
    runs.pruned). Incidents, decisions and audit events are never pruned."""
    report = with_services(lambda s: s.runs.prune(dry_run=dry_run, show=PRUNE_SHOWN))
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
