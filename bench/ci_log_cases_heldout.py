"""Held-out corpus cases: written after the analyzer's rules, and measured before any rule was
changed for them, so `make bench-triage` can report accuracy on logs the rules never saw.
Their names end in `_ho`."""

from __future__ import annotations

import json
from pathlib import Path

from bench.ci_log_cases import PY, Run, case, pytest_run, sh, write
from bench.ci_log_cases_env import PIP, local_index
from bench.ci_log_servers import npm_registry_responder, serve, status_responder


@case("test_failure", "pytest_class_ho", "pytest on a unittest-style class with a failing equality")
def _(work: Path) -> Run:
    return pytest_run(
        work,
        {
            "test_cart.py": """
                import unittest

                class CartTest(unittest.TestCase):
                    def test_discount(self):
                        self.assertEqual(round(100 * 0.85), 80)
            """,
        },
        "-q -rf",
    )


@case("test_failure", "node_deep_equal_ho", "node --test with assert.deepStrictEqual failing")
def _(work: Path) -> Run:
    write(
        work,
        {
            "parse.test.mjs": """
                import { test } from 'node:test';
                import assert from 'node:assert';
                test('parses pairs', () => {
                  assert.deepStrictEqual('a=1'.split('='), ['a', 1]);
                });
            """,
        },
    )
    return sh(work, "node --test", shown="npm test")


@case("compile_error", "gcc_implicit_ho", "gcc -Werror on an implicit function declaration")
def _(work: Path) -> Run:
    write(work, {"io.c": "int main(void) { return run_job(1); }\n"})
    return sh(work, "gcc -Werror -std=c11 -c io.c", shown="make")


@case("compile_error", "mypy_call_arg_ho", "mypy on a call with a missing argument")
def _(work: Path) -> Run:
    write(
        work, {"jobs.py": "def enqueue(name: str, *, priority: int) -> None: ...\n\nenqueue('x')\n"}
    )
    return sh(work, f"{PY} -m mypy --no-incremental jobs.py", shown="mypy .")


@case("lint_format", "ruff_line_length_ho", "ruff check --select E501 on a long line")
def _(work: Path) -> Run:
    write(work, {"report.py": "MESSAGE = '" + "x" * 120 + "'\n"})
    return sh(
        work,
        f"{PY} -m ruff check --no-cache --isolated --select E501 report.py",
        shown="ruff check .",
    )


@case("lint_format", "ruff_format_one_ho", "ruff format --check on one file needing a change")
def _(work: Path) -> Run:
    write(work, {"tasks.py": "def run(a,b):\n    return {'a':a,'b':b}\n"})
    return sh(
        work,
        f"{PY} -m ruff format --no-cache --isolated --check tasks.py",
        shown="ruff format --check tasks.py",
    )


@case("dependency_resolution", "npm_etarget_ho", "npm install of a version a local registry lacks")
def _(work: Path) -> Run:
    registry = {
        "left-pad": {
            "name": "left-pad",
            "dist-tags": {"latest": "1.3.0"},
            "versions": {
                "1.3.0": {
                    "name": "left-pad",
                    "version": "1.3.0",
                    "dist": {"tarball": "http://127.0.0.1/x.tgz"},
                }
            },
        }
    }
    with serve(npm_registry_responder(registry)) as port:
        write(
            work,
            {
                "package.json": json.dumps(
                    {"name": "w", "version": "1.0.0", "dependencies": {"left-pad": "^2.0.0"}}
                )
            },
        )
        return sh(
            work,
            f"npm install --no-audit --fetch-retries=0 --registry http://127.0.0.1:{port}/ --cache {work}/.npm",
            shown="npm install",
        )


@case("dependency_resolution", "pip_extra_conflict_ho", "pip install of a requirement pinned twice")
def _(work: Path) -> Run:
    wheels = local_index(work)
    write(work, {"requirements.txt": "acme_core==1.0.0\n", "constraints.txt": "acme_core==2.0.0\n"})
    return sh(
        work,
        f"{PIP} install --dry-run --ignore-installed --no-index --find-links {wheels} -r requirements.txt -c constraints.txt",
        shown="pip install -r requirements.txt -c constraints.txt",
    )


@case(
    "flaky_infrastructure",
    "python_urlerror_ho",
    "urllib fetching from a host that does not resolve",
)
def _(work: Path) -> Run:
    write(
        work,
        {
            "fetch.py": "import urllib.request\nurllib.request.urlopen('http://mirror.pkgs.invalid/index.json', timeout=5)\n"
        },
    )
    return sh(work, f"{PY} fetch.py", shown="python tools/fetch_index.py")


@case("flaky_infrastructure", "git_fetch_503_ho", "git clone from a local server answering 503")
def _(work: Path) -> Run:
    with serve(status_responder(503)) as port:
        return sh(
            work,
            f"git clone http://127.0.0.1:{port}/acme/app.git",
            shown="git clone $REPO_URL",
            env={"GIT_TERMINAL_PROMPT": "0"},
        )


@case("resource_exhaustion", "file_size_limit_ho", "python writing past ulimit -f")
def _(work: Path) -> Run:
    write(
        work,
        {
            "dump.py": "import signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\nwith open('dump.bin', 'wb') as f:\n    f.write(b'x' * 4_000_000)\n"
        },
    )
    return sh(work, f"ulimit -f 1000; {PY} dump.py", shown="python dump_db.py")


@case(
    "missing_permission",
    "git_push_http_403_ho",
    "git push over HTTP to a local server answering 403",
)
def _(work: Path) -> Run:
    with serve(status_responder(403)) as port:
        script = (
            "git init -q -b main app && cd app && git config user.email ci@example.com && "
            "git config user.name ci && echo x > f && git add f && git commit -qm x && "
            f"git push http://127.0.0.1:{port}/acme/app.git main"
        )
        return sh(work, script, shown="git push origin main", env={"GIT_TERMINAL_PROMPT": "0"})


@case(
    "configuration_error",
    "json_config_ho",
    "python json.load on a config file with a trailing comma",
)
def _(work: Path) -> Run:
    write(
        work,
        {
            "settings.json": '{"replicas": 3, "image": "acme/web",}\n',
            "load.py": "import json\njson.load(open('settings.json'))\n",
        },
    )
    return sh(work, f"{PY} load.py", shown="python -m deploy.check settings.json")


@case("unknown", "assertion_script_ho", "a release script failing a bare assert")
def _(work: Path) -> Run:
    write(work, {"release.py": "artifacts = []\nassert artifacts, 'no artifacts to release'\n"})
    return sh(work, f"{PY} release.py", shown="python release.py")


@case("unknown", "exit_3_ho", "a shell step printing an error word and exiting 3")
def _(work: Path) -> Run:
    return sh(
        work, "echo 'Error: step returned an unexpected value'; exit 3", shown="./ci/verify.sh"
    )
