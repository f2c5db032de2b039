"""regloss.torch on a real CUDA device: correctness of every loss and option against the CPU
float64 definition, torch.compile on CUDA, and a baseline timing table (eager regloss
against torch.nn.functional and torch's mse_loss), for issue 9's GPU work to start from.

    python benchmarks/cuda_check.py [--out FILE] [--no-timing]
    TRITON_INTERPRET=1 python benchmarks/cuda_check.py --device cpu --no-timing  # smoke

Needs a CUDA GPU; CI has none, so this is run by hand when a device is lent. Exit 1 on any
mismatch. Timings: CUDA events, median of 30 fwd+bwd steps after warm-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_gpu
import regloss
from regloss.torch import functional as RF

DEVICE = "cuda"


def _eager_reference(f, *args, **kwargs):  # type: ignore[no-untyped-def]
    """``f(*args, **kwargs)`` with regloss's generated kernels off: the eager definition."""
    os.environ["REGLOSS_KERNELS"] = "0"
    try:
        return f(*args, **kwargs)
    finally:
        os.environ["REGLOSS_KERNELS"] = "1"


def check(failures: list[str], lines: list[str]) -> int:
    dev = torch.device(DEVICE)
    count = 0
    gen = torch.Generator().manual_seed(0)
    for name in regloss.available_losses():
        fn = RF.loss
        for dtype in (torch.float32, torch.float64):
            for opts in (
                {},
                {"reduction": "sum"},
                {"reduction": "none"},
                {"weight": "w"},
                {"mask": "m"},
                {"reduction": "batchmean"},
                {"nan_policy": "omit"},
            ):
                x = torch.randn(257, 3, generator=gen, dtype=torch.float64) * 3
                y = torch.randn(257, 3, generator=gen, dtype=torch.float64)
                if "nan_policy" in opts:
                    y[5, 1] = float("nan")
                w = torch.rand(257, generator=gen, dtype=torch.float64)
                m = torch.rand(257, 3, generator=gen) > 0.3
                kw = dict(opts)
                if "weight" in kw:
                    kw["weight"] = w
                if "mask" in kw:
                    kw["mask"] = m
                ref_x = x.clone().requires_grad_(True)
                ref = _eager_reference(fn, name, ref_x, y, **kw)
                _eager_reference(ref.sum().backward)
                gx = x.to(dev, dtype).requires_grad_(True)
                gkw = {k: (v.to(dev) if torch.is_tensor(v) else v) for k, v in kw.items()}
                if "weight" in gkw:
                    gkw["weight"] = gkw["weight"].to(dtype)
                out = fn(name, gx, y.to(dev, dtype), **gkw)
                out.sum().backward()
                count += 1
                tol = 1e-4 if dtype == torch.float32 else 1e-10
                what = f"{name} {dtype} {opts}"
                if out.device != gx.device or gx.grad is None or gx.grad.device != gx.device:
                    failures.append(f"{what}: result or gradient left the device")
                    continue
                if not torch.allclose(out.double().cpu(), ref.detach(), rtol=tol, atol=tol):
                    failures.append(f"{what}: value differs")
                if not torch.allclose(gx.grad.double().cpu(), ref_x.grad, rtol=tol, atol=tol):
                    failures.append(f"{what}: gradient differs")
    # the NLLs: value and gradients with respect to the prediction and the scale input
    from regloss.torch import nll

    for fname in ("gaussian_nll_loss", "laplace_nll_loss"):
        nll_fn = getattr(nll, fname)
        for dtype in (torch.float32, torch.float64):
            for opts in ({}, {"reduction": "sum"}, {"weight": "w"}, {"nan_policy": "omit"}):
                x = torch.randn(513, generator=gen, dtype=torch.float64)
                y = torch.randn(513, generator=gen, dtype=torch.float64)
                v = torch.rand(513, generator=gen, dtype=torch.float64) + 0.1
                if "nan_policy" in opts:
                    y[7] = float("nan")
                kw = dict(opts)
                if "weight" in kw:
                    kw["weight"] = torch.rand(513, generator=gen, dtype=torch.float64)
                rx, rv = x.clone().requires_grad_(), v.clone().requires_grad_()
                ref = _eager_reference(nll_fn, rx, y, rv, **kw)
                _eager_reference(ref.backward)
                gx = x.to(dev, dtype).requires_grad_()
                gv = v.to(dev, dtype).requires_grad_()
                gkw = {k: (t.to(dev, dtype) if torch.is_tensor(t) else t) for k, t in kw.items()}
                out = nll_fn(gx, y.to(dev, dtype), gv, **gkw)
                out.backward()
                count += 1
                tol = 1e-4 if dtype == torch.float32 else 1e-10
                what = f"{fname} {dtype} {opts}"
                if gx.grad is None or gv.grad is None or gx.grad.device != gx.device:
                    failures.append(f"{what}: gradient missing or off the device")
                    continue
                for label, got, want in (
                    ("value", out, ref.detach()),
                    ("gradient", gx.grad, rx.grad),
                    ("scale gradient", gv.grad, rv.grad),
                ):
                    if not torch.allclose(got.double().cpu(), want, rtol=tol, atol=tol):
                        failures.append(f"{what}: {label} differs")
    # torch.compile on CUDA, fullgraph, two losses
    for name in ("huber", "cauchy"):
        f = torch.compile(lambda a, b, n=name: RF.loss(n, a, b), fullgraph=True)
        a = torch.randn(4096, device=dev, requires_grad=True)
        b = torch.randn(4096, device=dev)
        got = f(a, b)
        got.backward()
        want = _eager_reference(RF.loss, name, a.detach().cpu().double(), b.cpu().double())
        count += 1
        if not torch.allclose(got.double().cpu(), want, rtol=1e-5):
            failures.append(f"compile {name}: value differs")
    lines.append(f"correctness: {count} cases on {_device_name()}, {len(failures)} failures")
    return count


def check_reductions(failures: list[str], lines: list[str]) -> int:
    """The Triton kernel's in-kernel reduction (the program finishing last adds the partial
    sums, up to FINAL_MAX_BLOCKS blocks; PyTorch's sum beyond) and the backward's
    multiplication decided on the device: 30 launches of each size queued before one
    synchronisation must agree bit for bit and with the float64 eager definition, and an
    incoming gradient of 2.5 must scale the gradient."""
    from regloss._kernels import gpu

    dev = torch.device(DEVICE)
    blocks = gpu.FINAL_MAX_BLOCKS
    sizes = [1, 1000, gpu.BLOCK + 1, 37 * gpu.BLOCK - 5, blocks * gpu.BLOCK, blocks * gpu.BLOCK + 1]
    count = 0
    for n in sizes[: 4 if DEVICE == "cpu" else None]:  # the interpreter is slow
        g = torch.Generator().manual_seed(n)
        x64 = 3 * torch.randn(n, generator=g, dtype=torch.float64)
        y64 = torch.randn(n, generator=g, dtype=torch.float64)
        for dtype in (torch.float32, torch.float64):
            x, y = x64.to(dev, dtype), y64.to(dev, dtype)
            ref = _eager_reference(RF.cauchy_loss, x.double(), y.double(), reduction="sum")
            runs = torch.stack([RF.cauchy_loss(x, y, reduction="sum") for _ in range(30)])
            count += 1
            what = f"reduction n={n} {dtype}"
            if not bool((runs == runs[0]).all()):
                lo, hi = runs.min().item(), runs.max().item()
                failures.append(f"{what}: not deterministic ({lo}..{hi})")
            tol = 1e-5 if dtype == torch.float32 else 1e-12
            if not torch.allclose(runs[0].double().cpu(), ref.cpu(), rtol=tol, atol=0):
                failures.append(f"{what}: {runs[0].item()} vs {ref.item()}")
            xg = x.detach().requires_grad_()
            (RF.cauchy_loss(xg, y) * 2.5).backward()
            xr = x.detach().double().requires_grad_()
            (_eager_reference(RF.cauchy_loss, xr, y.double()) * 2.5).backward()
            if not torch.allclose(xg.grad.double(), xr.grad, rtol=tol, atol=tol / n):
                failures.append(f"{what}: gradient times 2.5 differs")
    lines.append(f"reductions and device-side gradient scaling: {count} cases")
    return count


def _device_name() -> str:
    return torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (Triton interpreter)"


def _time(f, x, y, reps: int = 30) -> float:  # type: ignore[no-untyped-def]
    for _ in range(5):
        x.grad = None
        f(x, y).backward()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        x.grad = None
        start.record()
        f(x, y).backward()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) * 1e3)  # µs
    return statistics.median(times)


def timing(lines: list[str]) -> None:
    dev = torch.device("cuda")
    peers = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}
    ours = {"mse": RF.mse_loss, "l1": RF.l1_loss, "huber": RF.huber_loss}
    robust = ["cauchy", "tukey", "welsch", "barron", "log_cosh"]
    lines.append("")
    lines.append("| loss | N | regloss µs | torch µs | ratio | vs torch mse_loss |")
    lines.append("|---|---|---|---|---|---|")
    for n in (2**10, 2**20, 2**24, 2**26):
        x = torch.randn(n, device=dev, requires_grad=True)
        y = torch.randn(n, device=dev)
        base = _time(F.mse_loss, x, y)
        for k in peers:
            a, b = _time(ours[k], x, y), _time(peers[k], x, y)
            lines.append(
                f"| {k} | 2^{n.bit_length() - 1} | {a:.1f} | {b:.1f} | {a / b:.2f} | "
                f"{a / base:.2f} |"
            )
        for k in robust:
            a = _time(lambda p, t, k=k: RF.loss(k, p, t), x, y)
            lines.append(f"| {k} | 2^{n.bit_length() - 1} | {a:.1f} | - | - | {a / base:.2f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="also write the report here")
    ap.add_argument("--no-timing", action="store_true", help="correctness only")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    problem = bench_gpu.use_device(DEVICE)
    if problem:
        print(f"cuda_check.py: {problem}", file=sys.stderr)
        return 2
    failures: list[str] = []
    lines = [f"torch {torch.__version__}, regloss {regloss.__version__}"]
    t = time.perf_counter()
    check(failures, lines)
    check_reductions(failures, lines)
    if not args.no_timing and DEVICE == "cuda":  # CUDA events: no timing on the CPU
        timing(lines)
    lines.append(f"\n({time.perf_counter() - t:.0f} s)")
    lines += [f"FAILED: {f}" for f in failures[:50]]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
