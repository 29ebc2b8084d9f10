"""The first start of an empty store prints an admin key once, with a curl line; later starts
print nothing of the kind, and the printed key works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.ports import free_port
from tests.support.readiness import wait_ready_blocking

DRAGON = Path(sys.executable).with_name("dragon")
KEY = re.compile(r"drg_[A-Za-z0-9_-]{43}")


def _serve_until_ready(env: dict[str, str], port: int) -> tuple[str, int]:
    """Start `dragon serve`, wait for /readyz, stop it; returns its stdout and exit code."""
    process = subprocess.Popen(
        [str(DRAGON), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_ready_blocking(f"http://127.0.0.1:{port}", process=process)
    finally:
        process.terminate()
        stdout, _ = process.communicate(timeout=60)
    return stdout, process.returncode


def test_first_start_prints_a_working_admin_key_once_and_never_again(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'dragon.db'}"
    env = {**os.environ, "DRAGON_DATABASE_URL": url, "DRAGON_LOG_FORMAT": "json"}
    env.pop("DRAGON_BOOTSTRAP_ADMIN", None)
    subprocess.run([str(DRAGON), "migrate"], env=env, check=True, capture_output=True)

    port = free_port()
    first, code = _serve_until_ready(env, port)
    assert code == 0
    keys = KEY.findall(first)
    assert len(set(keys)) == 1, first
    assert f"curl -H 'Authorization: Bearer {keys[0]}' http://127.0.0.1:{port}/api/v1/me" in first

    second, code = _serve_until_ready(env, port)
    assert code == 0
    assert KEY.findall(second) == []

    listed = subprocess.run(
        [str(DRAGON), "keys", "list"], env=env, check=True, capture_output=True, text=True
    )
    assert "admin" in listed.stdout
    assert keys[0] not in listed.stdout
