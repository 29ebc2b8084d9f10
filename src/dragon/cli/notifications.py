"""`dragon notifications`: list what was sent where, and send a failed one again."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dragon.cli.context import CLI_CALLER, out, with_services
from dragon.domain.enums import NotificationStatus
from dragon.domain.ports import NotificationQuery, Page

notifications_cli = typer.Typer(help="Inspect and retry notifications.", no_args_is_help=True)


@notifications_cli.command("list")
def notifications_list(
    status: Annotated[
        NotificationStatus | None,
        typer.Option(help="pending, sent, failed, throttled or skipped"),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
) -> None:
    """List notifications, newest first (failed ones need attention). Targets are masked."""
    rows, _ = with_services(
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
    with_services(lambda s: s.notifications.retry(CLI_CALLER, notification_id))
    out.print(f"{escape(notification_id)} is pending again")
