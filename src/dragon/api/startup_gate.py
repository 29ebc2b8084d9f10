"""No request is served before the process finished initialising (a migrated store, the policy
stored, the first admin key made): until then, and again once shut-down has begun, every request
but the probes and /metrics is answered 503 `not_ready` with Retry-After, so a sender or load
balancer retries, on another replica if there is one. /readyz says why."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from dragon.api.problems import problem

ALWAYS_SERVED = frozenset({"/livez", "/readyz", "/health", "/metrics"})


class StartupGate:
    def __init__(self, app: ASGIApp, *, is_ready: Callable[[], bool]) -> None:
        self.app = app
        self.is_ready = is_ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.is_ready() and scope["path"] not in ALWAYS_SERVED:
            refused = problem(
                503,
                "not_ready",
                "Dragon is not ready: initialisation has not finished or shut-down has begun; "
                "GET /readyz says which check fails",
                correlation_id=scope.get("state", {}).get("correlation_id"),
                headers={"Retry-After": "5"},
            )
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)
