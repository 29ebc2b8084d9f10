"""`dragon notifications`: list what was sent where, and send a failed one again."""

from __future__ import annotations

from typing import Annotated

import typer

from dragon.cli.context import CLI_CALLER, with_services
from dragon.cli.retry_queues import TriedRow, print_tried, send_back
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
    print_tried(
        ("event", "channel", "created"),
        (
            TriedRow(
                what=(n.event, n.channel),
                status=n.status.value,
                attempts=n.attempts,
                at=n.created_at,
                last_error=n.last_error,
                id=n.id,
            )
            for n in rows
        ),
    )


@notifications_cli.command("retry")
def notifications_retry(
    notification_id: Annotated[str, typer.Argument(help="a failed notification's id")],
) -> None:
    """Send a failed notification again with its attempts reset (audited)."""
    send_back(notification_id, lambda s: s.notifications.retry(CLI_CALLER, notification_id))
