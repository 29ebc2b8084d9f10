"""Pure pieces of the console: the dashboard arithmetic, the SVG chart, the session codec."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from dragon.api.sessions import SessionCodec
from dragon.domain.dashboard import DecisionSummary, IncidentSummary, compute_figures
from dragon.domain.entities import Run
from dragon.domain.enums import RunStatus
from dragon.domain.ports import LiveEvent
from dragon.services.live_updates import InProcessBroadcaster
from dragon.web.charts import incidents_chart
from dragon.web.rendering import duration, web_url
from dragon.web.run_views import ResultLink, result_links, status_text

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def test_figures_fill_every_chart_day_and_every_severity() -> None:
    figures = compute_figures(
        now=NOW,
        open_counts=[("SEV2", "github", 3), ("SEV2", "gitlab", 1)],
        incidents=IncidentSummary(
            mtta_seconds=61.26, mttr_seconds=None, opened_per_day={date(2026, 11, 20): 4}
        ),
        decisions=DecisionSummary(
            total=3, went_ahead_alone=1, pending=1, approval_latency_seconds=None
        ),
    )
    assert figures.open_by_severity == {"SEV1": 0, "SEV2": 4, "SEV3": 0, "SEV4": 0}
    assert figures.open_by_source == {"github": 3, "gitlab": 1}
    assert figures.mtta_seconds == 61.3
    assert figures.auto_remediation_rate == 0.333
    assert len(figures.incidents_per_day) == 14
    assert figures.incidents_per_day[-1] == (NOW.date(), 0)
    assert (date(2026, 11, 20), 4) in figures.incidents_per_day


def test_no_decisions_means_no_rate_rather_than_zero() -> None:
    figures = compute_figures(
        now=NOW,
        open_counts=[],
        incidents=IncidentSummary(None, None, {}),
        decisions=DecisionSummary(0, 0, 0, None),
    )
    assert figures.auto_remediation_rate is None
    assert figures.open_total == 0


def test_the_chart_writes_every_value_out_and_describes_itself() -> None:
    points = [(date(2026, 11, 9) + timedelta(days=n), n % 3) for n in range(14)]
    svg = str(incidents_chart(points))
    assert svg.count("<rect") == 14
    assert 'role="img"' in svg
    assert '<title id="chart-title">Incidents opened per day</title>' in svg
    assert "13 incidents from 2026-11-09 to 2026-11-22" in svg
    assert "2026-11-10: 1" in svg


def test_durations_read_like_people_write_them() -> None:
    assert [duration(v) for v in (None, 42, 420, 12_600, 190_000)] == [
        "—",
        "42 s",
        "7 min",
        "3.5 h",
        "2.2 d",
    ]


def test_a_session_cookie_round_trips_and_any_edit_voids_it() -> None:
    now = [NOW]
    codec = SessionCodec(
        b"k" * 32, clock=lambda: now[0], idle=timedelta(minutes=30), max_age=timedelta(hours=12)
    )
    session = codec.start("key_1")
    cookie = codec.encode(session)
    assert codec.decode(cookie) == session
    body, signature = cookie.split(".")
    assert codec.decode(body[:-1] + "A." + signature) is None
    other = SessionCodec(
        b"x" * 32, clock=lambda: now[0], idle=timedelta(minutes=30), max_age=timedelta(hours=12)
    )
    assert other.decode(cookie) is None
    assert codec.csrf_valid(codec.csrf_token(session.sid), session.sid)
    assert not codec.csrf_valid(codec.csrf_token("another"), session.sid)
    now[0] = NOW + timedelta(minutes=31)
    assert codec.decode(cookie) is None


def test_only_http_links_are_rendered_as_links() -> None:
    assert web_url("https://github.com/acme/shop/actions/runs/1") is not None
    assert web_url("javascript:alert(1)") is None
    assert web_url("JAVASCRIPT:alert(1)") is None
    assert web_url(None) is None


async def test_closing_the_broadcaster_ends_every_subscription_present_and_future() -> None:
    broadcaster = InProcessBroadcaster()
    async with broadcaster.subscribe() as queue:
        for n in range(20):  # a slow subscriber keeps only the newest events
            await broadcaster.publish(LiveEvent("dashboard", {"n": n}))
        assert queue.qsize() == 8
        broadcaster.close()
        drained = [queue.get_nowait() for _ in range(queue.qsize())]
        assert drained[-1].topic == "closing"
        assert drained[0].data == {"n": 13}
    assert broadcaster.subscribers == 0
    async with broadcaster.subscribe() as late:
        assert late.get_nowait().topic == "closing"


def test_a_runs_result_links_are_its_http_urls_labelled_by_where_they_sit() -> None:
    result = {
        "runbook": "rerun-and-tell@1.0.0",
        "steps": {
            "tell": {"comment_url": "https://github.com/acme/api/issues/7#comment"},
            "poke": {"status": 200, "url": "javascript:alert(1)"},
        },
        "pull_request_url": "https://github.com/acme/api/pull/9",
    }
    assert result_links(result) == [
        ResultLink("steps / tell / comment url", "https://github.com/acme/api/issues/7#comment"),
        ResultLink("pull request url", "https://github.com/acme/api/pull/9"),
    ]


def test_a_runs_status_is_said_in_words() -> None:
    def run(status: RunStatus, attempts: int, **kw: object) -> Run:
        return Run(
            id="run_1",
            decision_id="dec_1",
            idempotency_key="k",
            action="comment",
            status=status,
            attempts=attempts,
            next_attempt_at=NOW,
            created_at=NOW,
            updated_at=NOW,
            **kw,  # type: ignore[arg-type]
        )

    assert status_text(run(RunStatus.QUEUED, 0)) == "queued: waiting for a worker"
    assert status_text(run(RunStatus.QUEUED, 2)) == (
        "queued: attempt 2 of 5 failed, next try after 09:00:00 UTC"
    )
    assert status_text(run(RunStatus.QUEUED, 0), held="maintenance").startswith(
        "queued: actions are off (maintenance)"
    )
    assert status_text(run(RunStatus.RUNNING, 1)) == "running: attempt 1 of 5"
    failed = run(RunStatus.FAILED, 5, error_code="vendor_rejected")
    assert status_text(failed) == "failed after 5 attempt(s): vendor_rejected"
    assert status_text(run(RunStatus.SUCCEEDED, 1)) == "succeeded after 1 attempt(s)"
