"""The kill switch for every action: the DRAGON_ACTIONS_ENABLED setting and the admin toggle.

Actions run only while both say yes. The toggle is stored, so every worker process sees it at
its next pass; turning it either way is audited, and so is a process starting with the setting
off.
"""

from __future__ import annotations

from dragon.domain.clock import Clock
from dragon.domain.entities import ActionsSwitch
from dragon.domain.execution import ActionsState
from dragon.domain.ports import UnitOfWork, UnitOfWorkFactory
from dragon.services.audit_log import record
from dragon.services.context import Caller

SWITCH_NAME = "actions"


class ActionsSwitchService:
    def __init__(
        self, uow: UnitOfWorkFactory, *, clock: Clock, setting_enabled: bool, dry_run: bool
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._setting_enabled = setting_enabled
        self._dry_run = dry_run

    async def state_in(self, uow: UnitOfWork) -> ActionsState:
        switch = await uow.switches.get(SWITCH_NAME)
        switch_enabled = True if switch is None else switch.enabled
        reasons = []
        if not self._setting_enabled:
            reasons.append("DRAGON_ACTIONS_ENABLED is false")
        if not switch_enabled:
            reasons.append(f"turned off by {switch.changed_by if switch else 'an admin'}")
        return ActionsState(
            enabled=self._setting_enabled and switch_enabled,
            setting_enabled=self._setting_enabled,
            switch_enabled=switch_enabled,
            dry_run=self._dry_run,
            reason="; ".join(reasons) + (f": {switch.reason}" if switch and switch.reason else ""),
        )

    async def state(self) -> ActionsState:
        async with self._uow(write=False) as uow:
            return await self.state_in(uow)

    async def turn(self, caller: Caller, *, enabled: bool, reason: str) -> ActionsState:
        now = self._clock()
        async with self._uow() as uow:
            before = await uow.switches.get(SWITCH_NAME)
            await uow.switches.put(
                ActionsSwitch(
                    name=SWITCH_NAME,
                    enabled=enabled,
                    reason=reason,
                    changed_by=caller.principal.name,
                    changed_at=now,
                )
            )
            await record(
                uow,
                caller,
                action="actions.enabled" if enabled else "actions.disabled",
                target_type="actions",
                target_id=SWITCH_NAME,
                now=now,
                details={
                    "via": "api",
                    "reason": reason,
                    "was_enabled": True if before is None else before.enabled,
                    "setting_enabled": self._setting_enabled,
                },
            )
            await uow.commit()
        return await self.state()

    async def record_setting(self, caller: Caller) -> None:
        """Audit a process starting with DRAGON_ACTIONS_ENABLED=false."""
        if self._setting_enabled:
            return
        now = self._clock()
        async with self._uow() as uow:
            await record(
                uow,
                caller,
                action="actions.disabled",
                target_type="actions",
                target_id=SWITCH_NAME,
                now=now,
                details={"via": "setting", "setting": "DRAGON_ACTIONS_ENABLED", "value": False},
            )
            await uow.commit()
