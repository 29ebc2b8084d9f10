"""A local OpenAI-compatible Chat Completions server on 127.0.0.1, speaking real HTTP, whose
answers a test scripts one request at a time: an answer, a delay, a status, raw content."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.local_http import serving


@dataclass
class Step:
    answer: dict[str, Any] | None = None
    content: str | None = None  # raw assistant content, for malformed answers
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class OpenAiServer:
    url: str = ""
    script: list[Step] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    default: Step = field(default_factory=Step)

    def then(self, *steps: Step) -> None:
        self.script.extend(steps)

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"headers": dict(request.headers), "body": body})
        step = self.script.pop(0) if self.script else self.default
        if step.delay:
            await asyncio.sleep(step.delay)
        if step.status != 200:
            return JSONResponse(
                {"error": {"message": "scripted", "type": "server_error"}},
                status_code=step.status,
                headers=step.headers,
            )
        content = step.content if step.content is not None else json.dumps(step.answer or {})
        return JSONResponse(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": 1764672000,
                "model": body.get("model", "unknown"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 812, "completion_tokens": 64, "total_tokens": 876},
            }
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])]
        )


# The model finds the runner lost its network: rerun the failed jobs.
RERUN_FAILED_JOBS = Step(
    content=json.dumps(
        {
            "classification": "flaky_infrastructure",
            "action": "rerun_failed_jobs",
            "confidence": 0.9,
            "rationale": "the runner lost its network",
        }
    )
)


@contextlib.asynccontextmanager
async def running_openai_server(*, default: Step | None = None) -> AsyncIterator[OpenAiServer]:
    """The server on a free port; `default` answers every request the script does not."""
    fake = OpenAiServer() if default is None else OpenAiServer(default=default)
    async with serving(fake.app()) as base:
        fake.url = f"{base}/v1"
        yield fake
