"""Regenerate the labelled CI log corpus in tests/fixtures/ci_logs/ by running real tools.

    .venv/bin/python -m bench.generate_ci_logs

Each case (bench/ci_log_cases*.py) makes a small project in a temporary directory and runs a
real tool on it (pytest, ruff, mypy, gcc, pip, npm, git, curl, ...). The tool's own output is
kept as printed; it is then framed the way a CI runner frames a job log (GitHub Actions,
GitLab CI or Jenkins, in turn), and machine paths are replaced by neutral ones.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import tempfile
from pathlib import Path

from bench import ci_log_cases_env, ci_log_cases_heldout  # noqa: F401 - register their cases
from bench.ci_log_cases import CASES, Case, Run

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fixtures" / "ci_logs"
WORKSPACE = "/builds/acme/app"
START = dt.datetime(2026, 11, 30, 9, 0, 0, tzinfo=dt.UTC)


def sanitize(text: str, work: Path) -> str:
    replacements = [
        (str(work.resolve()), WORKSPACE),
        (str(work), WORKSPACE),
        (sys.prefix, "/opt/venv"),
        (sys.base_prefix, "/usr/local"),
        (str(ROOT), "/opt/dragon"),
        (str(Path.home()), "/home/runner"),
        (tempfile.gettempdir(), "/tmp"),  # noqa: S108 - a name in a log, not a file we open
    ]
    for old, new in replacements:
        text = text.replace(old, new)
    text = re.sub(r"/opt/venv/lib/python3\.\d+", "/opt/venv/lib/python3", text)
    return re.sub(r"\x1b\[[0-9;]*m", "", text)  # colour codes some tools print regardless


def frame_github(run: Run, index: int) -> str:
    stamp = START + dt.timedelta(minutes=index)
    lines = [
        "##[group]Run actions/checkout@v4",
        "Syncing repository: acme/app",
        "##[endgroup]",
        f"##[group]Run {run.command}",
        run.command,
        "shell: /usr/bin/bash -e {0}",
        "##[endgroup]",
        *run.output.splitlines(),
        f"##[error]Process completed with exit code {run.exit_code}.",
    ]
    out = []
    for n, line in enumerate(lines):
        moment = stamp + dt.timedelta(milliseconds=37 * n)
        out.append(f"{moment.strftime('%Y-%m-%dT%H:%M:%S.%f')}0Z {line}")
    return "\n".join(out) + "\n"


def frame_gitlab(run: Run, index: int) -> str:
    lines = [
        "Running with gitlab-runner 17.5.0 (c6a2ca3f)",
        "  on shared-docker-1 t3_Hk9xQ, system ID: s_5c1d0b2a9f3e",
        'Preparing the "docker" executor',
        "Using Docker executor with image python:3.11 ...",
        "Getting source from Git repository",
        "Fetching changes with git depth set to 20...",
        "Checking out 9f2c1e7a as detached HEAD (ref is main)...",
        'Executing "step_script" stage of the job script',
        f"$ {run.command}",
        *run.output.splitlines(),
        "Cleaning up project directory and file based variables",
        f"ERROR: Job failed: exit code {run.exit_code}",
    ]
    return "\n".join(lines) + "\n"


def frame_jenkins(run: Run, index: int) -> str:
    lines = [
        "Started by an SCM change",
        "Running as SYSTEM",
        "Building in workspace /var/jenkins_home/workspace/app",
        "The recommended git tool is: NONE",
        " > git rev-parse --resolve-git-dir /var/jenkins_home/workspace/app/.git # timeout=10",
        "[app] $ /bin/sh -xe /tmp/jenkins8417734563.sh",
        f"+ {run.command}",
        *run.output.splitlines(),
        "Build step 'Execute shell' marked build as failure",
        "Finished: FAILURE",
    ]
    return "\n".join(lines) + "\n"


SOURCES_HEADER = """\
# The labelled CI log corpus

Every log here was produced by running a real tool on this machine, on a small project made for
the case in a temporary directory: pytest, python -m unittest, node --test, gcc, g++, mypy,
python -m compileall, node --check, ruff check / ruff format, git, pip (against local wheel
directories and local HTTP servers), npm (against a local registry server, or --offline), curl,
dd, make, PyYAML and `dragon policy check`. Network peers are local: servers on 127.0.0.1
that answer 401/403/429/503, cut a transfer short, or never answer; closed ports; and host
names under `.invalid`, which never resolve. Resource limits come from `ulimit` / `prlimit`
and `/dev/full`.

The directory is the label (the classes of issue 4). The tool's output is kept as printed;
it is then framed the way a CI runner frames a job log (GitHub Actions with timestamps, GitLab
CI, Jenkins, in turn) and machine paths are replaced by neutral ones (`/builds/acme/app`,
`/opt/venv`). The frames are Dragon's own imitation of those runners' layout, not copies.

Logs named `*_ho` are held out: their cases (bench/ci_log_cases_heldout.py) were written after
the analyzer's rules, and measured before any rule changed: 13 of 15 right at first; one rule
was widened afterwards (`returned error: 503` is a server error), so `make bench-triage`'s
held-out line now overstates by that one log.

Regenerate with `.venv/bin/python -m bench.generate_ci_logs` (or name cases or classes to
regenerate only those); `make bench-triage` measures the built-in analyzer on it.

"""

FRAMES = (("github", frame_github), ("gitlab", frame_gitlab), ("jenkins", frame_jenkins))


def generate(selected: list[Case]) -> list[str]:
    notes: list[str] = []
    for item in selected:
        index = CASES.index(item)  # the same case is always framed the same way
        with tempfile.TemporaryDirectory(prefix="dragon-ci-") as tmp:
            work = Path(tmp)
            run = item.produce(work)
            run = Run(run.command, sanitize(run.output, work), run.exit_code)
        vendor, frame = FRAMES[index % len(FRAMES)]
        target = CORPUS / item.label / f"{item.name}.log"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(frame(run, index))
        notes.append(
            f"| `{item.label}/{item.name}.log` | {item.how} | {vendor} | {run.exit_code} |"
        )
        print(f"{item.label:24} {item.name:28} exit {run.exit_code:>3}  ({vendor})")
    return notes


def main() -> None:
    wanted = set(sys.argv[1:])
    selected = [c for c in CASES if not wanted or c.name in wanted or c.label in wanted]
    notes = generate(selected)
    if not wanted:
        table = "| log | produced by | framed as | exit |\n|---|---|---|---|\n" + "\n".join(notes)
        (CORPUS / "SOURCES.md").write_text(SOURCES_HEADER + table + "\n")


if __name__ == "__main__":
    main()
