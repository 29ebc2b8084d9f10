"""The console's runbooks and runs pages: manifests with their parameters and steps, a run
proposed from a form (a decision under policy, field errors next to their fields, developer and
CSRF only), the runs list and one run's log, attempts and result, and runs in the incident
timeline. A local GitHub stand-in receives the runs' calls."""

from __future__ import annotations

import re

import httpx

from dragon.services.container import Services
from dragon.workers.runs import run_pass
from tests.api.console_session import log_in, page, post_form
from tests.api.test_ingestion import fixture, post_github
from tests.conftest import FakeClock, Keys
from tests.fake_github import FakeGitHub
from tests.integration.test_runbooks import MANIFEST, register
from tests.integration.test_runs import REPO, settings

__all__ = ["settings"]  # the settings that point at the GitHub stand-in
RUNBOOK_PAGE = "/runbooks/rerun-and-tell"


async def start_from_form(client: httpx.AsyncClient, data: dict[str, str]) -> httpx.Response:
    return await post_form(client, f"{RUNBOOK_PAGE}/runs", data, from_page=RUNBOOK_PAGE)


async def test_the_runbooks_page_lists_each_runbook_with_its_versions(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    assert (await register(client, keys, MANIFEST)).status_code == 201
    assert (await register(client, keys, {**MANIFEST, "version": "1.1.0"})).status_code == 201
    await log_in(client, keys.viewer)
    listing = await page(client, "/runbooks")
    assert listing.status_code == 200
    assert '<a href="/runbooks/rerun-and-tell">rerun-and-tell</a>' in listing.text
    assert "<td>1.1.0</td>" in listing.text
    assert "<td>2</td>" in listing.text  # two versions
    assert "rerun_job, comment" in listing.text
    detail = await page(client, RUNBOOK_PAGE)
    assert "<code>workflow_run_id</code>" in detail.text
    assert "<td>integer</td>" in detail.text
    assert "<strong>rerun</strong>: rerun_job" in detail.text
    assert "{{ params.workflow_run_id }}" in detail.text
    older = await page(client, f"{RUNBOOK_PAGE}?version=1.0.0")
    assert "version 1.0.0" in older.text
    # A viewer reads the manifest but is offered no form.
    assert 'action="/runbooks/rerun-and-tell/runs"' not in detail.text
    assert "needs the developer role" in detail.text
    missing = await page(client, "/runbooks/no-such-runbook")
    assert missing.status_code == 404


async def test_a_developer_proposes_a_run_from_the_form_and_policy_decides(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    assert (await register(client, keys, MANIFEST)).status_code == 201
    await log_in(client, keys.developer)
    form = await page(client, RUNBOOK_PAGE)
    assert 'name="param.workflow_run_id"' in form.text
    assert 'inputmode="numeric"' in form.text
    made = await start_from_form(client, {"param.workflow_run_id": "30433642", "repo": REPO})
    assert made.status_code == 303, made.text
    target = made.headers["location"]
    decision_id = re.search(r"proposed=(dec_[0-9a-z]+)", target)
    assert decision_id
    decision = (
        await client.get(f"/api/v1/decisions/{decision_id.group(1)}", headers=keys.of("viewer"))
    ).json()
    # The same decision the JSON route makes: typed parameters, the default filled in, policy.
    assert decision["action"] == "run_runbook"
    assert decision["params"]["parameters"] == {"workflow_run_id": 30433642, "pull_number": 7}
    assert decision["status"] == "pending_approval"
    assert decision["proposer"]["name"] == "developer"
    shown = await page(client, target)
    assert "pending_approval" in shown.text
    assert "It waits for approval in the approval queue." in shown.text
    assert f'href="/approvals#{decision["id"]}"' in shown.text


async def test_each_form_error_is_shown_next_to_its_field(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    assert (await register(client, keys, MANIFEST)).status_code == 201
    await log_in(client, keys.developer)
    wrong = await start_from_form(
        client, {"param.workflow_run_id": "many", "repo": "not a repo", "param.pull_number": "7"}
    )
    assert wrong.status_code == 422
    assert 'id="param-workflow_run_id-error" class="field-error">must be a whole number' in (
        wrong.text
    )
    assert 'id="run-repo-error"' in wrong.text
    assert 'value="many"' in wrong.text  # what was typed stays in the field
    missing = await start_from_form(client, {})
    assert missing.status_code == 422
    assert 'id="param-workflow_run_id-error" class="field-error">is required' in missing.text
    unknown = await start_from_form(
        client, {"param.workflow_run_id": "1", "incident_id": "inc_" + "0" * 28}
    )
    assert unknown.status_code == 404
    assert 'id="run-incident_id-error"' in unknown.text
    listing = await client.get("/api/v1/decisions", headers=keys.of("viewer"))
    assert listing.json()["items"] == []


async def test_a_viewer_cannot_start_a_run_and_a_post_without_the_csrf_token_is_refused(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    assert (await register(client, keys, MANIFEST)).status_code == 201
    await log_in(client, keys.viewer)
    forged = await start_from_form(client, {"param.workflow_run_id": "1"})
    assert forged.status_code == 403
    await log_in(client, keys.developer)
    no_token = await client.post(
        f"{RUNBOOK_PAGE}/runs",
        data={"param.workflow_run_id": "1"},
        headers={"accept": "text/html"},
    )
    assert no_token.status_code == 403
    assert "csrf_invalid" in no_token.text
    listing = await client.get("/api/v1/decisions", headers=keys.of("viewer"))
    assert listing.json()["items"] == []


async def approve(client: httpx.AsyncClient, keys: Keys, decision_id: str) -> None:
    response = await client.post(
        f"/api/v1/decisions/{decision_id}/approve",
        json={"justification": "rerun is harmless"},
        headers=keys.of("approver"),
    )
    assert response.status_code == 200, response.text


async def test_the_run_pages_show_status_in_words_the_log_attempts_and_result_links(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub
) -> None:
    assert (await register(client, keys, MANIFEST)).status_code == 201
    made = await client.post(
        f"/api/v1{RUNBOOK_PAGE}/runs",
        json={"parameters": {"workflow_run_id": 30433642}, "repo": REPO},
        headers=keys.of("developer"),
    )
    decision = made.json()
    await approve(client, keys, decision["id"])
    await services.runs.schedule()
    await log_in(client, keys.viewer)
    queued = await page(client, "/runs")
    assert "queued: waiting for a worker" in queued.text
    run_id = re.search(r'href="/runs/(run_[0-9a-z]+)"', queued.text)
    assert run_id
    waiting = await page(client, f"/runs/{run_id.group(1)}/panel")
    assert 'data-active="true"' in waiting.text  # the page keeps refreshing itself
    await run_pass(services)

    listing = await page(client, "/runs")
    assert "succeeded after 1 attempt(s)" in listing.text
    assert "No runs match." in (await page(client, "/runs?status=failed")).text
    assert "succeeded after" in (await page(client, f"/runs?decision_id={decision['id']}")).text
    assert (await page(client, "/runs?status=sideways")).status_code == 422
    fragment = await page(client, "/runs/panel?status=succeeded")
    assert "<html" not in fragment.text
    assert run_id.group(1) in fragment.text

    detail = await page(client, f"/runs/{run_id.group(1)}")
    assert detail.status_code == 200
    assert "succeeded after 1 attempt(s)" in detail.text
    assert "<dd>1 of 5</dd>" in detail.text
    assert 'data-active="false"' in detail.text
    for step in ("<td>rerun</td><td>started</td>", "<td>tell</td><td>ok</td>"):
        assert step in detail.text
    assert re.search(r'<a href="https://github.com/acme/api/[^"]*#comment"', detail.text)
    assert "checkpoint" not in detail.text
    missing = await page(client, "/runs/run_" + "0" * 28)
    assert missing.status_code == 404
    assert '<a href="/runs" aria-current="page">Runs</a>' in missing.text  # still logged in


async def test_runs_are_listed_25_to_a_page(
    client: httpx.AsyncClient, keys: Keys, services: Services, clock: FakeClock
) -> None:
    for n in range(27):
        clock.advance(seconds=1)
        response = await client.post(
            "/api/v1/decisions",
            json={
                "action": "comment",
                "title": f"comment {n}",
                "repo": REPO,
                "params": {"body": "hi", "pull_number": 7},
            },
            headers=keys.of("developer"),
        )
        assert response.json()["status"] == "auto_approved", response.text
    await services.runs.schedule()
    await log_in(client, keys.viewer)
    first = await page(client, "/runs?status=queued")
    assert first.text.count('<tr data-run="run_') == 25
    cursor = re.search(r'cursor=([^"&]+)"', first.text)
    assert cursor
    second = await page(client, f"/runs?status=queued&cursor={cursor.group(1)}")
    assert second.text.count('<tr data-run="run_') == 2
    assert "First page" in second.text


async def test_the_incident_timeline_shows_signals_decisions_runs_and_audit_in_time_order(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub
) -> None:
    response = await post_github(
        client, fixture("github", "workflow_run.completed.failure"), "workflow_run"
    )
    assert response.status_code == 202
    await services.processor.run_due()
    [incident] = (await client.get("/api/v1/incidents", headers=keys.of("viewer"))).json()["items"]
    made = await client.post(
        "/api/v1/decisions",
        json={
            "action": "comment",
            "title": "tell the pull request",
            "incident_id": incident["id"],
            "repo": REPO,
            "params": {"body": "CI failed", "pull_number": 7},
        },
        headers=keys.of("developer"),
    )
    assert made.json()["status"] == "auto_approved", made.text
    await run_pass(services)
    await log_in(client, keys.admin)
    detail = (await page(client, f"/incidents/{incident['id']}")).text
    timeline = detail[detail.index('<ol class="timeline"') :]
    order = [
        "ci_failure from github",
        "Decision proposed: tell the pull request (comment)",
        "Run of comment queued",
        "Run of comment started",
        "Run of comment succeeded",
    ]
    positions = [timeline.index(text) for text in order]
    assert positions == sorted(positions), positions
    assert "run.succeeded" in timeline  # the run's own audit events are there for admins
    assert re.search(r'<a href="/runs/run_[0-9a-z]+">see the run</a>', timeline)
    finished = timeline[timeline.index("Run of comment succeeded") :].split("</li>")[0]
    assert '<a href="https://github.com/acme/api/' in finished  # out to the comment
    assert "open its result" in finished
    decisions = detail[detail.index("<h2>Decisions</h2>") : detail.index('<ol class="timeline"')]
    assert re.search(r'<a href="/runs/run_[0-9a-z]+">Its run</a>: succeeded', decisions)
    signal = timeline[timeline.index("ci_failure from github") :].split("</li>")[0]
    assert 'href="https://github.com/' in signal  # out to the CI run


async def test_a_queued_run_says_when_it_waits_for_actions_to_be_turned_back_on(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    made = await client.post(
        "/api/v1/decisions",
        json={
            "action": "comment",
            "title": "comment",
            "repo": REPO,
            "params": {"body": "hi", "pull_number": 7},
        },
        headers=keys.of("developer"),
    )
    assert made.status_code == 201
    await services.runs.schedule()
    turned = await client.put(
        "/api/v1/actions/switch",
        json={"enabled": False, "reason": "incident review in progress"},
        headers=keys.of("admin"),
    )
    assert turned.status_code == 200, turned.text
    await log_in(client, keys.viewer)
    listing = await page(client, "/runs")
    held = re.compile(r"queued: actions are off \(turned off by [^)]*: incident review in progress")
    assert held.search(listing.text)
    run_id = re.search(r'href="/runs/(run_[0-9a-z]+)"', listing.text)
    assert run_id
    assert held.search((await page(client, f"/runs/{run_id.group(1)}")).text)
