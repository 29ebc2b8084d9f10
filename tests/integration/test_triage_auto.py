"""Automatic triage on the real store: every new incident leaves with exactly one decision,
proposed by the analyzer, scored, and judged by the policy; twice-run or concurrent workers
and lost leases create nothing more. Processing and triage are driven explicitly."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from dragon.app import create_app
from dragon.domain.enums import Role, TriageStatus
from dragon.domain.triage import Analysis, TriageContext, analyze
from dragon.services.container import Services
from dragon.services.context import SYSTEM_CALLER
from dragon.services.triage import BuiltinAnalyzer, TriageService, TriageSettings
from dragon.settings import Settings
from dragon.store.unit_of_work import SqlUnitOfWorkFactory
from tests.conftest import FakeClock, Keys
from tests.support.readiness import app_ready

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "ci_logs"


def corpus_log(name: str) -> str:
    return (CORPUS / name).read_text()


async def report_failure(
    client: httpx.AsyncClient, keys: Keys, *, log: str, branch: str = "feature/login", **extra: Any
) -> None:
    event = {
        "source": "github",
        "kind": "ci_failure",
        "title": f"build failed on {branch}",
        "repo": "acme/app",
        "branch": branch,
        "pipeline": "ci",
        "job": f"job-{uuid.uuid4().hex[:8]}",
        "log_excerpt": log,
        **extra,
    }
    response = await client.post(
        "/api/v1/events",
        json=event,
        headers={**keys.of("developer"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 202, response.text


async def decisions_of(client: httpx.AsyncClient, keys: Keys, incident_id: str) -> list[Any]:
    response = await client.get(
        "/api/v1/decisions", params={"incident_id": incident_id}, headers=keys.of("viewer")
    )
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


async def only_incident(client: httpx.AsyncClient, keys: Keys) -> str:
    response = await client.get("/api/v1/incidents", headers=keys.of("viewer"))
    [incident] = response.json()["items"]
    found: str = incident["id"]
    return found


async def test_a_new_ci_incident_is_triaged_once_into_a_proposed_decision_with_provenance(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    await report_failure(client, keys, log=corpus_log("lint_format/ruff_unused_import.log"))
    assert await services.processor.run_due() == 1
    incident_id = await only_incident(client, keys)
    assert await decisions_of(client, keys, incident_id) == []  # ingestion proposed nothing

    assert await services.triage.run_pending() == 1
    assert await services.triage.run_pending() == 0  # run again: nothing left to do
    assert await services.triage.triage(incident_id) is None  # even when asked directly
    [decision] = await decisions_of(client, keys, incident_id)
    assert decision["action"] == "autofix_pull_request"
    assert decision["proposer"]["kind"] == "analyzer"
    assert decision["params"]["repo"] == "acme/app"
    assert "lint_format" in decision["rationale"]
    provenance = decision["provenance"]
    assert provenance["analyzer"] == "dragon-builtin"
    assert provenance["analyzer_version"]
    assert provenance["input_hash"].startswith("sha256:")
    assert provenance["latency_ms"] >= 0
    assert {"model", "prompt_hash", "tokens"} <= provenance.keys()
    assert provenance["classification"] == "lint_format"
    assert any("F401" in e["text"] for e in provenance["evidence"])
    factors = {f["name"] for f in decision["risk"]["factors"]}
    assert {"action_base", "analyzer_confidence", "change_size"} <= factors
    # The default policy judged it: low risk on a feature branch runs without waiting.
    assert decision["risk"]["level"] == "low"
    assert decision["status"] == "auto_approved"
    assert decision["policy"]["rule"] == "low-risk-auto-approves"

    events = await client.get(
        "/api/v1/audit", params={"target_id": incident_id}, headers=keys.of("admin")
    )
    triaged = [e for e in events.json()["items"] if e["action"] == "incident.triaged"]
    assert len(triaged) == 1
    assert triaged[0]["details"]["decision_id"] == decision["id"]
    verify = await client.get("/api/v1/audit/verify", headers=keys.of("admin"))
    assert verify.json()["status"] == "ok"


async def test_a_test_failure_starting_on_main_proposes_a_revert_that_needs_approval(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    await report_failure(
        client,
        keys,
        log=corpus_log("test_failure/pytest_assertion.log"),
        branch="main",
        commit="9f2c1e7a4b",
    )
    await services.processor.run_due()
    await services.triage.run_pending()
    [decision] = await decisions_of(client, keys, await only_incident(client, keys))
    assert decision["action"] == "revert_pull_request"
    assert decision["params"]["commit_sha"] == "9f2c1e7a4b"
    assert "protected_branch" in {f["name"] for f in decision["risk"]["factors"]}
    assert decision["status"] == "pending_approval"
    assert decision["policy"]["approvals_required"] == 1


async def test_concurrent_triage_passes_make_one_decision_per_incident(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    for name in ("flaky_infrastructure/dns_failure.log", "compile_error/mypy_attr.log"):
        await report_failure(client, keys, log=corpus_log(name))
    await services.processor.run_due()
    settled = await asyncio.gather(*(services.triage.run_pending() for _ in range(4)))
    assert sum(settled) == 2
    listed = await client.get("/api/v1/decisions", headers=keys.of("viewer"))
    decisions = listed.json()["items"]
    assert len(decisions) == 2
    assert len({d["incident_id"] for d in decisions}) == 2


class _Failing:
    calls = 0

    async def analyze(self, text: str, context: TriageContext) -> Analysis:
        self.calls += 1
        raise RuntimeError("analyzer crashed")


def triage_service(
    app: FastAPI,
    services: Services,
    clock: FakeClock,
    analyzer: Any,
    *,
    batch: int = TriageSettings.batch,
) -> TriageService:
    """A triage service on the app's store: `analyzer`, two attempts an incident, `batch`
    incidents a pass."""
    return TriageService(
        SqlUnitOfWorkFactory(app.state.database),
        decisions=services.decisions,
        analyzer=analyzer,
        clock=clock,
        settings=TriageSettings(max_attempts=2, batch=batch),
    )


async def test_a_failing_triage_is_retried_after_backoff_then_given_up_without_a_decision(
    app: FastAPI, client: httpx.AsyncClient, services: Services, keys: Keys, clock: FakeClock
) -> None:
    await report_failure(client, keys, log=corpus_log("unknown/bare_exit.log"))
    await services.processor.run_due()
    incident_id = await only_incident(client, keys)
    failing = _Failing()
    triage = triage_service(app, services, clock, failing)
    assert await triage.run_pending() == 0
    assert failing.calls == 1
    assert await triage.run_pending() == 0  # backing off: not due yet
    assert failing.calls == 1
    clock.advance(minutes=11)
    assert await triage.run_pending() == 0
    assert failing.calls == 2
    clock.advance(minutes=11)
    assert await triage.run_pending() == 0
    assert failing.calls == 2  # gave up after two attempts
    async with SqlUnitOfWorkFactory(app.state.database)(write=False) as uow:
        run = await uow.triages.get(incident_id)
    assert run is not None
    assert run.status is TriageStatus.FAILED
    assert run.last_error == "RuntimeError: analyzer crashed"
    assert await decisions_of(client, keys, incident_id) == []


async def test_a_worker_that_lost_its_lease_stores_nothing_and_the_taker_decides(
    app: FastAPI, client: httpx.AsyncClient, services: Services, keys: Keys, clock: FakeClock
) -> None:
    await report_failure(client, keys, log=corpus_log("lint_format/ruff_isort.log"))
    await services.processor.run_due()
    incident_id = await only_incident(client, keys)
    taker = triage_service(app, services, clock, BuiltinAnalyzer())
    taken: list[Any] = []

    class Slow:
        async def analyze(self, text: str, context: TriageContext) -> Analysis:
            clock.advance(minutes=5)  # past the lease: another worker takes over meanwhile
            taken.append(await taker.triage(incident_id))
            return analyze(text, context)

    slow = triage_service(app, services, clock, Slow())
    assert await slow.triage(incident_id) is None  # the slow worker lost its claim
    [decision] = await decisions_of(client, keys, incident_id)
    assert taken[0] is not None
    assert decision["id"] == taken[0].id


async def test_incidents_opened_by_hand_are_triaged_and_resolved_ones_are_not(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    made = []
    for title in ("deploy token rejected: 401 Unauthorized", "old outage"):
        response = await client.post(
            "/api/v1/incidents",
            json={"title": title, "severity": "SEV3"},
            headers=keys.of("developer"),
        )
        made.append(response.json()["id"])
    resolved = await client.post(
        f"/api/v1/incidents/{made[1]}/resolve", json={}, headers=keys.of("developer")
    )
    assert resolved.status_code == 200, resolved.text
    assert await services.triage.run_pending() == 1
    [decision] = await decisions_of(client, keys, made[0])
    assert decision["provenance"]["classification"] == "missing_permission"
    assert decision["action"] == "notify_owners"
    assert await decisions_of(client, keys, made[1]) == []


async def test_secrets_in_a_log_never_reach_the_decision_or_its_audit(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    log = (
        f"+ curl -H 'Authorization: Bearer {token}' https://api.example.com\n"
        "curl: (22) The requested URL returned error: 403\n"
    )
    await report_failure(client, keys, log=log)
    await services.processor.run_due()
    await services.triage.run_pending()
    [decision] = await decisions_of(client, keys, await only_incident(client, keys))
    assert decision["provenance"]["classification"] == "missing_permission"
    assert token not in str(decision)
    events = await client.get("/api/v1/audit", headers=keys.of("admin"))
    assert token not in events.text


async def test_a_change_freeze_adds_its_factor_and_holds_a_rerun_for_approval(
    app: FastAPI, client: httpx.AsyncClient, services: Services, keys: Keys, clock: FakeClock
) -> None:
    await report_failure(client, keys, log=corpus_log("flaky_infrastructure/curl_refused.log"))
    await services.processor.run_due()
    frozen = TriageService(
        SqlUnitOfWorkFactory(app.state.database),
        decisions=services.decisions,
        analyzer=BuiltinAnalyzer(),
        clock=clock,
        settings=TriageSettings(change_freeze=True),
    )
    assert await frozen.run_pending() == 1
    [decision] = await decisions_of(client, keys, await only_incident(client, keys))
    assert decision["action"] == "rerun_failed_jobs"
    weights = {f["name"]: f["weight"] for f in decision["risk"]["factors"]}
    assert weights["change_freeze"] == 30
    assert decision["status"] == "pending_approval"


async def test_a_last_attempt_whose_worker_stopped_is_settled_as_failed(
    app: FastAPI, client: httpx.AsyncClient, services: Services, keys: Keys, clock: FakeClock
) -> None:
    await report_failure(client, keys, log=corpus_log("unknown/exit_code_42.log"))
    await services.processor.run_due()
    incident_id = await only_incident(client, keys)
    uow = SqlUnitOfWorkFactory(app.state.database)
    for attempt in range(2):  # two claims, each abandoned by a worker that stopped
        async with uow() as work:
            assert await work.triages.claim(
                incident_id,
                token=f"crashed-{attempt}",
                now=clock(),
                lease_until=clock(),
                max_attempts=2,
            )
            await work.commit()
        clock.advance(seconds=1)
    triage = triage_service(app, services, clock, BuiltinAnalyzer())
    assert await triage.run_pending() == 0
    async with uow(write=False) as work:
        run = await work.triages.get(incident_id)
    assert run is not None
    assert run.status is TriageStatus.FAILED
    assert run.last_error == "the worker stopped during the last attempt"
    assert await triage.run_pending() == 0
    assert await decisions_of(client, keys, incident_id) == []


async def test_the_embedded_workers_triage_a_new_incident_without_waiting_for_a_poll(
    settings: Settings, clock: FakeClock
) -> None:
    # Both polls are an hour: only the delivery worker's nudge can make triage run in time.
    running = settings.model_copy(
        update={"worker_enabled": True, "worker_poll_seconds": 3600, "triage_poll_seconds": 3600}
    )
    application = create_app(running, clock=clock)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
        await app_ready(application)
        services: Services = application.state.services
        issued = await services.auth.create_key(SYSTEM_CALLER, name="dev", role=Role.DEVELOPER)
        keys = {"Authorization": f"Bearer {issued.secret}"}
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as http:
            await asyncio.sleep(0.2)  # the workers' first passes found nothing
            sent = await http.post(
                "/api/v1/events",
                json={
                    "kind": "ci_failure",
                    "title": "lint failed",
                    "repo": "acme/app",
                    "log_excerpt": corpus_log("lint_format/ruff_format_check.log"),
                },
                headers={**keys, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert sent.status_code == 202, sent.text
            decisions: list[Any] = []
            for _ in range(100):
                listed = await http.get("/api/v1/decisions", headers=keys)
                decisions = listed.json()["items"]
                if decisions:
                    break
                await asyncio.sleep(0.05)
    assert [d["action"] for d in decisions] == ["autofix_pull_request"]
