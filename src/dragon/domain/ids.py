"""Identifiers: a readable prefix, then the creation time in milliseconds, then randomness.

Time-ordered ids let listings page newest-first on the primary key alone.
"""

from __future__ import annotations

import secrets
from datetime import datetime


def new_id(prefix: str, now: datetime) -> str:
    millis = int(now.timestamp() * 1000)
    return f"{prefix}_{millis:012x}{secrets.token_hex(8)}"
