"""Forward+backward time of regloss.torch against torch.nn.functional, as a ratio table.

Run on demand (``make bench`` or ``python benchmarks/bench_losses.py``); not part of the
test suite. For each loss and size N (float32, reduction='mean', only the prediction
requires a gradient) one training step is ``x.grad = None; f(x, y).backward()``. The two
implementations alternate in rounds inside one process so drift in the machine's speed
hits both alike; each cell is the median over all repetitions. ratio = regloss / torch
(below 1 means regloss is faster).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from regloss.torch import functional as RF

PAIRS: dict[str, tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]] = {
    "mse": (RF.mse_loss, F.mse_loss),
    "mae (l1)": (RF.l1_loss, F.l1_loss),
    "huber": (RF.huber_loss, F.huber_loss),
    "smooth_l1": (RF.smooth_l1_loss, F.smooth_l1_loss),
}
SIZES = [3, 2**10, 2**16, 2**20, 2**24]


def _step(f: Callable[..., torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> float:
    t0 = time.perf_counter()
    x.grad = None
    f(x, y).backward()
    return time.perf_counter() - t0


def _budget(n: int, quick: bool) -> tuple[int, int]:
    """(rounds, repetitions per round) for size n."""
    if n <= 2**10:
        rounds, reps = 20, 200
    elif n <= 2**16:
        rounds, reps = 20, 50
    elif n <= 2**20:
        rounds, reps = 20, 10
    else:
        rounds, reps = 10, 2
    return (max(2, rounds // 4), reps) if quick else (rounds, reps)


def measure(
    n: int, ours: Callable[..., torch.Tensor], peer: Callable[..., torch.Tensor], quick: bool
) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(n)
    x = torch.randn(n, generator=gen, requires_grad=True)
    y = torch.randn(n, generator=gen)
    for f in (ours, peer):  # warm-up
        for _ in range(3):
            _step(f, x, y)
    times: dict[int, list[float]] = {0: [], 1: []}
    rounds, reps = _budget(n, quick)
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for i in order:
            f = (ours, peer)[i]
            times[i].extend(_step(f, x, y) for _ in range(reps))
    return statistics.median(times[0]), statistics.median(times[1])


def _fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} us"
    return f"{seconds * 1e3:8.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--loss", action="append", choices=list(PAIRS), help="only these")
    parser.add_argument("--max-log2", type=int, default=24, help="largest N = 2**this")
    args = parser.parse_args()
    sizes = [n for n in SIZES if n <= 2**args.max_log2]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, "
        "reduction='mean', forward+backward"
    )
    print(f"| {'loss':<10} | {'N':>8} | {'regloss':>11} | {'torch':>11} | ratio |")
    print(f"|{'-' * 12}|{'-' * 10}|{'-' * 13}|{'-' * 13}|-------|")
    worst = 0.0
    for name in args.loss or list(PAIRS):
        ours, peer = PAIRS[name]
        for n in sizes:
            a, b = measure(n, ours, peer, args.quick)
            worst = max(worst, a / b)
            label = f"2^{n.bit_length() - 1}" if n > 3 else str(n)
            print(f"| {name:<10} | {label:>8} | {_fmt(a)} | {_fmt(b)} | {a / b:5.2f} |", flush=True)
    print(f"worst ratio: {worst:.2f}")


if __name__ == "__main__":
    main()
