"""What `dragon deliveries` and `dragon notifications` share: both list items that are tried
until they succeed or give up, and send one that gave up back to be tried again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from rich.markup import escape
from rich.table import Table

from dragon.cli.context import out, with_services
from dragon.services.container import Services


@dataclass(frozen=True, slots=True)
class TriedRow:
    """One listed item: the two columns that say what it is, then how its tries went."""

    what: tuple[str, str]
    status: str
    attempts: int
    at: datetime
    last_error: str | None
    id: str


def print_tried(columns: tuple[str, str, str], rows: Iterable[TriedRow]) -> None:
    """A table of `rows` under `columns` (the two `what` columns and the time's), newest first
    as given; everything from the store is escaped."""
    first, second, at = columns
    table = Table(first, second, "status", "attempts", at, "last error")
    # Ids are copied into the `retry` command, so they never wrap.
    table.add_column("id", no_wrap=True)
    for row in rows:
        table.add_row(
            escape(row.what[0]),
            escape(row.what[1]),
            row.status,
            str(row.attempts),
            f"{row.at:%Y-%m-%d %H:%M:%S}",
            escape((row.last_error or "-")[:60]),
            row.id,
        )
    out.print(table)


def send_back(item_id: str, retry: Callable[[Services], Awaitable[object]]) -> None:
    """Run `retry` (the service's audited retry of `item_id`) and say the item is pending."""
    with_services(retry)
    out.print(f"{escape(item_id)} is pending again")
