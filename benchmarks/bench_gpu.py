"""regloss's generated Triton kernels on a CUDA GPU (issue 9): one prepared run, <= 5 min.

    python benchmarks/bench_gpu.py [--out FILE] [--max-log2 26] [--budget 280]
    TRITON_INTERPRET=1 python benchmarks/bench_gpu.py --device cpu --max-log2 12  # smoke

For every registered loss (default parameters), N = 2^10 ... 2^26, float32 and bfloat16:
forward+backward time of regloss (its Triton kernel), of regloss's eager path
(REGLOSS_KERNELS=0: the composition of the definition), of the same formula composed by hand
from torch operations (benchmarks/hand.py), and of torch's own mse_loss; ratios, and the
achieved bandwidth (bytes of prediction and target read and the gradient written, over the
kernel's fwd+bwd time) as a fraction of the device's copy bandwidth (torch's clone of a 1 GiB
tensor). The traffic column counts what the step really moves: the forward kernel reads
prediction and target and writes psi (in the compute dtype, float32 for half inputs), the
backward hands psi on as the gradient, multiplied on the device only where the incoming gradient
is not exactly 1 (3 N elements for float32 and float64; half inputs also write and read psi in
float32 and write their gradient: 3 N elements plus 8 bytes each).
From 2^22 the profiler's device time of the step's kernels is reported too: the kernels' own
speed, without the host's launch overhead, which bounds small and mid sizes. Goal: >= 80% of
copy bandwidth at N >= 2^24, >= 3x the hand composition for the robust losses. It first checks
that every loss's Triton result equals the float64 CPU definition (value and gradient) and
exits 1 otherwise. CUDA events, medians of alternated rounds. Needs a CUDA GPU and triton
(``--device cpu`` under TRITON_INTERPRET=1 runs the same script through Triton's interpreter,
as a smoke test before spending device time). Rows are written to ``--out`` as they are
measured; past ``--budget`` seconds the remaining sizes are skipped and the report says so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hand
import regloss
from regloss.torch import functional as RF

DEVICE = "cuda"


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def use_device(device: str) -> str | None:
    """Route regloss's Triton kernels to ``device`` ('cuda', or 'cpu' through Triton's
    interpreter, a smoke test) with the generated kernels on; the reason when it cannot."""
    if device == "cuda" and not torch.cuda.is_available():
        return "no CUDA GPU"
    if device == "cpu":
        if os.environ.get("TRITON_INTERPRET") != "1":
            return "--device cpu needs TRITON_INTERPRET=1"
        from regloss import _kernels, _reduce

        _kernels.TRITON_DEVICES.add("cpu")
        _reduce.TRITON_DEVICES.add("cpu")
    os.environ["REGLOSS_KERNELS"] = "1"
    return None


def _elapsed_ms(f: Callable[[], None], reps: int) -> float:
    """Milliseconds per call of ``f`` over ``reps`` calls: CUDA events on a GPU."""
    if DEVICE != "cuda":
        t = time.perf_counter()
        for _ in range(reps):
            f()
        return (time.perf_counter() - t) * 1e3 / reps
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        f()
    end.record()
    torch.cuda.synchronize()
    return float(start.elapsed_time(end)) / reps


def _time(steps: list[Callable[[], Any]], rounds: int) -> list[float]:
    """Median milliseconds per step, contenders alternated (order flipped each round)."""
    out: list[list[float]] = [[] for _ in steps]
    for f in steps:
        for _ in range(3):
            f()
    _sync()
    for r in range(rounds):
        order = range(len(steps)) if r % 2 == 0 else reversed(range(len(steps)))
        for i in order:
            out[i].append(_elapsed_ms(steps[i], 5))
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


def device_ms(step: Callable[[], None], reps: int = 5) -> float:
    """Milliseconds per step of the device kernels alone (the profiler's device time), which
    is the kernels' own speed once the host's launch overhead is out of the way."""
    from torch.profiler import ProfilerActivity, profile

    step()
    _sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            step()
        _sync()
    total = sum(getattr(e, "self_device_time_total", 0.0) for e in prof.key_averages())
    return float(total) / 1e3 / reps


def copy_bandwidth() -> float:
    a = torch.empty(1 << (28 if DEVICE == "cuda" else 20), dtype=torch.float32, device=DEVICE)
    (ms,) = _time([lambda: a.clone()], 10)
    return 2 * a.numel() * 4 / (ms / 1e3)


def check(lines: list[str]) -> int:
    bad = 0
    for name in regloss.available_losses():
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator().manual_seed(0)
            x = 3 * torch.randn(3001, generator=g, dtype=torch.float64)
            y = torch.randn(3001, generator=g, dtype=torch.float64)
            xc = x.to(dtype).to(DEVICE).requires_grad_()
            value = getattr(RF, f"{name}_loss")(xc, y.to(dtype).to(DEVICE))
            value.backward()
            xr = xc.detach().double().cpu().requires_grad_()
            os.environ["REGLOSS_KERNELS"] = "0"  # the reference is the eager definition
            try:
                ref = getattr(RF, f"{name}_loss")(xr, y.to(dtype).double())
                ref.backward()
            finally:
                os.environ["REGLOSS_KERNELS"] = "1"
            tol = 1e-5 if dtype == torch.float32 else 1e-2
            ok = abs(value.item() - ref.item()) <= tol * max(1.0, abs(ref.item())) and bool(
                torch.allclose(xc.grad.double().cpu(), xr.grad, rtol=tol, atol=tol / 3001)
            )
            if not ok:
                bad += 1
                lines.append(f"MISMATCH {name} {dtype}: {value.item()} vs {ref.item()}")
    lines.append(f"correctness: {2 * len(regloss.available_losses()) - bad} ok, {bad} mismatches")
    return bad


def launched_kernels() -> str:
    """Proof that the generated Triton kernel runs: calls of it during one cauchy_loss
    fwd+bwd, and on a GPU the device kernels that step launches."""
    from torch.profiler import ProfilerActivity, profile

    from regloss._kernels import gpu

    calls = 0
    inner = gpu.forward

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return inner(*args, **kwargs)

    x = torch.randn(1 << 12, device=DEVICE, requires_grad=True)
    y = torch.randn(1 << 12, device=DEVICE)
    gpu.forward = counted
    try:
        activity = ProfilerActivity.CUDA if DEVICE == "cuda" else ProfilerActivity.CPU
        with profile(activities=[activity]) as prof:
            RF.cauchy_loss(x, y).backward()
            _sync()
    finally:
        gpu.forward = inner
    text = f"cauchy fwd+bwd: {calls} call(s) of the Triton kernel"
    if DEVICE == "cuda":
        text += "; device kernels: " + ", ".join(e.key for e in prof.key_averages())
    return text


def host_and_wall_ms(step: Callable[[], None], steps: int, warm: int = 5) -> tuple[float, float]:
    """Milliseconds per step the host takes to enqueue ``steps`` steps (no synchronisation)
    and the wall time per step once the device has run them all."""
    for _ in range(warm):
        step()
    _sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    t1 = time.perf_counter()
    _sync()
    t2 = time.perf_counter()
    return (t1 - t0) / steps * 1e3, (t2 - t0) / steps * 1e3


def host_profile(n: int = 1 << 10, steps: int = 500) -> str:
    """cProfile of cauchy_loss and mse_loss training steps at a small N, where the host's
    Python and launches bound the step: the functions that take its time."""
    import cProfile
    import io
    import pstats

    x = torch.randn(n, device=DEVICE, requires_grad=True)
    y = torch.randn(n, device=DEVICE)
    out = io.StringIO()
    for f in (RF.cauchy_loss, F.mse_loss):
        step = _step(f, x, y)
        _, wall = host_and_wall_ms(step, steps, warm=50)
        out.write(f"{f.__name__}: {wall * 1e3:.1f} us a step\n")
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(steps):
            step()
        _sync()
        prof.disable()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
    return out.getvalue()


def step_trace(ks: tuple[int, ...] = (20, 26), steps: int = 20) -> str:
    """Where a step's time goes at a small and a large N: the host's enqueue time per step
    (no synchronisation) against the wall time per step (synchronised at the end), and the
    profiler's CPU and device tables of a few steps, for cauchy_loss and mse_loss."""
    from torch.profiler import ProfilerActivity, profile

    out = []
    for k in ks:
        x = torch.randn(1 << k, device=DEVICE, requires_grad=True)
        y = torch.randn(1 << k, device=DEVICE)
        for f in (RF.cauchy_loss, F.mse_loss):
            step = _step(f, x, y)
            host, wall = host_and_wall_ms(step, steps)
            out.append(f"## {f.__name__} 2^{k}: host enqueue {host:.3f} ms/step, wall {wall:.3f}")
            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE == "cuda" else [])
            with profile(activities=acts) as prof:
                for _ in range(5):
                    step()
                _sync()
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18)
            out.append(table)
        del x, y
    return "\n".join(out)


def native_vs_generated(emit: Callable[[str], None], max_log2: int) -> None:
    """Where regloss calls PyTorch's own fused loss (mse, mae, huber, smooth_l1: see
    regloss.torch._native), the same step through the generated Triton kernel instead, in
    float32: PyTorch's backward reads prediction and target again (20 bytes an element),
    the generated kernel's step moves 12."""
    from regloss.torch import _native

    emit("| loss | N | torch's own ms | generated kernel ms | generated / own |")
    emit("|---" * 5 + "|")
    for k in range(14, max_log2 + 1, 2):
        n = 1 << k
        x = torch.randn(n, device=DEVICE, requires_grad=True)
        y = torch.randn(n, device=DEVICE)
        for name in ("mse", "mae", "huber", "smooth_l1"):
            ours = getattr(RF, f"{name}_loss")
            kind = type(regloss.get_loss(name))

            def generated(a: torch.Tensor, b: torch.Tensor, f: Any = ours, kind: Any = kind) -> Any:
                entry = _native.NATIVE.pop(kind)
                try:
                    return f(a, b)
                finally:
                    _native.NATIVE[kind] = entry

            t_own, t_gen = _time([_step(ours, x, y), _step(generated, x, y)], 7 if k < 22 else 3)
            emit(f"| {name} | 2^{k} | {t_own:.3f} | {t_gen:.3f} | {t_gen / t_own:.2f} |")
        del x, y


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--max-log2", type=int, default=26)
    parser.add_argument("--budget", type=float, default=280.0, help="seconds for the table")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument(
        "--host-profile", type=Path, help="write where a small step's host time goes to FILE"
    )
    parser.add_argument(
        "--trace-step", type=Path, help="write host/wall time and profiler tables to FILE"
    )
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device
    problem = use_device(DEVICE)
    if problem:
        print(f"bench_gpu.py: {problem}", file=sys.stderr)
        return 2
    lines: list[str] = []

    def emit(line: str) -> None:
        lines.append(line)
        print(line, flush=True)
        if args.out:
            args.out.write_text("\n".join(lines) + "\n")

    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (Triton interpreter)"
    emit(f"{name}, torch {torch.__version__}, regloss {regloss.__version__}")
    bad = check(lines)
    emit(lines.pop())
    emit(launched_kernels())
    if args.host_profile:
        args.host_profile.write_text(host_profile())
    if args.trace_step:
        args.trace_step.write_text(step_trace())
    bw = copy_bandwidth()
    emit(f"copy bandwidth {bw / 1e9:.0f} GB/s (clone of a 1 GiB float32 tensor, read + write)")
    emit(
        "| loss | dtype | N | regloss ms | eager / regloss | hand / regloss | regloss / mse_loss "
        "| 3N / copy | traffic / copy | kernels ms | kernels' traffic / copy |"
    )
    emit("|---" * 11 + "|")
    t0 = time.perf_counter()
    skipped = 0
    for k in range(10, args.max_log2 + 1, 2):
        n = 1 << k
        for dtype in (torch.float32, torch.bfloat16):
            if time.perf_counter() - t0 > args.budget:
                skipped += 1
                continue
            x = torch.randn(n, device=DEVICE, dtype=dtype, requires_grad=True)
            y = torch.randn(n, device=DEVICE, dtype=dtype)
            for name in regloss.available_losses():
                ours = getattr(RF, f"{name}_loss")
                steps = [_step(f, x, y) for f in (ours, _eager(ours), hand.loss(name), F.mse_loss)]
                t_ours, t_eager, t_hand, t_mse = _time(steps, 7 if k < 22 else 3)
                e = x.element_size()
                # bytes moved: x and y read, the gradient written; for half inputs also ψ
                # written and read back in float32 (the float32 product rounded once)
                traffic = n * (3 * e + (0 if dtype in (torch.float32, torch.float64) else 8))
                k_ms = device_ms(steps[0]) if DEVICE == "cuda" and k >= 22 else float("nan")
                emit(
                    f"| {name} | {str(dtype)[6:]} | 2^{k} | {t_ours:.3f} | {t_eager / t_ours:.2f} "
                    f"| {t_hand / t_ours:.2f} | {t_ours / t_mse:.2f} "
                    f"| {3 * n * e / (t_ours / 1e3) / bw:.2f} "
                    f"| {traffic / (t_ours / 1e3) / bw:.2f} | {k_ms:.3f} "
                    f"| {traffic / (k_ms / 1e3) / bw:.2f} |"
                )
            del x, y
    emit(f"table: {time.perf_counter() - t0:.0f} s; {skipped} (size, dtype) groups skipped")
    native_vs_generated(emit, args.max_log2)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
