"""How a vendor's HTTP answer becomes a notification outcome, shared by the channel adapters:
2xx delivered; 429 and 5xx worth retrying (after Retry-After when given); any other 4xx a
refusal that retrying cannot fix. Messages never carry the URL, which may hold a secret."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from dragon.domain.notifications import ChannelFailed, parse_retry_after


def check_answer(response: httpx.Response, *, vendor: str) -> None:
    if response.is_success:
        return
    status = response.status_code
    excerpt = response.text[:200].replace("\n", " ") if response.text else ""
    retry_after = parse_retry_after(response.headers.get("retry-after"), now=datetime.now(UTC))
    if status == 429 or status >= 500:
        raise ChannelFailed(
            f"{vendor} answered {status}; retrying later. {excerpt}".strip(),
            retryable=True,
            retry_after=retry_after,
            code="notification_channel_unavailable",
        )
    raise ChannelFailed(
        f"{vendor} refused the notification with {status}: {excerpt}".strip(),
        retryable=False,
        code="notification_channel_refused",
    )


async def post_json(
    http: httpx.AsyncClient,
    url: str,
    *,
    vendor: str,
    body: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST and classify the answer. Transport failures are retryable; their text (which can
    name the URL) is left out."""
    try:
        if content is not None:
            response = await http.post(url, content=content, headers=headers)
        else:
            response = await http.post(url, json=body, headers=headers)
    except httpx.TimeoutException:
        raise ChannelFailed(
            f"{vendor} did not answer in time",
            retryable=True,
            code="notification_channel_unavailable",
        ) from None
    except httpx.HTTPError as exc:
        raise ChannelFailed(
            f"{vendor} could not be reached ({type(exc).__name__})",
            retryable=True,
            code="notification_channel_unavailable",
        ) from None
    check_answer(response, vendor=vendor)
    return response
