"""Forward+backward time of regloss.torch against PyTorch, as ratio tables (issue 9).

Run on demand (``python benchmarks/bench_losses.py [--quick]``); not part of the test
suite. One training step is ``x.grad = None; f(x, y).backward()`` with only the prediction
requiring a gradient. The contenders of each cell alternate in rounds inside one process
(``regloss._bench.alternate``) and each time is a median, so drift in the machine's speed
hits both alike. ratio = regloss / peer: below 1 means regloss is faster.

Sections:

* ``peers``: the losses PyTorch has (mse, l1, huber, smooth_l1, gaussian_nll) against
  ``torch.nn.functional`` at N = 3 ... 2^24, float32 and float64, 'mean' and 'sum', with
  and without ``weight=`` (PyTorch's own weighted forms where it has them, else the
  composition a user writes: ``(f(..., reduction='none') * w).sum() / w.sum()``);
* ``robust``: every registered loss at N >= 2^20 against torch's ``mse_loss`` (goal: within
  2x) and against the same formula composed by hand from torch operations
  (``benchmarks/hand.py``; goal: at least 2x faster).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hand
import regloss
from regloss._bench import (
    Cell,
    alternate,
    fmt_seconds,
    prepare_kernels,
    size_label,
    torch_cells,
    torch_peers,
    torch_step,
)
from regloss.torch import functional as RF

SIZES = [3, 2**10, 2**12, 2**16, 2**20, 2**22, 2**24]


PAIRS, EXTRAS = torch_peers()


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def peers(sizes: list[int], quick: bool) -> list[Cell]:
    dtypes = [torch.float32] if quick else [torch.float32, torch.float64]
    reductions = ["mean"] if quick else ["mean", "sum"]
    print(_row(["loss", "N", "dtype", "reduction", "weight", "regloss", "torch", "ratio"]))
    print(_row(["---"] * 8))

    def show(c: Cell) -> None:
        s = c.seconds
        print(
            _row(
                [
                    *c.labels.values(),
                    fmt_seconds(s["regloss"]),
                    fmt_seconds(s["torch"]),
                    f"{c.ratio():.2f}",
                ]
            ),
            flush=True,
        )

    cells = torch_cells(
        PAIRS,
        sizes,
        dtypes=dtypes,
        reductions=reductions,
        weighted=[False, True],
        seconds=0.3 if quick else 0.6,
        extras=EXTRAS,
        progress=show,
    )
    big = [c for c in cells if c.labels["N"] in {size_label(n) for n in sizes if n >= 2**16}]
    print(
        f"\nworst ratio, all N: {max(c.ratio() for c in cells):.2f}; from 2^16: "
        f"{max((c.ratio() for c in big), default=float('nan')):.2f}; cells over 1.10: "
        f"{sum(c.ratio() > 1.10 for c in cells)} of {len(cells)}; cells from 2^16 over 1.00: "
        f"{sum(c.ratio() > 1.0 for c in big)} of {len(big)}"
    )
    return cells


def _check_hand(name: str, ours: Callable[..., Any], theirs: Callable[..., Any]) -> None:
    x = torch.linspace(-9, 9, 101, dtype=torch.float64)
    y = torch.zeros_like(x)
    a, b = ours(x, y), theirs(x, y)
    if not torch.allclose(a, b, rtol=1e-6):
        raise SystemExit(f"hand-written {name} differs from regloss's: {a.item()} vs {b.item()}")


#: every registered loss at its defaults, and Barron at shapes its closed forms (1, 0, -2, 2,
#: ±inf) do not cover: the general formula, three transcendental calls per element
ROBUST_ROWS: list[tuple[str, dict[str, float]]] = [
    *((name, {}) for name in regloss.available_losses()),
    ("barron", {"alpha": 0.5}),
    ("barron", {"alpha": -1.0}),
]


def robust(sizes: list[int], quick: bool) -> None:
    print(
        _row(["loss", "N", "regloss", "torch mse_loss", "regloss / mse", "hand", "hand / regloss"])
    )
    print(_row(["---"] * 7))
    for name, params in ROBUST_ROWS:
        ours = functools.partial(getattr(RF, f"{name}_loss"), **params)
        by_hand = hand.loss(name, **params)
        _check_hand(name, ours, by_hand)
        if params:
            name += "(" + ", ".join(f"{k}={v:g}" for k, v in params.items()) + ")"
        for n in sizes:
            gen = torch.Generator().manual_seed(n)
            x = torch.randn(n, generator=gen).requires_grad_()
            y = torch.randn(n, generator=gen)

            steps = [torch_step(f, x, (y,), {}) for f in (ours, F.mse_loss, by_hand)]
            t_ours, t_mse, t_hand = alternate(steps, seconds=0.5 if quick else 1.5)
            print(
                _row(
                    [
                        name,
                        size_label(n),
                        fmt_seconds(t_ours),
                        fmt_seconds(t_mse),
                        f"{t_ours / t_mse:.2f}",
                        fmt_seconds(t_hand),
                        f"{t_hand / t_ours:.2f}",
                    ]
                ),
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cells and repetitions")
    parser.add_argument("--section", choices=["peers", "robust", "all"], default="all")
    parser.add_argument("--max-log2", type=int, default=24, help="largest N = 2**this")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [n for n in SIZES if n <= 2**args.max_log2]
    if args.quick:
        sizes = [n for n in sizes if n in (3, 2**12, 2**16, 2**20)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, forward+backward")
    built = prepare_kernels(("float32", "float64"))
    print(
        f"generated kernels ready: {len(built)} (build or load, slowest "
        f"{max(built.values(), default=0.0):.2f} s)\n"
    )
    if args.section in ("peers", "all"):
        peers(sizes, args.quick)
    if args.section in ("robust", "all"):
        print()
        robust([n for n in sizes if n >= 2**20] or [2**20], args.quick)


if __name__ == "__main__":
    main()
