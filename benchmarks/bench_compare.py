"""Before and after: the peers and robust tables of ``bench_losses.py`` with an earlier
revision of regloss side by side, in one process (the issues' "must not get worse").

``python benchmarks/bench_compare.py --rev 3417f93 [--section peers|robust|all] [--quick]``

The earlier revision's ``src/regloss`` is extracted with ``git archive`` into a temporary
folder and imported as ``regloss_before`` (its names that are not relative imports are
renamed: the custom op's namespace, the package-data lookups). Every cell alternates the
contenders in rounds (``regloss._bench.alternate``) — before, after and the peer — and
reports the after/before ratio: below 1.05 is within the 5% the issues allow.
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hand
from bench_losses import ROBUST_ROWS, SIZES
from regloss._bench import alternate, fmt_seconds, prepare_kernels, size_label, torch_step

ROOT = Path(__file__).resolve().parent.parent


def import_revision(rev: str, into: Path) -> Any:
    """``regloss`` as it was at ``rev``, importable as ``regloss_before``."""
    tar = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src/regloss"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    package = into / "regloss_before"
    (into / "src" / "regloss").rename(package)
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        new = re.sub(r"regloss::", "reglossbefore::", text)
        new = new.replace("from regloss.", "from regloss_before.")
        new = new.replace(
            'resources.files("regloss.data")', 'resources.files("regloss_before.data")'
        )
        if new != text:
            path.write_text(new, encoding="utf-8")
    sys.path.insert(0, str(into))
    return importlib.import_module("regloss_before")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _weighted(f: Any) -> Any:
    """PyTorch's loss ``f`` with ``weight=`` composed as a user writes it where f has none."""

    def g(x: Any, *args: Any, reduction: str = "mean", weight: Any = None) -> Any:
        if weight is None:
            return f(x, *args, reduction=reduction)
        v = f(x, *args, reduction="none") * weight
        return v.sum() / weight.sum() if reduction == "mean" else v.sum()

    return g


def peers(before: Any, after: Any, sizes: list[int], quick: bool) -> list[float]:
    pairs = {
        "mse": (before.mse_loss, after.mse_loss, F.mse_loss),
        "l1": (before.l1_loss, after.l1_loss, F.l1_loss),
        "huber": (before.huber_loss, after.huber_loss, F.huber_loss),
        "smooth_l1": (before.smooth_l1_loss, after.smooth_l1_loss, _weighted(F.smooth_l1_loss)),
        "gaussian_nll": (
            before.gaussian_nll_loss,
            after.gaussian_nll_loss,
            _weighted(F.gaussian_nll_loss),
        ),
    }
    dtypes = [torch.float32] if quick else [torch.float32, torch.float64]
    reductions = ["mean"] if quick else ["mean", "sum"]
    head = ["loss", "N", "dtype", "reduction", "weight", "before", "after", "torch"]
    print(_row([*head, "after / before"]))
    print(_row(["---"] * (len(head) + 1)))
    ratios = []
    for name, (b, a, peer) in pairs.items():
        for n in sizes:
            for dtype in dtypes:
                gen = torch.Generator().manual_seed(n)
                x = torch.randn(n, generator=gen, dtype=dtype).requires_grad_()
                y = torch.randn(n, generator=gen, dtype=dtype)
                w = torch.rand(n, generator=gen, dtype=dtype) + 0.5
                more = (torch.rand_like(y) + 0.5,) if name == "gaussian_nll" else ()
                for reduction in reductions:
                    for weigh in (False, True):
                        kw: dict[str, Any] = {"reduction": reduction}
                        if weigh:
                            kw["weight"] = w
                        steps = [torch_step(f, x, (y, *more), kw) for f in (b, a, peer)]
                        tb, ta, tp = alternate(steps, seconds=0.3 if quick else 0.6)
                        ratios.append(ta / tb)
                        cells = [name, size_label(n), str(dtype).removeprefix("torch.")]
                        cells += [reduction, "yes" if weigh else "no"]
                        cells += [fmt_seconds(tb), fmt_seconds(ta), fmt_seconds(tp)]
                        print(_row([*cells, f"{ta / tb:.3f}"]), flush=True)
    return ratios


def robust(before: Any, after: Any, sizes: list[int], quick: bool) -> list[float]:
    head = ["loss", "N", "before", "after", "torch mse_loss", "hand", "after / before"]
    print(_row(head))
    print(_row(["---"] * len(head)))
    ratios = []
    for name, params in ROBUST_ROWS:
        b = getattr(before.functional, f"{name}_loss")
        a = getattr(after.functional, f"{name}_loss")
        by_hand = hand.loss(name, **params)
        label = name + (
            "(" + ", ".join(f"{k}={v:g}" for k, v in params.items()) + ")" if params else ""
        )
        for n in sizes:
            gen = torch.Generator().manual_seed(n)
            x = torch.randn(n, generator=gen).requires_grad_()
            y = torch.randn(n, generator=gen)
            steps = [torch_step(f, x, (y,), params) for f in (b, a)]
            steps += [torch_step(F.mse_loss, x, (y,), {}), torch_step(by_hand, x, (y,), {})]
            tb, ta, tm, th = alternate(steps, seconds=0.5 if quick else 1.5)
            ratios.append(ta / tb)
            cells = [label, size_label(n), fmt_seconds(tb), fmt_seconds(ta), fmt_seconds(tm)]
            print(_row([*cells, fmt_seconds(th), f"{ta / tb:.3f}"]), flush=True)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", required=True, help="the earlier revision (a git commit)")
    parser.add_argument("--section", choices=["peers", "robust", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="fewer cells and repetitions")
    parser.add_argument("--max-log2", type=int, default=24, help="largest N = 2**this")
    parser.add_argument("--sizes", default="", help="comma-separated log2 sizes (peers)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = import_revision(args.rev, Path(tmp))
        before = importlib.import_module("regloss_before.torch")
        importlib.import_module("regloss_before._bench").prepare_kernels(("float32", "float64"))
        import regloss.torch as after

        prepare_kernels(("float32", "float64"))
        print(f"before: regloss at {args.rev} ({old.__version__}); after: this checkout")
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, forward+backward\n")
        sizes = [n for n in SIZES if n <= 2**args.max_log2]
        if args.sizes:
            sizes = [2 ** int(k) if int(k) > 1 else 3 for k in args.sizes.split(",")]
        ratios: list[float] = []
        if args.section in ("peers", "all"):
            ratios += peers(before, after, sizes, args.quick)
        if args.section in ("robust", "all"):
            print()
            ratios += robust(before, after, [n for n in sizes if n >= 2**20] or [2**20], args.quick)
        over = [r for r in ratios if r > 1.05]
        print(
            f"\ncells: {len(ratios)}; worst after/before {max(ratios):.3f}; median "
            f"{sorted(ratios)[len(ratios) // 2]:.3f}; over 1.05: {len(over)}"
        )


if __name__ == "__main__":
    main()
