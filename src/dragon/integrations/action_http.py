"""One way to call a vendor's API: through its circuit breaker, with timeouts, and with every
answer sorted into success, retryable failure (timeouts, 429, 5xx) or refusal (other 4xx).

    httpx.TimeoutException      -> ActionFailed(retryable, code vendor_timeout)
    httpx.TransportError        -> ActionFailed(retryable, code vendor_unreachable)
    429, 5xx, throttling 403    -> ActionFailed(retryable, code vendor_unavailable, Retry-After)
    other 4xx                   -> ActionFailed(code vendor_rejected) with the vendor's message
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from dragon.domain.execution import ActionFailed

MAX_MESSAGE = 500


class Breaker(Protocol):
    """The circuit breaker one integration's calls go through (dragon.domain.breaker)."""

    def check(self) -> None: ...
    def succeeded(self) -> None: ...
    def failed(self) -> None: ...


def default_timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(seconds, 5.0))


def vendor_message(response: httpx.Response) -> str:
    """The vendor's own words about a refusal: JSON `message`/`error`, else the text."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "error", "error_description"):
            value = body.get(key)
            if isinstance(value, str) and value:
                errors = body.get("errors")
                extra = f" ({errors})" if errors else ""
                return f"{value}{extra}"[:MAX_MESSAGE]
    return " ".join(response.text.split())[:MAX_MESSAGE] or response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


async def send(
    client: httpx.AsyncClient,
    breaker: Breaker,
    method: str,
    url: str,
    *,
    vendor: str,
    **kwargs: Any,
) -> httpx.Response:
    breaker.check()
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.TimeoutException:
        breaker.failed()
        raise ActionFailed(
            f"{vendor} did not answer {method} {_path(url)} in time",
            code="vendor_timeout",
            retryable=True,
        ) from None
    except httpx.TransportError as exc:
        breaker.failed()
        raise ActionFailed(
            f"{vendor} could not be reached ({type(exc).__name__})",
            code="vendor_unreachable",
            retryable=True,
        ) from None
    status = response.status_code
    # GitHub answers its rate limits with 403 and an empty quota or a Retry-After.
    throttled = status == 403 and (
        response.headers.get("x-ratelimit-remaining") == "0" or "retry-after" in response.headers
    )
    if status == 429 or status >= 500 or throttled:
        if status >= 500:
            breaker.failed()
        else:
            breaker.succeeded()
        raise ActionFailed(
            f"{vendor} answered {status} to {method} {_path(url)}: {vendor_message(response)}",
            code="vendor_unavailable",
            retryable=True,
            retry_after=_retry_after(response),
            vendor_status=status,
        )
    breaker.succeeded()
    if status >= 400:
        raise ActionFailed(
            f"{vendor} refused {method} {_path(url)} ({status}): {vendor_message(response)}",
            code="vendor_rejected",
            vendor_status=status,
        )
    return response


def _path(url: str) -> str:
    # Only the path: query strings can carry tokens (Jenkins crumbs, GitLab private tokens).
    return httpx.URL(url).path
