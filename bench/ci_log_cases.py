"""The cases of the labelled CI log corpus: each runs a real tool on a small project made on
the spot and returns what the tool printed. bench/generate_ci_logs.py runs them all."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PY = sys.executable


@dataclass(frozen=True)
class Run:
    command: str  # what the CI job's script line says
    output: str
    exit_code: int


@dataclass(frozen=True)
class Case:
    label: str
    name: str
    how: str  # one line for SOURCES.md
    produce: Callable[[Path], Run]


CASES: list[Case] = []


def case(
    label: str, name: str, how: str
) -> Callable[[Callable[[Path], Run]], Callable[[Path], Run]]:
    def register(produce: Callable[[Path], Run]) -> Callable[[Path], Run]:
        CASES.append(Case(label, name, how, produce))
        return produce

    return register


def sh(
    work: Path, script: str, *, shown: str, env: dict[str, str] | None = None, timeout: int = 120
) -> Run:
    """Run `script` in bash in `work`; stdout and stderr interleaved as a CI runner shows them."""
    full_env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "PYTHONDONTWRITEBYTECODE": "1"}
    full_env.pop("FORCE_COLOR", None)
    full_env.update(env or {})
    done = subprocess.run(
        ["/bin/bash", "-c", script],
        cwd=work,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    # A signal death reads as the shell reports it: 128 + the signal's number.
    code = done.returncode if done.returncode >= 0 else 128 - done.returncode
    return Run(command=shown, output=done.stdout, exit_code=code)


def write(work: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


def pytest_run(work: Path, files: dict[str, str], args: str = "-q") -> Run:
    write(work, files)
    return sh(work, f"{PY} -m pytest {args} -p no:cacheprovider", shown=f"pytest {args}")


# --- test failures ------------------------------------------------------------------------


@case("test_failure", "pytest_assertion", "pytest on a test whose assertion is false")
def _(work: Path) -> Run:
    return pytest_run(
        work,
        {
            "pricing.py": "def total(items):\n    return sum(items) - 1\n",
            "test_pricing.py": """
                from pricing import total

                def test_total_adds_items():
                    assert total([1, 2, 3]) == 6

                def test_total_empty():
                    assert total([]) == 0
            """,
        },
    )


@case("test_failure", "pytest_exception", "pytest on a test that raises KeyError")
def _(work: Path) -> Run:
    return pytest_run(
        work,
        {
            "config_loader.py": "def port(cfg):\n    return int(cfg['http']['port'])\n",
            "test_config_loader.py": """
                from config_loader import port

                def test_port_defaults():
                    assert port({"http": {}}) == 8080
            """,
        },
        "-q --tb=short",
    )


@case("test_failure", "pytest_parametrize", "pytest with failing parametrized cases, -v")
def _(work: Path) -> Run:
    return pytest_run(
        work,
        {
            "slug.py": "def slugify(s):\n    return s.lower().replace(' ', '-')\n",
            "test_slug.py": """
                import pytest
                from slug import slugify

                @pytest.mark.parametrize("raw,expected", [
                    ("Hello World", "hello-world"),
                    ("  padded  ", "padded"),
                    ("Déjà vu", "deja-vu"),
                ])
                def test_slugify(raw, expected):
                    assert slugify(raw) == expected
            """,
        },
        "-v",
    )


@case("test_failure", "pytest_fixture_error", "pytest where a fixture fails at setup")
def _(work: Path) -> Run:
    return pytest_run(
        work,
        {
            "test_orders.py": """
                import pytest

                @pytest.fixture
                def order():
                    raise ValueError("fixture could not build an order: missing sku")

                def test_order_total(order):
                    assert order.total == 10

                def test_unrelated():
                    assert 1 + 1 == 2
            """,
        },
    )


@case("test_failure", "unittest_failure", "python -m unittest with a failing test case")
def _(work: Path) -> Run:
    write(
        work,
        {
            "test_queue.py": """
                import unittest

                class QueueTest(unittest.TestCase):
                    def test_fifo(self):
                        items = [3, 2, 1]
                        self.assertEqual(items.pop(), 3)

                    def test_len(self):
                        self.assertEqual(len([1, 2]), 2)

                if __name__ == "__main__":
                    unittest.main()
            """,
        },
    )
    return sh(work, f"{PY} -m unittest -v", shown="python -m unittest -v")


@case("test_failure", "node_test_runner", "node --test with a failing assert.strictEqual")
def _(work: Path) -> Run:
    write(
        work,
        {
            "sum.test.mjs": """
                import { test } from 'node:test';
                import assert from 'node:assert';

                const sum = (a, b) => a + b + 1;

                test('sum adds two numbers', () => {
                  assert.strictEqual(sum(2, 2), 4);
                });
                test('sum of zeros', () => {
                  assert.strictEqual(sum(0, 0), 1);
                });
            """,
        },
    )
    return sh(work, "node --test --test-reporter=spec", shown="npm test")


@case("test_failure", "pytest_hypothesis", "pytest with a hypothesis property that fails")
def _(work: Path) -> Run:
    return pytest_run(
        work,
        {
            "test_roundtrip.py": """
                from hypothesis import given, settings, strategies as st

                def encode(xs):
                    return ",".join(str(x) for x in xs)

                def decode(s):
                    return [int(x) for x in s.split(",")]

                @settings(database=None, derandomize=True)
                @given(st.lists(st.integers()))
                def test_roundtrip(xs):
                    assert decode(encode(xs)) == xs
            """,
        },
        "-q --tb=line",
    )


# --- compile and type errors --------------------------------------------------------------


@case("compile_error", "gcc_syntax", "gcc on a C file missing a semicolon")
def _(work: Path) -> Run:
    write(
        work,
        {"main.c": '#include <stdio.h>\nint main(void) {\n  printf("hi\\n")\n  return 0;\n}\n'},
    )
    return sh(work, "gcc -Wall -c main.c -o main.o", shown="make")


@case("compile_error", "gcc_undeclared", "gcc on a C file using an undeclared identifier")
def _(work: Path) -> Run:
    write(
        work,
        {
            "Makefile": "all: app\napp: util.c\n\tgcc -Wall -Werror -o app util.c\n",
            "util.c": "int count(int n) {\n  int total = 0;\n  for (i = 0; i < n; i++) total += i;\n"
            "  return total;\n}\nint main(void) { return count(3); }\n",
        },
    )
    return sh(work, "make", shown="make")


@case("compile_error", "gcc_link", "gcc linking a program that calls an undefined function")
def _(work: Path) -> Run:
    write(
        work, {"app.c": 'int checksum(const char *);\nint main(void) { return checksum("x"); }\n'}
    )
    return sh(work, "gcc -o app app.c", shown="gcc -o app app.c")


@case("compile_error", "gpp_type", "g++ on a C++ file assigning a string to an int")
def _(work: Path) -> Run:
    write(
        work,
        {
            "render.cpp": '#include <string>\nint width() {\n  std::string w = "80";\n'
            "  int n = w;\n  return n;\n}\n"
        },
    )
    return sh(work, "g++ -std=c++17 -c render.cpp", shown="cmake --build build")


@case("compile_error", "mypy_incompatible", "mypy --strict on a function returning the wrong type")
def _(work: Path) -> Run:
    write(
        work,
        {
            "billing.py": """
                def cents(amount: float) -> int:
                    return amount * 100

                def label(n: int) -> str:
                    return n
            """,
        },
    )
    return sh(work, f"{PY} -m mypy --strict --no-incremental billing.py", shown="mypy --strict .")


@case("compile_error", "mypy_attr", "mypy on code calling a missing attribute and bad argument")
def _(work: Path) -> Run:
    write(
        work,
        {
            "users.py": """
                from dataclasses import dataclass

                @dataclass
                class User:
                    name: str
                    age: int

                def greet(user: User) -> str:
                    return "hi " + user.full_name

                greet(User(name="ada", age="36"))
            """,
        },
    )
    return sh(work, f"{PY} -m mypy --no-incremental users.py", shown="mypy src")


@case("compile_error", "python_syntax", "python -m compileall on a file with a syntax error")
def _(work: Path) -> Run:
    write(work, {"pkg/__init__.py": "", "pkg/jobs.py": "def run(:\n    return 1\n"})
    return sh(work, f"{PY} -m compileall -q pkg", shown="python -m compileall -q pkg")


@case("compile_error", "node_syntax", "node --check on a script with a syntax error")
def _(work: Path) -> Run:
    write(work, {"build.js": "const items = [1, 2, 3;\nconsole.log(items);\n"})
    return sh(work, "node --check build.js", shown="node --check build.js")


# --- lint and format ----------------------------------------------------------------------


@case("lint_format", "ruff_unused_import", "ruff check on a module with unused imports")
def _(work: Path) -> Run:
    write(work, {"app.py": "import os\nimport sys\n\n\ndef main():\n    return 1\n"})
    return sh(work, f"{PY} -m ruff check --no-cache --isolated app.py", shown="ruff check .")


@case("lint_format", "ruff_many_rules", "ruff check with pyflakes and pycodestyle findings")
def _(work: Path) -> Run:
    write(
        work,
        {
            "service.py": """
                def handle(event):
                    result = None
                    if event == None:
                        return
                    unused = 42
                    l = [x for x in range(3)]
                    return l
            """,
        },
    )
    return sh(
        work,
        f"{PY} -m ruff check --no-cache --isolated --select E,F,W service.py",
        shown="ruff check --select E,F,W .",
    )


@case("lint_format", "ruff_format_check", "ruff format --check on badly formatted files")
def _(work: Path) -> Run:
    write(
        work,
        {
            "a.py": "x = {  'a':1,'b' :2 }\ndef f( y ):\n  return y\n",
            "b.py": "print( 'hi' )\n",
            "c.py": "ok = 1\n",
        },
    )
    return sh(
        work, f"{PY} -m ruff format --no-cache --isolated --check .", shown="ruff format --check ."
    )


@case("lint_format", "ruff_format_diff", "ruff format --diff showing the change it wants")
def _(work: Path) -> Run:
    write(work, {"models.py": "class A :\n    def m(self,x ,y):\n        return (x+\n    y)\n"})
    return sh(
        work, f"{PY} -m ruff format --no-cache --isolated --diff .", shown="ruff format --diff ."
    )


@case("lint_format", "ruff_isort", "ruff check --select I on unsorted imports")
def _(work: Path) -> Run:
    write(work, {"cli.py": "import sys\nimport json\nimport os\n\nprint(json, os, sys)\n"})
    return sh(
        work,
        f"{PY} -m ruff check --no-cache --isolated --select I --output-format=full cli.py",
        shown="ruff check --select I .",
    )


@case("lint_format", "git_diff_check", "git diff --check on a change with trailing whitespace")
def _(work: Path) -> Run:
    script = (
        "git init -q . && git config user.email ci@example.com && git config user.name ci && "
        "printf 'a\\n' > notes.md && git add notes.md && git commit -qm init && "
        "printf 'a   \\nb\\t\\n\\n' > notes.md && git diff --check"
    )
    return sh(work, script, shown="git diff --check")


@case("lint_format", "ruff_github_format", "ruff check --output-format=github annotations")
def _(work: Path) -> Run:
    write(
        work,
        {
            "api.py": "from typing import List\n\ndef names(xs: List[str]):\n    return [x for x in xs]\n"
        },
    )
    return sh(
        work,
        f"{PY} -m ruff check --no-cache --isolated --select F,UP,C4 --target-version py311 "
        "--output-format=github api.py",
        shown="ruff check --output-format=github .",
    )
