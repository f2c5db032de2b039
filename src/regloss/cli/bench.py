"""``regloss bench``: a short speed check on the user's own machine (about half a minute).

Ratios, not absolute times: each comparison alternates the contenders in rounds in one
process and takes medians (``regloss._bench``). Sections: NumPy ``value_and_grad(out=)``
against the machine's copy bandwidth; with PyTorch installed, regloss against
``torch.nn.functional`` for the losses PyTorch has, and every registered loss against
PyTorch's ``mse_loss``. The full tables are ``benchmarks/bench_losses.py`` and
``benchmarks/bench_numpy.py`` in the repository.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform

import numpy as np

from .. import _bench
from .._optional import EXTRAS
from .._version import __version__

__all__ = ["add_parser", "run"]

SECTIONS = ("numpy", "torch", "robust")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "bench",
        help="measure regloss's speed against the frameworks on this machine",
        description="A short speed check: NumPy value_and_grad(out=) as a fraction of this "
        "machine's copy bandwidth; with PyTorch, regloss / torch.nn.functional "
        "forward+backward time for mse, l1, huber, smooth_l1 and gaussian_nll, and every "
        "loss's time as a multiple of PyTorch's mse_loss. Ratios below 1 mean regloss is "
        "faster.",
    )
    p.add_argument(
        "--section",
        action="append",
        choices=SECTIONS,
        help="run only this section (repeatable; default: all)",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=0.25,
        help="measuring time per comparison (default 0.25; more is steadier)",
    )
    p.add_argument(
        "--max-log2",
        type=int,
        default=20,
        metavar="K",
        help="largest size N = 2^K (default 20; the loss-by-loss section runs at 2^K)",
    )
    p.set_defaults(run=run)


def _kernel_reason() -> str:
    from .._kernels import c

    if not c.enabled():
        return "disabled by REGLOSS_KERNELS=0"
    if c._compiler() is None:
        return "no C compiler: set CC, or install gcc"
    failures = sorted(v for v in c.status().values() if v.startswith("no kernel"))
    return failures[0] if failures else "not built"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def run(args: argparse.Namespace) -> int:
    if not args.seconds > 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds!r}")
    if not 4 <= args.max_log2 <= 26:
        raise ValueError(f"--max-log2 must be between 4 and 26, got {args.max_log2}")
    sections = args.section or list(SECTIONS)
    top = 1 << args.max_log2
    has_torch = importlib.util.find_spec("torch") is not None
    print(f"regloss {__version__}, numpy {np.__version__}, Python {platform.python_version()}")
    built = _bench.prepare_kernels()
    if built:
        slowest = max(built.values())
        print(
            f"generated kernels: {len(built)} ready (slowest build or load {slowest:.2f} s; "
            "later runs load them from the disk cache)"
        )
    else:
        print(f"generated kernels: none ({_kernel_reason()}); regloss computes eagerly")
    if "numpy" in sections:
        n = min(1 << 22, top)
        frac = _bench.numpy_bandwidth(["mse", "huber"], n, np.float32, seconds=4 * args.seconds)
        print(
            f"\nNumPy value_and_grad(out=), N = {_bench.size_label(n)} float32: copy bandwidth "
            f"{frac['copy'] / 1e9:.1f} GB/s; mse reaches {frac['mse']:.0%} of it, huber "
            f"{frac['huber']:.0%}"
        )
    if not has_torch and ("torch" in sections or "robust" in sections):
        print(f"\nPyTorch is not installed: pip install 'regloss[{EXTRAS['torch']}]' to compare")
        return 0
    if "torch" in sections:
        import torch

        print(
            f"\nPyTorch {torch.__version__}, {torch.get_num_threads()} threads: forward+backward, "
            "float32, reduction='mean'; ratio = regloss / torch.nn.functional"
        )
        print(_row(["loss", "N", "weight", "regloss", "torch", "ratio"]))
        print(_row(["---"] * 6))

        def show(c: _bench.Cell) -> None:
            s, lab = c.seconds, c.labels
            cells = [lab["loss"], lab["N"], lab["weight"]]
            cells += [_bench.fmt_seconds(s["regloss"]), _bench.fmt_seconds(s["torch"])]
            print(_row([*cells, f"{c.ratio():.2f}"]), flush=True)

        pairs, extras = _bench.torch_peers()
        _bench.torch_cells(
            pairs,
            [n for n in (3, 1 << 12, 1 << 16, 1 << 20) if n <= top],
            weighted=[False, True],
            seconds=args.seconds,
            extras=extras,
            progress=show,
        )
    if "robust" in sections:
        print(
            f"\nEvery loss at N = {_bench.size_label(top)}, float32: forward+backward time / "
            "PyTorch's mse_loss"
        )
        print(_row(["loss", "x mse_loss"]))
        print(_row(["---"] * 2))
        _bench.robust_vs_mse(
            top,
            seconds=args.seconds,
            progress=lambda name, r: print(_row([name, f"{r:.2f}"]), flush=True),
        )
    return 0
