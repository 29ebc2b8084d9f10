"""A real Prometheus Alertmanager notifies a real `dragon serve` through its webhook receiver: a
firing alert opens an incident, and the resolved notification closes it as the system actor.

Both processes listen on 127.0.0.1 only and are always stopped. CI installs the Debian package
`prometheus-alertmanager` (.ci/run); without it this test fails rather than skips.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx
import pytest
import yaml

from tests.support.ports import free_port
from tests.support.readiness import wait_ready_blocking

DRAGON = Path(sys.executable).with_name("dragon")
KEY = re.compile(r"drg_[A-Za-z0-9_-]{43}")
ALERT_NAME = "DragonTestHighErrorRate"
SUMMARY = "Checkout error rate above 5% for 5 minutes"
# A bound, not an expected duration (start-up waits up to tests.support.readiness's deadline):
# a stop is well under a second on an idle machine but several while other suites load the CPU;
# the whole firing-to-resolved exchange takes about 3 s.
STOP_SECONDS = 30.0


@dataclass(frozen=True)
class Dragon:
    """A running `dragon serve`, read through its API with an admin key."""

    process: subprocess.Popen[str]
    base_url: str
    admin_key: str
    alertmanager_token: str
    log: Path

    def incidents(self) -> list[dict[str, Any]]:
        return self._alertmanager_items("/api/v1/incidents")

    def deliveries(self) -> list[dict[str, Any]]:
        return self._alertmanager_items("/api/v1/deliveries")

    def _alertmanager_items(self, path: str) -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{self.base_url}{path}",
            params={"source": "alertmanager"},
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=5,
        )
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items


@dataclass(frozen=True)
class Alertmanager:
    """A running Alertmanager; alerts go in through its own v2 API, as Prometheus sends them."""

    process: subprocess.Popen[str]
    base_url: str
    log: Path

    def post_alert(self, alert: dict[str, Any]) -> None:
        answer = httpx.post(f"{self.base_url}/api/v2/alerts", json=[alert], timeout=5)
        assert answer.status_code == 200, answer.text


def _alertmanager_binary() -> str:
    found = shutil.which("prometheus-alertmanager")
    if found is None:
        pytest.fail(
            "prometheus-alertmanager is not on PATH; install the Debian package: "
            "`apt-get install -y prometheus-alertmanager` (.ci/run does this in CI)"
        )
    return found


def _dragon_env(database_url: str, token: str) -> dict[str, str]:
    """The outer environment without any DRAGON_ variable (a developer's or CI's
    DRAGON_DATABASE_URL must not leak in), plus this test's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAGON_")}
    env.update(
        DRAGON_DATABASE_URL=database_url,
        DRAGON_ALERTMANAGER_TOKEN=token,
        DRAGON_BOOTSTRAP_ADMIN="false",
        DRAGON_WORKER_POLL_SECONDS="0.2",
        DRAGON_LOG_FORMAT="console",
    )
    return env


def _tail(log: Path, lines: int = 40) -> str:
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_SECONDS)


def _wait_for(
    condition: Callable[[], list[dict[str, Any]] | None],
    *,
    seconds: float,
    what: str,
    logs: tuple[Path, ...],
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found is not None:
            return found
        time.sleep(0.2)
    shown = "\n".join(f"--- {log.name}\n{_tail(log)}" for log in logs)
    pytest.fail(f"{what} did not happen in {seconds:g} s\n{shown}")


def _start(
    command: list[str], env: dict[str, str], cwd: Path, sink: TextIO
) -> subprocess.Popen[str]:
    # Output goes to a file, not a pipe nobody reads, so a chatty process never blocks on it.
    return subprocess.Popen(
        command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, text=True
    )


def _run_dragon(args: list[str], *, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [str(DRAGON), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"dragon {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


@contextmanager
def _dragon(tmp_path: Path) -> Iterator[Dragon]:
    """A migrated SQLite store, an admin key, and `dragon serve` on a free loopback port. Runs
    in tmp_path so no `.env` file from the checkout is read."""
    token = secrets.token_urlsafe(30)  # 40 characters
    env = _dragon_env(f"sqlite+aiosqlite:///{tmp_path / 'dragon.db'}", token)
    _run_dragon(["migrate"], env=env, cwd=tmp_path)
    created = _run_dragon(
        ["keys", "create", "--name", "admin", "--role", "admin"], env=env, cwd=tmp_path
    )
    admin_key = created.strip().splitlines()[-1]  # the secret is printed alone on the last line
    assert KEY.fullmatch(admin_key), created

    port = free_port()
    log = tmp_path / "dragon.log"
    with log.open("w", encoding="utf-8") as sink:
        process = _start([str(DRAGON), "serve", "--port", str(port)], env, tmp_path, sink)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_ready_blocking(base_url, process=process, output=lambda: _tail(log))
        yield Dragon(process, base_url, admin_key, token, log)
    finally:
        _stop(process)


@contextmanager
def _alertmanager(binary: str, tmp_path: Path, dragon: Dragon) -> Iterator[Alertmanager]:
    """The real Alertmanager, clustering off, routing every alert to Dragon's webhook."""
    config = {
        "route": {
            "receiver": "dragon",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "dragon",
                "webhook_configs": [
                    {
                        "url": f"{dragon.base_url}/webhooks/alertmanager",
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {
                                "type": "Bearer",
                                "credentials": dragon.alertmanager_token,
                            }
                        },
                    }
                ],
            }
        ],
    }
    config_file = tmp_path / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    storage = tmp_path / "alertmanager-data"
    storage.mkdir()

    port = free_port()
    log = tmp_path / "alertmanager.log"
    command = [
        binary,
        f"--config.file={config_file}",
        f"--storage.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # empty: no gossip port, no HA peers
        "--data.retention=1h",
        "--log.level=debug",
    ]
    with log.open("w", encoding="utf-8") as sink:
        process = _start(command, {"PATH": os.environ.get("PATH", "")}, tmp_path, sink)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_ready_blocking(
            base_url,
            process=process,
            output=lambda: _tail(log),
            probe="/-/ready",
            name="alertmanager",
        )
        yield Alertmanager(process, base_url, log)
    finally:
        _stop(process)


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_real_alertmanager_opens_an_incident_and_its_resolution_closes_it(tmp_path: Path) -> None:
    binary = _alertmanager_binary()  # before anything starts: a missing package fails at once
    with _dragon(tmp_path) as dragon, _alertmanager(binary, tmp_path, dragon) as alertmanager:
        logs = (dragon.log, alertmanager.log)
        started = datetime.now(UTC)
        alert: dict[str, Any] = {
            "labels": {"alertname": ALERT_NAME, "service": "checkout", "severity": "critical"},
            "annotations": {"summary": SUMMARY},
            "startsAt": _rfc3339(started),
            "generatorURL": "http://prometheus.test/graph?g0.expr=checkout_errors",
        }
        alertmanager.post_alert(alert)

        def opened() -> list[dict[str, Any]] | None:
            return dragon.incidents() or None

        incidents = _wait_for(opened, seconds=20, what="an incident", logs=logs)
        assert len(incidents) == 1, incidents
        incident = incidents[0]
        assert incident["title"] == SUMMARY
        assert incident["severity"] == "SEV1"
        assert incident["source"] == "alertmanager"
        assert incident["status"] == "open"
        assert incident["url"] == alert["generatorURL"]
        assert incident["signal_count"] == 1
        assert incident["resolved_at"] is None

        alertmanager.post_alert({**alert, "endsAt": _rfc3339(datetime.now(UTC))})

        def resolved() -> list[dict[str, Any]] | None:
            found = dragon.incidents()
            return found if all(i["status"] == "resolved" for i in found) else None

        incidents = _wait_for(resolved, seconds=30, what="the resolution", logs=logs)
        assert [i["id"] for i in incidents] == [incident["id"]], incidents
        assert incidents[0]["resolved_by"] == "system"
        assert incidents[0]["resolved_at"] is not None

        def settled() -> list[dict[str, Any]] | None:
            found = dragon.deliveries()
            return found if all(d["status"] != "pending" for d in found) else None

        deliveries = _wait_for(settled, seconds=10, what="all deliveries settled", logs=logs)
        assert {d["status"] for d in deliveries} == {"processed"}, deliveries
        assert {d["event_type"] for d in deliveries} >= {"alerts_firing", "alerts_resolved"}
        assert alertmanager.process.poll() is None, _tail(alertmanager.log)

    assert dragon.process.returncode == 0, _tail(dragon.log)
