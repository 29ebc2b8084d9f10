"""Console sessions: a signed cookie naming the API key a person logged in with, and CSRF tokens.

The cookie holds no secret: a random session id, the key's id and two times (issued, last seen),
signed with HMAC-SHA256 under DRAGON_SECRET_KEY. Every request checks the key again, so revoking
it ends its sessions at once. A session idle past the timeout, or older than its maximum age,
is refused. CSRF tokens are an HMAC of the session id (or, before login, of a nonce cookie).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import timedelta

import orjson

from dragon.domain.clock import Clock

SESSION_COOKIE = "dragon_session"
LOGIN_COOKIE = "dragon_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Session:
    sid: str
    key_id: str
    issued_at: float
    seen_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    def __init__(self, secret: bytes, *, clock: Clock, idle: timedelta, max_age: timedelta) -> None:
        self._key = hashlib.sha256(b"dragon-console-session:" + secret).digest()
        self._clock = clock
        self.idle = idle
        self.max_age = max_age

    def _sign(self, purpose: str, payload: bytes) -> str:
        return _b64(hmac.new(self._key, purpose.encode() + b"\0" + payload, "sha256").digest())

    def start(self, key_id: str) -> Session:
        now = self._clock().timestamp()
        return Session(sid=secrets.token_urlsafe(18), key_id=key_id, issued_at=now, seen_at=now)

    def touched(self, session: Session) -> Session:
        return replace(session, seen_at=self._clock().timestamp())

    def encode(self, session: Session) -> str:
        payload = orjson.dumps(
            {"s": session.sid, "k": session.key_id, "i": session.issued_at, "t": session.seen_at}
        )
        return f"{_b64(payload)}.{self._sign('session', payload)}"

    def decode(self, cookie: str | None) -> Session | None:
        """The session in a cookie, or None when it is missing, forged, idle or too old."""
        session = self._verified(cookie)
        if session is None:
            return None
        now = self._clock().timestamp()
        if now - session.seen_at > self.idle.total_seconds():
            return None
        if now - session.issued_at > self.max_age.total_seconds():
            return None
        return session

    def _verified(self, cookie: str | None) -> Session | None:
        if not cookie or cookie.count(".") != 1 or len(cookie) > 1024:
            return None
        body, signature = cookie.split(".")
        try:
            payload = _unb64(body)
        except ValueError:
            return None
        if not hmac.compare_digest(signature, self._sign("session", payload)):
            return None
        try:
            fields = orjson.loads(payload)
            return Session(
                sid=str(fields["s"]),
                key_id=str(fields["k"]),
                issued_at=float(fields["i"]),
                seen_at=float(fields["t"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None

    def csrf_token(self, binding: str) -> str:
        """The token forms must send back: bound to the session id, or to the login nonce."""
        return self._sign("csrf", binding.encode())

    def csrf_valid(self, token: str | None, binding: str) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(binding))

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(18)
