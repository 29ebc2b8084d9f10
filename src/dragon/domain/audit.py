"""The tamper-evident audit chain: each event's hash covers its content and the previous hash.

Editing, deleting or reordering any stored event breaks the chain at that event's seq.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dragon.domain.entities import AuditEvent

GENESIS_HASH = "0" * 64


def _canonical_time(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    *,
    seq: int,
    occurred_at: datetime,
    actor_id: str,
    actor_name: str,
    action: str,
    target_type: str,
    target_id: str,
    details: dict[str, Any],
    correlation_id: str | None,
    client_address: str | None,
    prev_hash: str,
) -> str:
    body = {
        "seq": seq,
        "occurred_at": _canonical_time(occurred_at),
        "actor_id": actor_id,
        "actor_name": actor_name,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "details": details,
        "correlation_id": correlation_id,
        "client_address": client_address,
        "prev_hash": prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def rehash(event: AuditEvent) -> str:
    return event_hash(
        seq=event.seq,
        occurred_at=event.occurred_at,
        actor_id=event.actor_id,
        actor_name=event.actor_name,
        action=event.action,
        target_type=event.target_type,
        target_id=event.target_id,
        details=event.details,
        correlation_id=event.correlation_id,
        client_address=event.client_address,
        prev_hash=event.prev_hash,
    )


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str | None = None


class ChainWalker:
    """Checks events fed in seq order; `finish` compares the walk with the recorded chain tip,
    which is kept apart from the events so that deleting the newest events is detected too."""

    def __init__(self) -> None:
        self.checked = 0
        self._expected_prev = GENESIS_HASH
        self.broken: ChainReport | None = None

    def feed(self, event: AuditEvent) -> bool:
        """Returns False once the chain is broken; the report is then in `broken`."""
        expected_seq = self.checked + 1
        reason = None
        if event.seq != expected_seq:
            reason, at = "event missing", expected_seq
        elif event.prev_hash != self._expected_prev:
            reason, at = "previous hash does not match", event.seq
        elif rehash(event) != event.hash:
            reason, at = "content does not match its hash", event.seq
        if reason:
            self.broken = ChainReport(False, self.checked, at, reason)
            return False
        self._expected_prev = event.hash
        self.checked += 1
        return True

    def finish(self, *, head_seq: int, head_hash: str) -> ChainReport:
        if self.broken:
            return self.broken
        if self.checked != head_seq or self._expected_prev != head_hash:
            return ChainReport(
                False, self.checked, self.checked + 1, "events after this point are missing"
            )
        return ChainReport(True, self.checked)


def verify_chain(events: Iterable[AuditEvent], *, head_seq: int, head_hash: str) -> ChainReport:
    walker = ChainWalker()
    for event in events:
        if not walker.feed(event):
            break
    return walker.finish(head_seq=head_seq, head_hash=head_hash)
