"""`dragon deliveries`: list what came into the inbox, and send a dead delivery back."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dragon.cli.context import CLI_CALLER, out, with_services
from dragon.domain.enums import DeliveryStatus
from dragon.domain.ports import DeliveryQuery, Page

deliveries_cli = typer.Typer(help="Inspect and retry inbox deliveries.", no_args_is_help=True)


@deliveries_cli.command("list")
def deliveries_list(
    status: Annotated[
        DeliveryStatus | None, typer.Option(help="pending, processed, ignored or dead")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
) -> None:
    """List deliveries, newest first (dead ones need attention)."""
    rows, _ = with_services(
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
    with_services(lambda s: s.ingest.retry(CLI_CALLER, delivery_id))
    out.print(f"{escape(delivery_id)} is pending again")
