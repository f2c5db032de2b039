"""regloss's generated Triton kernels on a CUDA GPU (issue 9): one prepared run, <= 5 min.

    python benchmarks/bench_gpu.py [--out FILE] [--max-log2 26]

For every registered loss (default parameters), N = 2^10 ... 2^26, float32 and bfloat16:
forward+backward time of regloss (its Triton kernel), of regloss's eager path
(REGLOSS_KERNELS=0: the composition of the definition), of the same formula composed by hand
from torch operations (benchmarks/hand.py), and of torch's own mse_loss; ratios, and the
achieved bandwidth (bytes of prediction and target read and the gradient written, over the
kernel's fwd+bwd time) as a fraction of the device's copy bandwidth (torch's clone of a 1 GiB
tensor). Goal: >= 80% of copy bandwidth at N >= 2^24, >= 3x the hand composition for the
robust losses. It first checks that every loss's Triton result equals the float64 CPU
definition (value and gradient) and exits 1 otherwise. CUDA events, medians of alternated
rounds. Needs a CUDA GPU and triton.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hand
import regloss
from regloss.torch import functional as RF


def _time(steps: list[Callable[[], Any]], rounds: int) -> list[float]:
    """Median milliseconds per step, contenders alternated, CUDA events."""
    out: list[list[float]] = [[] for _ in steps]
    for f in steps:
        for _ in range(3):
            f()
    torch.cuda.synchronize()
    for r in range(rounds):
        order = range(len(steps)) if r % 2 == 0 else reversed(range(len(steps)))
        for i in order:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(5):
                steps[i]()
            end.record()
            torch.cuda.synchronize()
            out[i].append(start.elapsed_time(end) / 5)
    return [statistics.median(t) for t in out]


def _step(f: Callable[..., Any], x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        x.grad = None
        f(x, y).backward()

    return run


def _eager(f: Callable[..., Any]) -> Callable[..., Any]:
    def g(x: torch.Tensor, y: torch.Tensor) -> Any:
        os.environ["REGLOSS_KERNELS"] = "0"
        try:
            return f(x, y)
        finally:
            os.environ["REGLOSS_KERNELS"] = "1"

    return g


def copy_bandwidth() -> float:
    a = torch.empty(1 << 28, dtype=torch.float32, device="cuda")
    (ms,) = _time([lambda: a.clone()], 10)
    return 2 * a.numel() * 4 / (ms / 1e3)


def check(lines: list[str]) -> int:
    bad = 0
    for name in regloss.available_losses():
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator().manual_seed(0)
            x = 3 * torch.randn(3001, generator=g, dtype=torch.float64)
            y = torch.randn(3001, generator=g, dtype=torch.float64)
            xc = x.to(dtype).cuda().requires_grad_()
            value = getattr(RF, f"{name}_loss")(xc, y.to(dtype).cuda())
            value.backward()
            xr = xc.detach().double().cpu().requires_grad_()
            ref = getattr(RF, f"{name}_loss")(xr, y.to(dtype).double())
            ref.backward()
            tol = 1e-5 if dtype == torch.float32 else 1e-2
            ok = abs(value.item() - ref.item()) <= tol * max(1.0, abs(ref.item())) and bool(
                torch.allclose(xc.grad.double().cpu(), xr.grad, rtol=tol, atol=tol / 3001)
            )
            if not ok:
                bad += 1
                lines.append(f"MISMATCH {name} {dtype}: {value.item()} vs {ref.item()}")
    lines.append(f"correctness: {2 * len(regloss.available_losses()) - bad} ok, {bad} mismatches")
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--max-log2", type=int, default=26)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu.py needs a CUDA GPU", file=sys.stderr)
        return 2
    os.environ["REGLOSS_KERNELS"] = "1"
    lines = [f"{torch.cuda.get_device_name()}, torch {torch.__version__}"]
    bad = check(lines)
    bw = copy_bandwidth()
    lines.append(f"copy bandwidth {bw / 1e9:.0f} GB/s")
    lines.append(
        "| loss | dtype | N | regloss ms | eager / regloss | hand / regloss | regloss / mse_loss "
        "| bandwidth / copy |"
    )
    lines.append("|---" * 8 + "|")
    for name in regloss.available_losses():
        ours = getattr(RF, f"{name}_loss")
        for dtype in (torch.float32, torch.bfloat16):
            for k in range(10, args.max_log2 + 1, 2):
                n = 1 << k
                x = torch.randn(n, device="cuda", dtype=dtype, requires_grad=True)
                y = torch.randn(n, device="cuda", dtype=dtype)
                steps = [_step(f, x, y) for f in (ours, _eager(ours), hand.loss(name), F.mse_loss)]
                t_ours, t_eager, t_hand, t_mse = _time(steps, 7 if k < 22 else 3)
                moved = 3 * n * x.element_size()
                frac = moved / (t_ours / 1e3) / bw
                lines.append(
                    f"| {name} | {str(dtype)[6:]} | 2^{k} | {t_ours:.3f} | {t_eager / t_ours:.2f} "
                    f"| {t_hand / t_ours:.2f} | {t_ours / t_mse:.2f} | {frac:.2f} |"
                )
                print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
