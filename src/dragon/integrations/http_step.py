"""The runbook step `http_call`: one request to a URL the (admin-registered) runbook names,
through one shared client and one circuit breaker, with the same retry rules as every action.
The run's idempotency key goes along as `Idempotency-Key`, so a receiver that honours it does
the work once however often the step is retried."""

from __future__ import annotations

from typing import Any

import httpx

from dragon.domain.breaker import BreakerRegistry
from dragon.domain.execution import ActionFailed, ActionRequest, StepLog
from dragon.integrations.action_http import send

MAX_BODY_LOGGED = 500


class HttpStep:
    BREAKER = "runbook_http"

    def __init__(self, http: httpx.AsyncClient, *, breakers: BreakerRegistry) -> None:
        self._http = http
        # Made on first use, so /readyz lists it only once a runbook has called out.
        self._breakers = breakers

    async def __call__(self, request: ActionRequest, log: StepLog) -> dict[str, Any]:
        method = str(request.params.get("method", "POST")).upper()
        url = request.params.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ActionFailed("http_call needs an http(s) url", code="action_params_invalid")
        body = request.params.get("body")
        headers = {"Idempotency-Key": request.idempotency_key}
        await log.fence()
        response = await send(
            self._http,
            self._breakers.breaker(self.BREAKER),
            method,
            url,
            vendor=httpx.URL(url).host or "the endpoint",
            headers=headers,
            json=body if body is not None and method != "GET" else None,
        )
        log.step(
            "http_call", "ok", detail=f"{method} {httpx.URL(url).path} -> {response.status_code}"
        )
        return {"status": response.status_code, "body": response.text[:MAX_BODY_LOGGED]}
