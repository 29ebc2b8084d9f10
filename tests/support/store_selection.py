"""Which tests can depend on the configured store, so that CI's PostgreSQL pass runs only those
(`--store-tests-only`, docs/decisions/0019-citime-store-tests-on-postgres.md), and two guards
that keep a test from reaching the configured store without saying so.

A test is a store test when it
- requests `migrated_template`, directly or through any fixture built on it (`database_url`,
  `settings`, `app`, `client`, `services`, `keys`, `make_app`, the browser tests' `server`...);
- or its module, or the module of any fixture it uses, reads the configured PostgreSQL URL
  (`POSTGRES_URL` / `GIVEN_POSTGRES_URL` from tests/conftest.py);
- or it carries `@pytest.mark.store`.
Every other test names its own store (an SQLite file in its tmp path, a private PostgreSQL) or
has none, and gives the same outcome in both passes, so it runs in the SQLite pass only.

The guards hold in every run: a `dragon` process a test starts must be given its
DRAGON_DATABASE_URL, and no test may open the default store file (`var/dragon.db`), which is
where Settings built from the environment would land without the database fixtures.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

STORE_FIXTURES = frozenset({"migrated_template"})
STORE_URL_NAMES = ("POSTGRES_URL", "GIVEN_POSTGRES_URL")
OPTION = "--store-tests-only"
DEFAULT_STORE = Path("var") / "dragon.db"  # Settings.database_url's default, relative to cwd
_SUITE_CONFTEST = "tests.conftest"
_OUTPUT_KEY = "store_selection"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        OPTION,
        action="store_true",
        help="run only the tests whose outcome can depend on the configured store "
        "(CI's PostgreSQL pass)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "store: the test reaches the configured store in a way its fixtures do not show; "
        "it runs in the PostgreSQL pass too",
    )
    config.stash[_summary_key] = {}
    sys.addaudithook(_refuse_undeclared_store)


def _reads_store_url(namespace: dict[str, Any]) -> bool:
    if namespace.get("__name__") == _SUITE_CONFTEST:
        return False  # defines the names; its store fixtures are STORE_FIXTURES
    return any(name in namespace for name in STORE_URL_NAMES)


def store_reason(item: pytest.Item) -> str | None:
    """Why the test can depend on the configured store, or None when it cannot."""
    if item.get_closest_marker("store") is not None:
        return "marked store"
    if STORE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "database fixtures"
    function = getattr(item, "function", None)
    if function is not None and _reads_store_url(function.__globals__):
        return "module reads the configured database URL"
    info = getattr(item, "_fixtureinfo", None)
    for definitions in info.name2fixturedefs.values() if info else ():
        for definition in definitions:
            if _reads_store_url(getattr(definition.func, "__globals__", {})):
                return "fixture reads the configured database URL"
    return None


def _directory(item: pytest.Item) -> str:
    return "/".join(item.nodeid.split("::")[0].split("/")[:2])


def _summarise(kept: Iterable[tuple[pytest.Item, str]], left: Iterable[pytest.Item]) -> dict:
    return {
        "kept": dict(Counter(reason for _, reason in kept)),
        "left": dict(Counter(_directory(item) for item in left)),
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons = [(item, store_reason(item)) for item in items]
    kept = [(item, reason) for item, reason in reasons if reason is not None]
    left = [item for item, reason in reasons if reason is None]
    summary = _summarise(kept, left)
    summary["selecting"] = config.getoption(OPTION)
    if summary["selecting"] and left:
        config.hook.pytest_deselected(items=left)
        items[:] = [item for item, _ in kept]
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller prints
        workeroutput[_OUTPUT_KEY] = summary
    else:
        config.stash[_summary_key].update(summary)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    summary = getattr(node, "workeroutput", {}).get(_OUTPUT_KEY)
    if summary:  # every worker collects the same tests; one summary stands for all
        node.config.stash[_summary_key].update(summary)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    summary = config.stash[_summary_key]
    if not summary:
        return
    kept, left = summary["kept"], summary["left"]
    because = ", ".join(f"{count} {reason}" for reason, count in sorted(kept.items()))
    where = ", ".join(f"{count} in {directory}" for directory, count in sorted(left.items()))
    if summary["selecting"]:
        terminalreporter.write_sep("=", "store tests only (docs/decisions/0019)")
        terminalreporter.write_line(f"ran {sum(kept.values())} store tests: {because or 'none'}")
        terminalreporter.write_line(
            f"left {sum(left.values())} tests that name their own store or have none "
            f"to the SQLite pass: {where or 'none'}"
        )
    else:
        terminalreporter.write_line(
            f"{sum(kept.values())} of {sum(kept.values()) + sum(left.values())} tests can depend "
            f"on the configured store ({because or 'none'}); `{OPTION}` runs only those"
        )


_summary_key = pytest.StashKey[dict[str, Any]]()


def _refuse_undeclared_store(event: str, args: tuple[Any, ...]) -> None:
    """An audit hook: it sees every subprocess started and every SQLite file opened, on any
    thread, so the check holds however deep inside a fixture or a library the call is."""
    if event == "subprocess.Popen":
        executable, argv, _, env = args
        first = argv[0] if isinstance(argv, list | tuple) and argv else argv
        program = os.fsdecode(executable if executable is not None else first)
        if Path(program).name == "dragon" and not _names_database(env):
            raise RuntimeError(
                "a test started `dragon` without DRAGON_DATABASE_URL: give it the "
                "`database_url` fixture's URL (a store test) or a store of its own"
            )
    elif event == "sqlite3.connect" and isinstance(args[0], str | bytes | os.PathLike):
        name = os.fsdecode(args[0]).removeprefix("file:").split("?")[0]
        if Path(os.path.abspath(name)) == Path.cwd() / DEFAULT_STORE:
            raise RuntimeError(
                "a test opened the default store var/dragon.db: request `database_url` "
                "(a store test) or give it a store of its own"
            )


def _names_database(env: Any) -> bool:
    if env is None:
        return bool(os.environ.get("DRAGON_DATABASE_URL"))
    return any(os.fsdecode(name) == "DRAGON_DATABASE_URL" and value for name, value in env.items())
