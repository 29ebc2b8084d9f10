"""API keys issued straight into a store, as `dragon keys create` would, without starting a
`dragon` process for it (each one costs seconds of CPU to import the app): for tests whose
subject is not the CLI. The CLI's own output is tested in tests/integration/test_cli.py."""

from __future__ import annotations

from collections.abc import Mapping

from dragon.domain.clock import system_clock
from dragon.domain.enums import Role
from dragon.services.auth import AuthService, JwtSettings
from dragon.services.context import SYSTEM_CALLER
from dragon.store.database import connect
from dragon.store.unit_of_work import SqlUnitOfWorkFactory


async def issue_keys(url: str, roles: Mapping[str, Role], *, prefix: str) -> dict[str, str]:
    """One key per name in `roles` (named `<prefix>-<name>`) in the store at `url`; returns
    each name's secret."""
    database = connect(url, pool_size=2, echo=False)
    auth = AuthService(
        SqlUnitOfWorkFactory(database),
        clock=system_clock,
        jwt_settings=JwtSettings(algorithm="HS256", key=None, issuer="dragon", audience="x"),
    )
    try:
        return {
            name: (await auth.create_key(SYSTEM_CALLER, name=f"{prefix}-{name}", role=role)).secret
            for name, role in roles.items()
        }
    finally:
        await database.dispose()
