"""The active policy: reading it, replacing it, and evaluating decisions against it."""

from __future__ import annotations

from dragon.domain.clock import Clock
from dragon.domain.entities import PolicyVersion
from dragon.domain.ids import new_id
from dragon.domain.policy import Policy, default_policy, parse_policy
from dragon.domain.ports import UnitOfWork, UnitOfWorkFactory
from dragon.services.audit_log import record
from dragon.services.context import Caller


class PolicyService:
    def __init__(self, uow: UnitOfWorkFactory, *, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock
        # Parsed policies by version hash: a version's text never changes, so neither does this.
        self._parsed: dict[str, Policy] = {}

    def _parse(self, source: str, version: str) -> Policy:
        policy = self._parsed.get(version)
        if policy is None:
            policy = self._parsed[version] = parse_policy(source)
        return policy

    async def active_in(self, uow: UnitOfWork) -> Policy:
        """The policy in force for this transaction; the shipped default until one is stored.

        Only the active version is read on every call; its source only when this process has
        not parsed that version yet (another replica activated it, or this one just started)."""
        version = await uow.policies.active_version()
        if version is None:
            return default_policy()
        parsed = self._parsed.get(version)
        if parsed is not None:
            return parsed
        stored = await uow.policies.active()
        if stored is None:  # only if the active version was removed between the two reads
            return default_policy()
        return self._parse(stored.source, stored.version)

    async def current(self) -> tuple[Policy, PolicyVersion | None]:
        async with self._uow(write=False) as uow:
            stored = await uow.policies.active()
            policy = await self.active_in(uow)
            return policy, stored

    async def history(self, *, limit: int = 50) -> list[PolicyVersion]:
        async with self._uow(write=False) as uow:
            return await uow.policies.history(limit=limit)

    async def replace(self, caller: Caller, source: str) -> PolicyVersion:
        """Validate, then make `source` the active policy. Earlier versions stay on record."""
        policy = parse_policy(source)
        now = self._clock()
        async with self._uow() as uow:
            previous = await uow.policies.active()
            await uow.policies.deactivate_all()
            stored = PolicyVersion(
                id=new_id("pol", now),
                version=policy.version,
                name=policy.name,
                source=source,
                active=True,
                created_at=now,
                created_by=caller.principal.id,
            )
            await uow.policies.add(stored)
            await record(
                uow,
                caller,
                action="policy.activated",
                target_type="policy",
                target_id=stored.id,
                now=now,
                details={
                    "version": policy.version,
                    "name": policy.name,
                    "previous_version": previous.version if previous else None,
                    "rules": len(policy.rules),
                },
            )
            await uow.commit()
        self._parsed[policy.version] = policy
        return stored

    async def ensure_stored(self, caller: Caller) -> None:
        """Record the shipped default as the first policy version, so decisions name a version
        that can be read back."""
        async with self._uow(write=False) as uow:
            if await uow.policies.active() is not None:
                return
        await self.replace(caller, default_policy().source)
