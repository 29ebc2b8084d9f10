"""Identifiers: a readable prefix, the creation time in milliseconds, then 64 more bits.

Time-ordered ids let listings page newest-first on the primary key alone. Within one process
ids are also strictly increasing: an id made in the same millisecond as the previous one (or
under a clock that stands still, as in tests) continues from it, so creation order is kept.
"""

from __future__ import annotations

import os
from datetime import datetime

_TAIL_BITS = 64
_last: tuple[int, int] = (0, 0)


def new_id(prefix: str, now: datetime) -> str:
    global _last  # noqa: PLW0603 - one counter per process is the point
    millis = int(now.timestamp() * 1000)
    last_millis, last_tail = _last
    # os.urandom, as the secrets module draws, without its Python-level wrappers: every
    # delivery takes an id.
    if millis <= last_millis and last_tail + 1 < 2**_TAIL_BITS:
        millis, tail = last_millis, last_tail + 1 + int.from_bytes(os.urandom(2))
    else:
        # One bit short of the tail, which leaves room to count up within a millisecond.
        tail = int.from_bytes(os.urandom(8)) >> (64 - (_TAIL_BITS - 1))
    tail = min(tail, 2**_TAIL_BITS - 1)
    _last = (millis, tail)
    return f"{prefix}_{millis:012x}{tail:016x}"
