"""Accuracy of the built-in analyzer on the labelled CI log corpus (tests/fixtures/ci_logs).

    make bench-triage

Prints accuracy per class and overall, the confusion of every miss, and the time per log.
The floor the project holds itself to: 90% overall, no class below 75%.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

from dragon.domain.triage import classify

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "ci_logs"
OVERALL_FLOOR = 0.90
CLASS_FLOOR = 0.75


def corpus() -> list[tuple[str, Path]]:
    return sorted((p.parent.name, p) for p in CORPUS.glob("*/*.log"))


def main() -> int:
    logs = corpus()
    totals: Counter[str] = Counter()
    right: Counter[str] = Counter()
    misses: list[str] = []
    started = time.perf_counter()
    for label, path in logs:
        got = classify(path.read_text(errors="replace"))
        totals[label] += 1
        if got.failure_class.value == label:
            right[label] += 1
        else:
            misses.append(
                f"  {path.relative_to(CORPUS)}: expected {label}, got "
                f"{got.failure_class.value} ({got.confidence:.2f})"
            )
    elapsed = time.perf_counter() - started
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'class':24} {'logs':>5} {'right':>6} {'accuracy':>9}")
    worst = 1.0
    for label in sorted(totals):
        accuracy = right[label] / totals[label]
        worst = min(worst, accuracy)
        print(f"{label:24} {totals[label]:5} {right[label]:6} {accuracy:9.1%}")
    overall = sum(right.values()) / max(1, sum(totals.values()))
    print(f"{'overall':24} {sum(totals.values()):5} {sum(right.values()):6} {overall:9.1%}")
    held = [(label, p) for label, p in logs if p.stem.endswith("_ho")]
    held_right = sum(1 for label, p in held if classify(p.read_text()).failure_class == label)
    print(
        f"held-out subset (*_ho, written after the rules): {held_right}/{len(held)}"
        f" = {held_right / max(1, len(held)):.1%}"
    )
    print(f"time: {elapsed * 1000 / max(1, len(logs)):.2f} ms per log ({len(logs)} logs)")
    if misses:
        print("misses:")
        print("\n".join(misses))
    ok = overall >= OVERALL_FLOOR and worst >= CLASS_FLOOR
    print(
        f"floor (overall >= {OVERALL_FLOOR:.0%}, every class >= {CLASS_FLOOR:.0%}): "
        f"{'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
