"""`dragon keys`: create, list and revoke API keys."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dragon.cli.context import CLI_CALLER, out, with_services
from dragon.domain.enums import Role

keys_cli = typer.Typer(help="Manage API keys.", no_args_is_help=True)


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="principal name, e.g. alice")],
    role: Annotated[Role, typer.Option(help="viewer, developer, approver or admin")],
    email: Annotated[str | None, typer.Option(help="used to match chat users")] = None,
) -> None:
    """Create an API key; the secret is printed once."""
    issued = with_services(
        lambda s: s.auth.create_key(CLI_CALLER, name=name, role=role, email=email)
    )
    out.print(f"created key {issued.key.id} for {escape(name)} ({role.value}); store it now:")
    print(issued.secret)  # noqa: T201 - plain, so scripts can capture it


@keys_cli.command("list")
def keys_list() -> None:
    """List API keys (never their secrets)."""
    rows = with_services(lambda s: s.auth.list_keys())
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
    with_services(lambda s: s.auth.revoke_key(CLI_CALLER, key_id))
    out.print(f"revoked {escape(key_id)}")
