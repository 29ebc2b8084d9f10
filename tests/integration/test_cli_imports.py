"""What a `dragon` process loads before it runs its command: the CLI, the worker and the
supervisor of several server processes build no ASGI app, so they never import FastAPI, the
console or the HTTP middleware; only the processes that serve HTTP do."""

from __future__ import annotations

import json
import subprocess
import sys

WEB_MODULES = ("fastapi", "dragon.app", "dragon.web.console", "dragon.wiring.middleware")


def loaded_after(statement: str) -> set[str]:
    script = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(done.stdout))


def test_the_dragon_command_and_its_worker_load_no_web_app() -> None:
    loaded = loaded_after("import dragon.cli, dragon.cli.worker")
    assert "dragon.cli.serve" in loaded  # the command group itself is there
    assert loaded.isdisjoint(WEB_MODULES), sorted(loaded.intersection(WEB_MODULES))


def test_a_server_process_loads_the_app_through_its_factory_module() -> None:
    loaded = loaded_after("import dragon.cli.served_app")
    assert set(WEB_MODULES) <= loaded
