"""metadata_condition worst cases: how long the evaluator takes to refuse each one.

    .venv/bin/python bench/bench_condition.py

Each line: seconds for one image, the condition, how it ended. Every operation is
charged what it handles (MAX_SIZE) and nodes are counted (MAX_STEPS), so each of these
is refused well under a second; before that, some ran for minutes. Prints figures;
asserts nothing (timings are noisy on a shared machine).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from glancesync.condition import Condition, ConditionError  # noqa: E402
from glancesync.image import Image  # noqa: E402

CASES = [
    "round(5, -10**9) == 0",
    "[b*b for b in [a*a for a in [c*c for c in [d*d for d in [7**400]]]]]",
    "[a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a for a in [7**300]]",
    "[x in L for L in [[0] * 150000] for x in 'a' * 90000]",
    "[s.count('b') for s in ['a' * 100000] for i in 'a' * 90000]",
    "[s[1:] for s in ['a' * 100000] for i in 'a' * 90000]",
    "sorted('qwertyuiopasdfghjklzxcvbnm' * 7000)",
    "sorted([9 ** 1000] * 300000, key=str)",
    "[str(L) for L in [[0] * 100] for i in 'a' * 9000]",
    "[{t} for t in [(0,) * 100000] for i in 'a' * 1000]",
    "[a // b for a in [2**4000] for b in [3**2000] for i in 'a' * 9000]",
    "[s.split() for s in [' a' * 90000] for i in 'a' * 9000]",
    "[(a, a) < (a, a) for a in [[0] * 150000] for i in 'a' * 9000]",
    "[1 for a in 'a' * 300 for b in 'b' * 300]",
    "[d.copy() for d in [image.user_properties] for i in 'a' * 90000]",
    "[a * 1.5 for a in [7**300] for i in 'a' * 90000]",
    "any(k.startswith('ni') for k in image.user_properties)",  # an ordinary one
]


def main() -> None:
    image = Image(
        id="1", name="n", region="r", owner="o", checksum="c", size=123,
        properties={f"p{i}": "x" * 100 for i in range(200)} | {"nid": "23"},
    )
    worst = 0.0
    for source in CASES:
        condition = Condition(source)
        start = time.perf_counter()
        try:
            condition.evaluate(image, frozenset())
            outcome = "evaluated"
        except ConditionError as exc:
            outcome = str(exc).rsplit(": ", 1)[-1]
        elapsed = time.perf_counter() - start
        worst = max(worst, elapsed)
        print(f"{elapsed:7.3f} s  {source[:64]:64}  {outcome[:60]}")
    print(f"worst: {worst:.3f} s per image")


if __name__ == "__main__":
    main()
