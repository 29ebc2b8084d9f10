"""`dragon deliveries`: list what came into the inbox, and send a dead delivery back."""

from __future__ import annotations

from typing import Annotated

import typer

from dragon.cli.context import CLI_CALLER, with_services
from dragon.cli.retry_queues import TriedRow, print_tried, send_back
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
    print_tried(
        ("source", "event", "received"),
        (
            TriedRow(
                what=(d.source, d.event_type),
                status=d.status.value,
                attempts=d.attempts,
                at=d.received_at,
                last_error=d.last_error,
                id=d.id,
            )
            for d in rows
        ),
    )


@deliveries_cli.command("retry")
def deliveries_retry(
    delivery_id: Annotated[str, typer.Argument(help="a dead delivery's id")],
) -> None:
    """Send a dead delivery back to the worker with its attempts reset (audited)."""
    send_back(delivery_id, lambda s: s.ingest.retry(CLI_CALLER, delivery_id))
