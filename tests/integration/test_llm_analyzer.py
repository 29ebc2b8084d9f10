"""The LLM analyzer against a local OpenAI-compatible server speaking real HTTP: success,
timeout, 429 with Retry-After, 5xx, malformed answers, and the breaker opening and recovering.
Whatever goes wrong, the built-in analyzer answers instead."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dragon.domain.breaker import BreakerState, CircuitBreaker
from dragon.domain.triage import TriageContext, analyze
from dragon.integrations.llm import PROMPT_HASH, LlmAnalyzer, LlmSettings, build_client
from tests.conftest import FakeClock
from tests.support.openai_server import OpenAiServer, Step, running_openai_server

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "ci_logs"
DNS_LOG = (CORPUS / "flaky_infrastructure" / "dns_failure.log").read_text()
CONTEXT = TriageContext(source="gitlab", kind="ci_failure", repo="acme/app", branch="feature/x")
API_KEY = "sk-test-key-never-to-be-logged-0123456789"
GOOD = {
    "classification": "flaky_infrastructure",
    "action": "rerun_failed_jobs",
    "confidence": 0.9,
    "rationale": "the artifact host could not be resolved",
    "evidence_lines": [9],
    "risk_factors": [{"name": "shared_cache", "weight": 3, "detail": "cache shared by jobs"}],
}


class Sleeps:
    """Records the waits the analyzer asks for instead of waiting them out."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
async def server() -> AsyncIterator[OpenAiServer]:
    async with running_openai_server() as running:
        yield running


def make(
    server: OpenAiServer,
    clock: FakeClock,
    *,
    timeout: float = 5.0,
    retries: int = 2,
    threshold: int = 3,
) -> tuple[LlmAnalyzer, CircuitBreaker, Sleeps]:
    settings = LlmSettings(
        base_url=server.url,
        model="llama-3.1-8b-instruct",
        api_key=API_KEY,
        total_timeout=timeout,
        max_retries=retries,
    )
    breaker = CircuitBreaker("llm", clock=clock, failure_threshold=threshold, reset_seconds=30)
    sleeps = Sleeps()
    analyzer = LlmAnalyzer(
        build_client(settings, connect_timeout=1.0),
        settings=settings,
        breaker=breaker,
        sleep=sleeps,
    )
    return analyzer, breaker, sleeps


async def test_a_valid_answer_is_used_with_full_provenance(
    server: OpenAiServer, clock: FakeClock
) -> None:
    analyzer, breaker, _ = make(server, clock)
    server.then(Step(answer=GOOD))
    got = await analyzer.analyze(DNS_LOG, CONTEXT)
    await analyzer.close()
    assert got.proposal.action == "rerun_failed_jobs"
    assert got.classification.confidence == 0.9
    assert got.provenance["analyzer"] == "llm"
    assert got.provenance["model"] == "llama-3.1-8b-instruct"
    assert got.provenance["prompt_hash"] == PROMPT_HASH
    assert got.provenance["input_hash"].startswith("sha256:")
    assert got.provenance["tokens"] == {
        "prompt_tokens": 812,
        "completion_tokens": 64,
        "total_tokens": 876,
    }
    assert got.provenance["llm_latency_ms"] >= 0
    assert [f.name for f in got.extra_factors] == ["llm_shared_cache"]
    assert got.baseline is not None  # held to the built-in answer
    assert [e.line for e in got.classification.evidence] == [9]
    [request] = server.requests
    assert request["headers"]["authorization"] == f"Bearer {API_KEY}"
    body = request["body"]
    assert body["model"] == "llama-3.1-8b-instruct"
    assert body["response_format"] == {"type": "json_object"}
    assert "<log>" in body["messages"][1]["content"]
    assert breaker.state is BreakerState.CLOSED


async def test_a_slow_endpoint_times_out_and_the_builtin_answers(
    server: OpenAiServer, clock: FakeClock
) -> None:
    analyzer, breaker, _ = make(server, clock, timeout=0.3)
    server.then(Step(answer=GOOD, delay=1.5))
    got = await analyzer.analyze(DNS_LOG, CONTEXT)
    await analyzer.close()
    builtin = analyze(DNS_LOG, CONTEXT)
    assert got.provenance["fallback_reason"] == "timeout"
    assert got.provenance["analyzer"] == "dragon-builtin"
    assert got.proposal == builtin.proposal
    assert breaker.snapshot()["failures"] == 1


async def test_429_waits_as_long_as_retry_after_says_then_succeeds(
    server: OpenAiServer, clock: FakeClock
) -> None:
    analyzer, _, sleeps = make(server, clock)
    server.then(Step(status=429, headers={"Retry-After": "7"}), Step(answer=GOOD))
    got = await analyzer.analyze(DNS_LOG, CONTEXT)
    await analyzer.close()
    assert got.provenance["analyzer"] == "llm"
    assert sleeps.waits == [7.0]
    assert len(server.requests) == 2


async def test_5xx_is_retried_with_backoff_then_given_up(
    server: OpenAiServer, clock: FakeClock
) -> None:
    analyzer, breaker, sleeps = make(server, clock, retries=2)
    server.then(Step(status=500), Step(status=502), Step(status=503))
    got = await analyzer.analyze(DNS_LOG, CONTEXT)
    assert got.provenance["fallback_reason"] == "http_503"
    assert len(server.requests) == 3
    assert sleeps.waits == [0.5, 1.0]
    server.then(Step(status=500), Step(answer=GOOD))
    recovered = await analyzer.analyze(DNS_LOG, CONTEXT)
    await analyzer.close()
    assert recovered.provenance["analyzer"] == "llm"
    assert breaker.state is BreakerState.CLOSED


async def test_other_client_errors_are_not_retried(server: OpenAiServer, clock: FakeClock) -> None:
    analyzer, _, sleeps = make(server, clock)
    server.then(Step(status=401))
    got = await analyzer.analyze(DNS_LOG, CONTEXT)
    await analyzer.close()
    assert got.provenance["fallback_reason"] == "http_401"
    assert len(server.requests) == 1
    assert sleeps.waits == []


def _answer(**changes: object) -> str:
    return json.dumps({**GOOD, **changes})


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("the job failed because of DNS", "answer_invalid"),
        (_answer()[:-20], "answer_invalid"),
        (_answer(action="rollback_deployment"), "answer_invalid"),
        (_answer(approve=True), "answer_invalid"),
        (_answer(classification="weather"), "answer_invalid"),
        (_answer(risk_factors=[{"name": "discount", "weight": -40}]), "answer_invalid"),
        (_answer(action="run_runbook"), "action_unsupported"),
    ],
)
async def test_an_unusable_answer_is_discarded_for_the_builtin_one(
    server: OpenAiServer, clock: FakeClock, content: str, reason: str
) -> None:
    analyzer, _, _ = make(server, clock)
    server.then(Step(content=content))
    got = await analyzer.analyze(DNS_LOG, CONTEXT)
    await analyzer.close()
    assert got.provenance["fallback_reason"] == reason
    assert got.proposal == analyze(DNS_LOG, CONTEXT).proposal


async def test_a_fenced_json_answer_is_accepted(server: OpenAiServer, clock: FakeClock) -> None:
    analyzer, _, _ = make(server, clock)
    server.then(Step(content="```json\n" + json.dumps(GOOD) + "\n```"))
    got = await analyzer.analyze(DNS_LOG, CONTEXT)
    await analyzer.close()
    assert got.provenance["analyzer"] == "llm"


async def test_the_breaker_opens_after_repeated_failures_then_recovers_through_one_probe(
    server: OpenAiServer, clock: FakeClock
) -> None:
    analyzer, breaker, _ = make(server, clock, retries=0, threshold=3)
    server.then(*(Step(status=500) for _ in range(3)))
    for _ in range(3):
        await analyzer.analyze(DNS_LOG, CONTEXT)
    assert breaker.state is BreakerState.OPEN
    calls = len(server.requests)
    skipped = await analyzer.analyze(DNS_LOG, CONTEXT)
    assert skipped.provenance["fallback_reason"] == "circuit_open"
    assert len(server.requests) == calls  # an open breaker sends nothing
    clock.advance(seconds=31)
    assert breaker.state is BreakerState.HALF_OPEN
    server.then(Step(status=500))
    await analyzer.analyze(DNS_LOG, CONTEXT)  # the probe fails: open again
    assert breaker.state is BreakerState.OPEN
    clock.advance(seconds=31)
    server.then(Step(answer=GOOD))
    probe = await analyzer.analyze(DNS_LOG, CONTEXT)
    await analyzer.close()
    assert probe.provenance["analyzer"] == "llm"
    assert breaker.state is BreakerState.CLOSED
