"""Which tests CI's two passes run (docs/decisions/0019-store-tests-on-postgres.md), and
two guards that keep a test from reaching the configured store without saying so.

A test is a store test when it
- requests `migrated_template`, directly or through any fixture built on it (`database_url`,
  `settings`, `app`, `client`, `services`, `keys`, `make_app`, the browser tests' `server`...);
- or its module, or the module of any fixture it uses, reads the configured PostgreSQL URL
  (`POSTGRES_URL` / `GIVEN_POSTGRES_URL` from tests/conftest.py);
- or it carries `@pytest.mark.store`.
Every other test names its own store (an SQLite file in its tmp path, a private PostgreSQL) or
has none, and gives the same outcome in both passes: `--store-tests-only` (the PostgreSQL pass)
leaves it to the SQLite pass.

A store test marked `one_pass("postgresql")` or `one_pass("sqlite")` runs in that pass only when
both run: `--postgres-pass-follows` (the SQLite pass of `make test` with a PostgreSQL pass after
it) leaves the first kind to the PostgreSQL pass, and `--store-tests-only` leaves the second kind
to the SQLite pass. A run with neither option runs everything. The reason is written on the
marker; a `one_pass` test that is not a store test is a usage error (it would run in no pass).

The guards hold in every run: a `dragon` process a test starts must be given its
DRAGON_DATABASE_URL, and no test may open the default store file (`var/dragon.db`), which is
where Settings built from the environment would land without the database fixtures.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

STORE_FIXTURES = frozenset({"migrated_template"})
STORE_URL_NAMES = ("POSTGRES_URL", "GIVEN_POSTGRES_URL")
STORE_ONLY = "--store-tests-only"
POSTGRES_FOLLOWS = "--postgres-pass-follows"
PASSES = ("sqlite", "postgresql")
DEFAULT_STORE = Path("var") / "dragon.db"  # Settings.database_url's default, relative to cwd
_SUITE_CONFTEST = "tests.conftest"
_OUTPUT_KEY = "store_selection"
_summary_key = pytest.StashKey[list[str]]()
_PROCESSES_KEY = "dragon_processes"
# `dragon` processes this process started: each costs about 2 s of CPU to import the app, the
# largest single cost of the process tests, so each pass reports its count.
_started = {"dragon": 0}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        STORE_ONLY,
        action="store_true",
        help="run only the store tests, less those marked one_pass('sqlite') "
        "(CI's PostgreSQL pass)",
    )
    parser.addoption(
        POSTGRES_FOLLOWS,
        action="store_true",
        help="leave the tests marked one_pass('postgresql') to the PostgreSQL pass that follows",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "store: the test reaches the configured store in a way its fixtures do not show; "
        "it runs in the PostgreSQL pass too",
    )
    config.addinivalue_line(
        "markers",
        "one_pass(name, reason): a store test that runs in CI's `name` pass only "
        "(sqlite or postgresql), for the reason given",
    )
    config.stash[_summary_key] = []
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


def one_pass(item: pytest.Item, reason: str | None) -> str | None:
    """The one pass a store test is marked for, or None."""
    marker = item.get_closest_marker("one_pass")
    if marker is None:
        return None
    name = marker.args[0] if marker.args else None
    if name not in PASSES or len(marker.args) != 2:
        raise pytest.UsageError(f"{item.nodeid}: write one_pass(<{' or '.join(PASSES)}>, reason)")
    if reason is None:
        raise pytest.UsageError(
            f"{item.nodeid}: one_pass({name!r}) on a test that does not use the store; "
            "it would run in no pass"
        )
    return str(name)


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]


def _directory(item: pytest.Item) -> str:
    return "/".join(_module(item).split("/")[:2])


def _counted(counter: Counter[str]) -> str:
    return ", ".join(f"{count} {what}" for what, count in sorted(counter.items())) or "none"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    store_only, follows = config.getoption(STORE_ONLY), config.getoption(POSTGRES_FOLLOWS)
    if store_only and follows:
        raise pytest.UsageError(f"{STORE_ONLY} and {POSTGRES_FOLLOWS} name different passes")
    reasons = {item: store_reason(item) for item in items}
    passes = {item: one_pass(item, reason) for item, reason in reasons.items()}
    store = Counter(reason for reason in reasons.values() if reason is not None)
    own = Counter(_directory(item) for item, reason in reasons.items() if reason is None)
    if store_only:
        mine = Counter(f"in {_module(item)}" for item, name in passes.items() if name == "sqlite")
        dropped = [i for i in items if reasons[i] is None or passes[i] == "sqlite"]
        lines = [
            f"ran {sum(store.values()) - sum(mine.values())} store tests of "
            f"{sum(store.values())} ({_counted(store)})",
            f"left to the SQLite pass: {sum(own.values())} tests that name their own store or "
            f"have none ({_counted(Counter({f'in {d}': n for d, n in own.items()}))}); "
            f"{sum(mine.values())} marked one_pass('sqlite') ({_counted(mine)})",
        ]
    elif follows:
        mine = Counter(name for name in passes.values() if name == "sqlite")
        theirs = Counter(
            f"in {_module(item)}" for item, name in passes.items() if name == "postgresql"
        )
        dropped = [i for i in items if passes[i] == "postgresql"]
        lines = [
            f"left to the PostgreSQL pass: {sum(theirs.values())} tests marked "
            f"one_pass('postgresql') ({_counted(theirs)})",
            f"{sum(store.values()) - sum(mine.values())} store tests run again there (of "
            f"{sum(store.values())}, less {sum(mine.values())} marked one_pass('sqlite'))",
        ]
    else:
        dropped = []
        lines = [
            f"{sum(store.values())} of {len(items)} tests can depend on the configured store "
            f"({_counted(store)}); {STORE_ONLY} runs only those"
        ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(dropped)
        items[:] = [item for item in items if item not in gone]
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller prints
        workeroutput[_OUTPUT_KEY] = lines
    else:
        config.stash[_summary_key][:] = lines


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[_PROCESSES_KEY] = _started["dragon"]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    output = getattr(node, "workeroutput", {})
    if output.get(_OUTPUT_KEY):  # every worker collects the same tests; one summary for all
        node.config.stash[_summary_key][:] = output[_OUTPUT_KEY]
    _started["dragon"] += output.get(_PROCESSES_KEY, 0)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash[_summary_key]
    if lines:
        terminalreporter.write_sep("=", "store selection (docs/decisions/0019)")
        for line in lines:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"tests started {_started['dragon']} `dragon` processes")


def _refuse_undeclared_store(event: str, args: tuple[Any, ...]) -> None:
    """An audit hook: it sees every subprocess started and every SQLite file opened, on any
    thread, so the check holds however deep inside a fixture or a library the call is."""
    if event == "subprocess.Popen":
        executable, argv, _, env = args
        first = argv[0] if isinstance(argv, list | tuple) and argv else argv
        program = os.fsdecode(executable if executable is not None else first)
        if Path(program).name != "dragon":
            return
        if not _names_database(env):
            raise RuntimeError(
                "a test started `dragon` without DRAGON_DATABASE_URL: give it the "
                "`database_url` fixture's URL (a store test) or a store of its own"
            )
        _started["dragon"] += 1
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
