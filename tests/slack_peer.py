"""A local stand-in for Slack's Web API (tests/fixtures/slack/SOURCES.md): chat.postMessage,
chat.update, chat.postEphemeral and users.info over real HTTP, answering as Slack documents,
including `{"ok": false, "error": "invalid_auth"}` for a wrong bot token."""

from __future__ import annotations

from itertools import count
from typing import Any
from urllib.parse import parse_qs

from tests.peers import Answer, Received

BOT_TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"


class FakeSlack:
    def __init__(self) -> None:
        self.emails: dict[str, str] = {}  # Slack user id -> profile email
        self._ts = count(100)

    def __call__(self, got: Received) -> Answer:
        if got.headers.get("authorization") != f"Bearer {BOT_TOKEN}":
            return Answer(body={"ok": False, "error": "invalid_auth"})
        method = got.path.rsplit("/", 1)[-1]
        if method == "users.info":
            return self._user(parse_qs(got.body.decode()).get("user", [""])[0])
        return self._chat(method, got.json())

    def _user(self, user: str) -> Answer:
        if user not in self.emails:
            return Answer(body={"ok": False, "error": "user_not_found"})
        profile = {"email": self.emails[user], "real_name": user}
        return Answer(
            body={"ok": True, "user": {"id": user, "name": user.lower(), "profile": profile}}
        )

    def _chat(self, method: str, body: dict[str, Any]) -> Answer:
        if method == "chat.postMessage":
            ts = f"1700000000.{next(self._ts):06d}"
            return Answer(body={"ok": True, "channel": body["channel"], "ts": ts, "message": {}})
        if method == "chat.update":
            return Answer(body={"ok": True, "channel": body["channel"], "ts": body["ts"]})
        if method == "chat.postEphemeral":
            return Answer(body={"ok": True, "message_ts": f"1700000001.{next(self._ts):06d}"})
        return Answer(body={"ok": False, "error": "unknown_method"})

    @staticmethod
    def calls(received: list[Received], method: str) -> list[dict[str, Any]]:
        found = []
        for got in received:
            if got.path.endswith("/" + method):
                if method == "users.info":
                    found.append({k: v[0] for k, v in parse_qs(got.body.decode()).items()})
                else:
                    found.append(got.json())
        return found
