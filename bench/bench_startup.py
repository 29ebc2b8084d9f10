"""What a `dragon` process spends before its command runs: the CPU seconds (user + system) of
importing what each kind of process imports, each in a fresh interpreter.

    .venv/bin/python bench/bench_startup.py [--runs 7]

Prints, per process kind, the fastest and the median of the runs: on a shared machine the
fastest says most about the code, the median about what a busy host sees.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

# What each process imports before it does anything.
KINDS = {
    "a CLI command (keys, audit, deliveries ...)": "import dragon.cli",
    "`dragon worker`": "import dragon.cli, dragon.cli.worker",
    "a server process (`dragon serve`)": "import dragon.cli, dragon.cli.served_app",
    "the ASGI app alone": "import dragon.app",
}


def cpu_seconds(statement: str) -> float:
    before = os.times()
    subprocess.run([sys.executable, "-c", statement], check=True)
    after = os.times()
    return (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {args.runs} runs each")
    for kind, statement in KINDS.items():
        samples = [cpu_seconds(statement) for _ in range(args.runs)]
        print(
            f"{kind:45} fastest {min(samples):.2f} s CPU, median {statistics.median(samples):.2f} s"
        )
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
