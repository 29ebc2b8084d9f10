"""The `dragon` command: serve, run workers, migrate, manage keys, check policies, verify the
audit log, inspect deliveries and notifications, prune runs. One module per command group."""

from __future__ import annotations

import typer

from dragon.cli.audit import audit_cli
from dragon.cli.context import CLI_CALLER
from dragon.cli.deliveries import deliveries_cli
from dragon.cli.keys import keys_cli
from dragon.cli.migrate import migrate
from dragon.cli.notifications import notifications_cli
from dragon.cli.policy import policy_cli
from dragon.cli.runs import runs_cli
from dragon.cli.serve import serve
from dragon.cli.worker import worker

__all__ = ["CLI_CALLER", "cli", "main"]

cli = typer.Typer(
    help="Dragon, the governed DevOps incident orchestrator.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals can hold secrets
)
cli.command()(serve)
cli.command()(worker)
cli.command()(migrate)
cli.add_typer(keys_cli, name="keys")
cli.add_typer(policy_cli, name="policy")
cli.add_typer(audit_cli, name="audit")
cli.add_typer(deliveries_cli, name="deliveries")
cli.add_typer(notifications_cli, name="notifications")
cli.add_typer(runs_cli, name="runs")


def main() -> None:
    cli()
