"""The advice's confusion table on the simulation grid (tests/advice_grid.py), over seeds.

    python benchmarks/advice_confusion.py [--seeds 5] [--max-n 1000000]

Prints, per distribution and N, how often each loss was recommended, and marks cells
outside the accepted families. tests/test_advice.py asserts seed 0 of the same grid.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.advice_grid import GRID, SIZES, accepted

from regloss.diagnostics import diagnose


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--max-n", type=int, default=1_000_000)
    args = ap.parse_args()
    sizes = [n for n in SIZES if n <= args.max_n]
    print("| noise | " + " | ".join(f"N={n:,}" for n in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    wrong = total = 0
    for name, (draw, _, _) in GRID.items():
        cells = []
        for n in sizes:
            counts: Counter[str] = Counter()
            for seed in range(args.seeds):
                e = draw(np.random.default_rng(seed), n)
                rec = diagnose(e, np.zeros(n))["outputs"][0]["recommendation"]["loss"]
                counts[rec] += 1
            bad = sum(v for k, v in counts.items() if k not in accepted(name, n))
            wrong += bad
            total += args.seeds
            cell = " ".join(f"{k} {v}" for k, v in counts.most_common())
            cells.append(cell + (f" (**{bad} off**)" if bad else ""))
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\n{total - wrong} of {total} recommendations in the accepted families")


if __name__ == "__main__":
    main()
