"""The GitLab, Jenkins and Alertmanager receivers over HTTP: each one's own credential checked at
the route, its delivery key deduplicating in the inbox, and its failures and recoveries opening
and resolving one incident. The adapters' parsing is specified in tests/unit; this is the
wiring from the route to the incident. Payloads are the fixtures in tests/fixtures (SOURCES.md).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from dragon.app import create_app
from dragon.services.container import Services
from dragon.settings import Settings
from tests.api.test_ingestion import github_headers, incidents
from tests.conftest import WEBHOOK_SECRETS, FakeClock, Keys
from tests.support.readiness import app_ready

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_body(vendor: str, name: str) -> bytes:
    return (FIXTURES / vendor / f"{name}.json").read_bytes()


def gitlab_headers(event: str, uuid_: str, token: str | None) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "x-gitlab-event": event,
        "x-gitlab-event-uuid": uuid_,
    }
    if token is not None:
        headers["x-gitlab-token"] = token
    return headers


async def post_gitlab(
    client: httpx.AsyncClient,
    name: str,
    event: str,
    *,
    event_uuid: str | None = None,
    token: str | None = WEBHOOK_SECRETS["gitlab"],
) -> httpx.Response:
    """A GitLab hook of fixture `name`, under a new event UUID unless one is given."""
    headers = gitlab_headers(event, str(uuid.uuid4()) if event_uuid is None else event_uuid, token)
    return await client.post(
        "/webhooks/gitlab", content=fixture_body("gitlab", name), headers=headers
    )


def jenkins_signature(body: bytes, secret: str = WEBHOOK_SECRETS["jenkins"]) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def jenkins_signed(body: bytes) -> dict[str, str]:
    """The headers of a notification signed over `body` with the configured secret."""
    return {"content-type": "application/json", "x-jenkins-signature": jenkins_signature(body)}


async def deliveries(client: httpx.AsyncClient, keys: Keys) -> list[dict[str, Any]]:
    listed = await client.get("/api/v1/deliveries", params={"limit": 100}, headers=keys.of("admin"))
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


async def assert_resolved_by_the_system(
    client: httpx.AsyncClient, keys: Keys, incident_id: str
) -> None:
    [resolved] = await incidents(client, keys)
    assert (resolved["id"], resolved["status"], resolved["resolved_by"]) == (
        incident_id,
        "resolved",
        "system",
    )


# --- GitLab -----------------------------------------------------------------------------------


async def test_a_gitlab_pipeline_failure_redelivered_opens_one_incident_and_its_success_resolves(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    event_uuid = str(uuid.uuid4())
    first = await post_gitlab(client, "pipeline.failed", "Pipeline Hook", event_uuid=event_uuid)
    again = await post_gitlab(client, "pipeline.failed", "Pipeline Hook", event_uuid=event_uuid)
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "accepted"
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "duplicate"
    assert again.json()["delivery_id"] == first.json()["delivery_id"]

    assert await services.processor.run_due() == 1
    [incident] = await incidents(client, keys)
    assert (incident["source"], incident["status"], incident["signal_count"]) == (
        "gitlab",
        "open",
        1,
    )
    assert incident["branch"] == "master"

    # The same failure under a new event UUID is a new delivery of the same signal: stored, and
    # correlated onto nothing new.
    resent = await post_gitlab(client, "pipeline.failed", "Pipeline Hook")
    assert resent.status_code == 202
    await services.processor.run_due()
    [incident] = await incidents(client, keys)
    assert incident["signal_count"] == 1

    success = await post_gitlab(client, "pipeline.success", "Pipeline Hook")
    assert success.status_code == 202
    await services.processor.run_due()
    await assert_resolved_by_the_system(client, keys, incident["id"])
    assert len(await deliveries(client, keys)) == 3


async def test_a_gitlab_job_hook_opens_an_incident_for_the_job(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    answer = await post_gitlab(client, "job.failed", "Job Hook")
    assert answer.status_code == 202, answer.text
    assert await services.processor.run_due() == 1
    [incident] = await incidents(client, keys)
    assert (incident["source"], incident["status"]) == ("gitlab", "open")


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "wrong-token-of-a-good-length-0123456789",
        WEBHOOK_SECRETS["gitlab"][:-1],
        WEBHOOK_SECRETS["gitlab"] + " ",
        WEBHOOK_SECRETS["github"],
    ],
    ids=["missing", "empty", "wrong", "truncated", "padded", "another-senders-secret"],
)
async def test_a_gitlab_hook_without_the_right_token_is_401_and_stores_nothing(
    client: httpx.AsyncClient, keys: Keys, token: str | None
) -> None:
    answer = await post_gitlab(client, "pipeline.failed", "Pipeline Hook", token=token)
    assert answer.status_code == 401, answer.text
    assert answer.json()["code"] == "token_invalid"
    assert WEBHOOK_SECRETS["gitlab"] not in answer.text
    assert await deliveries(client, keys) == []


async def test_a_gitlab_hook_without_its_event_uuid_is_refused_and_stores_nothing(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    answer = await post_gitlab(client, "pipeline.failed", "Pipeline Hook", event_uuid="")
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["code"] == "delivery_key_missing"
    assert await deliveries(client, keys) == []


async def test_a_gitlab_push_hook_is_recorded_as_ignored(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    answer = await post_gitlab(client, "push", "Push Hook")
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "ignored"
    await services.processor.run_due()
    assert await incidents(client, keys) == []


# --- Jenkins ----------------------------------------------------------------------------------


async def test_a_jenkins_build_notified_completed_finalized_and_retried_opens_one_incident(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    completed = fixture_body("jenkins", "completed.failure")
    finalized = fixture_body("jenkins", "finalized.failure")
    signed = jenkins_signed(completed)
    bearer = {
        "content-type": "application/json",
        "authorization": f"Bearer {WEBHOOK_SECRETS['jenkins']}",
    }
    first = await client.post("/webhooks/jenkins", content=completed, headers=signed)
    retried = await client.post("/webhooks/jenkins", content=completed, headers=bearer)
    final = await client.post("/webhooks/jenkins", content=finalized, headers=bearer)

    assert first.status_code == 202, first.text
    # The plugin's retry of one notification has the same job, build number and phase.
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "duplicate"
    assert retried.json()["delivery_id"] == first.json()["delivery_id"]
    # FINALIZED is another delivery (another phase) of the same build: the same signal.
    assert final.status_code == 202, final.text
    assert final.json()["delivery_id"] != first.json()["delivery_id"]

    await services.processor.run_due()
    [incident] = await incidents(client, keys)
    assert (incident["source"], incident["status"], incident["signal_count"]) == (
        "jenkins",
        "open",
        1,
    )
    assert len(await deliveries(client, keys)) == 2

    success = fixture_body("jenkins", "completed.success")
    answer = await client.post(
        "/webhooks/jenkins", content=success, headers=jenkins_signed(success)
    )
    assert answer.status_code == 202, answer.text
    await services.processor.run_due()
    await assert_resolved_by_the_system(client, keys, incident["id"])


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong-token-of-a-good-length-0123456789"},
        {"authorization": f"Basic {WEBHOOK_SECRETS['jenkins']}"},
        {"x-jenkins-signature": "sha256=" + "0" * 64},
        {"x-jenkins-signature": "sha1=" + "0" * 40},
        {"x-jenkins-signature": "signed-with-another-secret"},
    ],
    ids=["nothing", "wrong-bearer", "basic-scheme", "wrong-signature", "sha1", "garbage"],
)
async def test_a_jenkins_notification_without_a_valid_signature_or_token_is_401_and_stores_nothing(
    client: httpx.AsyncClient, keys: Keys, headers: dict[str, str]
) -> None:
    body = fixture_body("jenkins", "completed.failure")
    if headers.get("x-jenkins-signature") == "signed-with-another-secret":
        headers = {"x-jenkins-signature": jenkins_signature(body, "not-the-jenkins-secret-0123")}
    answer = await client.post(
        "/webhooks/jenkins", content=body, headers={"content-type": "application/json", **headers}
    )
    assert answer.status_code == 401, answer.text
    assert answer.json()["code"] == "signature_invalid"
    assert await deliveries(client, keys) == []


async def test_a_signature_over_another_body_is_refused(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    body = fixture_body("jenkins", "completed.failure")
    tampered = body.replace(b"FAILURE", b"SUCCESS")
    answer = await client.post("/webhooks/jenkins", content=tampered, headers=jenkins_signed(body))
    assert answer.status_code == 401, answer.text
    assert await deliveries(client, keys) == []


# --- Alertmanager -----------------------------------------------------------------------------

ALERTMANAGER_BEARER = {
    "content-type": "application/json",
    "authorization": f"Bearer {WEBHOOK_SECRETS['alertmanager']}",
}


async def test_an_alertmanager_group_firing_twice_then_resolved_opens_and_resolves_one_incident(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    bearer = ALERTMANAGER_BEARER
    firing = fixture_body("alertmanager", "firing")
    first = await client.post("/webhooks/alertmanager", content=firing, headers=bearer)
    # Alertmanager resends a group on every repeat interval; the same body is one delivery.
    repeat = await client.post("/webhooks/alertmanager", content=firing, headers=bearer)
    assert first.status_code == 202, first.text
    assert repeat.status_code == 200, repeat.text
    assert repeat.json()["delivery_id"] == first.json()["delivery_id"]

    await services.processor.run_due()
    [incident] = await incidents(client, keys)
    two_pods = len(orjson.loads(firing)["alerts"])
    assert (incident["source"], incident["status"], incident["signal_count"]) == (
        "alertmanager",
        "open",
        two_pods,
    )

    resolved = await client.post(
        "/webhooks/alertmanager", content=fixture_body("alertmanager", "resolved"), headers=bearer
    )
    assert resolved.status_code == 202, resolved.text
    await services.processor.run_due()
    await assert_resolved_by_the_system(client, keys, incident["id"])


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer ", "Bearer wrong-token-of-a-good-length-0123456789", "Token {secret}"],
    ids=["missing", "empty", "wrong", "other-scheme"],
)
async def test_an_alertmanager_delivery_without_the_bearer_token_is_401_and_stores_nothing(
    client: httpx.AsyncClient, keys: Keys, authorization: str | None
) -> None:
    headers = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization.format(secret=WEBHOOK_SECRETS["alertmanager"])
    answer = await client.post(
        "/webhooks/alertmanager", content=fixture_body("alertmanager", "firing"), headers=headers
    )
    assert answer.status_code == 401, answer.text
    assert answer.json()["code"] == "token_invalid"
    assert await deliveries(client, keys) == []


async def test_an_alert_resolved_while_another_of_its_incident_still_fires_leaves_it_open(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    bearer = ALERTMANAGER_BEARER
    for name in ("firing", "mixed"):  # two pods fire; then one of them resolves
        answer = await client.post(
            "/webhooks/alertmanager", content=fixture_body("alertmanager", name), headers=bearer
        )
        assert answer.status_code == 202, answer.text
        await services.processor.run_due()
        [incident] = await incidents(client, keys)
        assert incident["status"] == "open", name

    answer = await client.post(
        "/webhooks/alertmanager", content=fixture_body("alertmanager", "resolved"), headers=bearer
    )
    assert answer.status_code == 202, answer.text
    await services.processor.run_due()
    await assert_resolved_by_the_system(client, keys, incident["id"])


# --- rotation ---------------------------------------------------------------------------------


@pytest.fixture
async def rotating(settings: Settings, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose GitHub secret and GitLab token are mid-rotation: old and new, as the
    comma-separated environment values give them."""
    changed = settings.model_copy(
        update={
            "github_webhook_secret": SecretStr(f"{OLD_SECRET}, {NEW_SECRET}"),
            "gitlab_webhook_token": SecretStr(f"{OLD_SECRET},{NEW_SECRET}"),
        }
    )
    application = create_app(changed, clock=clock)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
        await app_ready(application)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as http:
            yield http


OLD_SECRET = "the-secret-being-retired-0123456789abcdef"
NEW_SECRET = "the-secret-rolling-out-0123456789abcdef00"


@pytest.mark.parametrize(
    ("secret", "status"),
    [
        (OLD_SECRET, 202),
        (NEW_SECRET, 202),
        (WEBHOOK_SECRETS["github"], 401),
        (f"{OLD_SECRET},{NEW_SECRET}", 401),
    ],
    ids=["old", "new", "neither", "both-joined"],
)
async def test_during_a_rotation_both_secrets_are_accepted_and_no_other(
    rotating: httpx.AsyncClient, secret: str, status: int
) -> None:
    body = fixture_body("github", "workflow_run.completed.failure")
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {**github_headers(body, "workflow_run"), "x-hub-signature-256": f"sha256={digest}"}
    github = await rotating.post("/webhooks/github", content=body, headers=headers)
    gitlab = await post_gitlab(rotating, "pipeline.failed", "Pipeline Hook", token=secret)
    assert (github.status_code, gitlab.status_code) == (status, status), (github.text, gitlab.text)
