"""`dragon policy`: check a policy document before it is deployed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dragon.cli.context import err, out
from dragon.domain.errors import PolicyInvalid
from dragon.domain.policy import parse_policy

policy_cli = typer.Typer(help="Work with policy documents.", no_args_is_help=True)


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
