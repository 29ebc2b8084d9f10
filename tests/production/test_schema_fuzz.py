"""Schemathesis against Dragon's own OpenAPI document, every route, as an admin over real HTTP:
no answer is a 5xx and every answer matches the documented schema. A fixed seed and a small,
fixed number of examples per operation keep it reproducible and its time bounded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.readiness import wait_ready_blocking

pytestmark = pytest.mark.one_pass(
    "postgresql", "the stricter store: PostgreSQL refuses what SQLite keeps (NUL bytes, types)"
)

BIN = Path(sys.executable).parent
EXAMPLES_PER_OPERATION = 5
SEED = 8


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> tuple[str, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DRAGON_")},
        "DRAGON_DATABASE_URL": database_url,
        "DRAGON_BOOTSTRAP_ADMIN": "false",
        "DRAGON_LOG_LEVEL": "error",
    }
    made = subprocess.run(
        [str(BIN / "dragon"), "keys", "create", "--name", "fuzzer", "--role", "admin"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    key = made.stdout.strip().splitlines()[-1]
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "dragon"), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready_blocking(base, process=server)
        yield base, key
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_no_route_answers_5xx_or_off_schema_under_schemathesis(
    served: tuple[str, str], tmp_path: Path
) -> None:
    base, key = served
    report = tmp_path / "schemathesis.txt"
    result = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "run",
            f"{base}/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--phases",
            "coverage,fuzzing",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report.write_text(result.stdout + result.stderr, encoding="utf-8")
    summary = result.stdout[-6000:]
    assert "Tested: " in result.stdout, summary
    assert result.returncode == 0, summary
