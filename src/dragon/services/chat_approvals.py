"""Approvals from chat (Slack buttons): the chat user becomes a Dragon principal by email, then
the very same verdict use case as the API runs (roles, separation of duties, quorum, audit),
with via=slack. Whoever cannot be mapped or is refused gets a private explanation, and the
attempt is audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog

from dragon.domain.clock import Clock
from dragon.domain.entities import Principal
from dragon.domain.enums import ApprovalChannel, PrincipalKind, Role, Verdict
from dragon.domain.errors import DragonError, Unavailable
from dragon.domain.notifications import ChatAction
from dragon.domain.ports import ChatDirectory, UnitOfWorkFactory
from dragon.services.audit_log import record
from dragon.services.context import Caller
from dragon.services.decisions import DecisionService

log = structlog.get_logger("dragon.chatops")


@dataclass(frozen=True)
class ChatReply:
    accepted: bool
    text: str
    code: str | None = None


class ChatApprovals:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        *,
        decisions: DecisionService,
        directory: ChatDirectory,
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._decisions = decisions
        self._directory = directory
        self._clock = clock

    async def handle(
        self, action: ChatAction, *, correlation_id: str | None, client_address: str | None
    ) -> ChatReply:
        principal = await self._principal_of(action)
        if principal is None or principal.disabled_at is not None:
            reply = ChatReply(
                False,
                "Dragon does not know your Slack account: ask an admin to give your Dragon "
                "principal the same email address as your Slack profile.",
                code="chat_user_unknown",
            )
            await self._refused(action, reply, correlation_id=correlation_id, now=self._clock())
            return await self._tell(action, reply)
        caller = Caller(
            principal=principal, correlation_id=correlation_id, client_address=client_address
        )
        if not principal.role.includes(Role.APPROVER):
            reply = ChatReply(
                False,
                f"Your Dragon role is {principal.role}; giving verdicts needs approver.",
                code="role_insufficient",
            )
            await self._refused(
                action, reply, correlation_id=correlation_id, now=self._clock(), known=principal
            )
            return await self._tell(action, reply)
        verdict = Verdict(action.verdict)
        try:
            view = await self._decisions.give_verdict(
                caller,
                action.decision_id,
                verdict=verdict,
                justification=f"{verdict.value} from Slack by {action.user_name or principal.name}",
                via=ApprovalChannel.SLACK,
            )
        except Unavailable:
            raise
        except DragonError as refused:
            # Forbidden refusals were audited by the verdict use case itself.
            return await self._tell(action, ChatReply(False, refused.message, code=refused.code))
        status = view.decision.status.value.replace("_", " ")
        return await self._tell(
            action, ChatReply(True, f"Recorded your {verdict.value}: the decision is {status}.")
        )

    async def _principal_of(self, action: ChatAction) -> Principal | None:
        email = action.email or await self._directory.email_of(action.user_id)
        if not email:
            return None
        async with self._uow(write=False) as uow:
            return await uow.principals.by_email(email)

    async def _refused(
        self,
        action: ChatAction,
        reply: ChatReply,
        *,
        correlation_id: str | None,
        now: datetime,
        known: Principal | None = None,
    ) -> None:
        """Audit a refusal the verdict use case never saw: the principal when Dragon knows
        who it is, otherwise the Slack user as `slack:<id>`."""
        actor = known or Principal(
            id=f"slack:{action.user_id}",
            name=action.user_name or action.user_id,
            role=Role.VIEWER,
            kind=PrincipalKind.USER,
            created_at=now,
        )
        async with self._uow() as uow:
            await record(
                uow,
                Caller(principal=actor, correlation_id=correlation_id),
                action="approval.refused",
                target_type="decision",
                target_id=action.decision_id,
                now=now,
                details={"code": reply.code, "reason": reply.text, "via": "slack"},
            )
            await uow.commit()

    async def _tell(self, action: ChatAction, reply: ChatReply) -> ChatReply:
        try:
            await self._directory.tell(
                channel=action.channel_id, user_id=action.user_id, text=reply.text
            )
        except DragonError as exc:
            # The reply in the HTTP response still reaches the user; log and carry on.
            log.warning("chat_reply_failed", code=exc.code)
        return reply
