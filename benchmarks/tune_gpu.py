"""Block size, warps and select hoisting of the generated Triton kernels, measured on a CUDA
GPU (issue 9).

    python benchmarks/tune_gpu.py [--out FILE] [--log2 26]

For each (BLOCK, num_warps, hoisting) setting: the profiler's device time of a training step
(forward kernel with its reduction, the backward's device-side scaling) for the robust
losses at N = 2^--log2, and the bytes a step must move over that time as a fraction of copy
bandwidth. ``regloss._kernels.gpu.BLOCK``, ``NUM_WARPS`` and ``trace.HOISTED`` (empty: each
side of a select evaluates its own division or function) are set per row; the defaults come
from this table. Then the host's side: a small step with the backward's multiplication by
the incoming gradient as the Triton kernel against PyTorch's ``mul_``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_gpu
from regloss._kernels import gpu, trace
from regloss.torch import functional as RF

HOISTED = trace.HOISTED
# (BLOCK, warps, hoisting); defaults first
CONFIGS = [(1024, 4, True), (1024, 4, False), (2048, 4, True), (2048, 8, True), (4096, 8, True)]
CASES = [
    ("quantile", torch.float32),
    ("pseudo_huber", torch.float32),
    ("tukey", torch.float32),
    ("cauchy", torch.float32),
    ("geman_mcclure", torch.float32),
    ("log_cosh", torch.float32),
    ("welsch", torch.float32),
    ("fair", torch.float32),
    ("barron", torch.float32),
    ("cauchy", torch.bfloat16),
]


def host_side(lines: list[str]) -> None:
    """A small step's time with the backward's multiplication as the Triton kernel (decided
    on the device) and as PyTorch's mul_ (always a pass): the host's launch cost of each."""
    lines.append("")
    lines.append("| loss | N | rl_scale ms | mul_ ms | rl_scale / mul_ |")
    lines.append("|---|---|---|---|---|")
    real = gpu.scale_into
    for k in (10, 16, 20):
        x = torch.randn(1 << k, device="cuda", requires_grad=True)
        y = torch.randn(1 << k, device="cuda")
        step = bench_gpu._step(RF.cauchy_loss, x, y)

        def torch_mul(step: Callable[[], None] = step) -> None:
            gpu.scale_into = lambda g, s: g.mul_(s)
            try:
                step()
            finally:
                gpu.scale_into = real

        a, b = bench_gpu._time([step, torch_mul], 15)
        lines.append(f"| cauchy | 2^{k} | {a:.3f} | {b:.3f} | {a / b:.2f} |")
        print(lines[-1], flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--log2", type=int, default=26)
    parser.add_argument("--default-only", action="store_true", help="only the defaults' row")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("tune_gpu.py needs a CUDA GPU", file=sys.stderr)
        return 2
    bw = bench_gpu.copy_bandwidth()
    n = 1 << args.log2
    lines = [f"copy bandwidth {bw / 1e9:.0f} GB/s; N = 2^{args.log2}; device ms (traffic/copy)"]
    head = " | ".join(f"{k} {str(d)[6:]}" for k, d in CASES)
    lines.append(f"| BLOCK | warps | hoisting | {head} |")
    lines.append("|---" * (len(CASES) + 3) + "|")
    data = {d: (torch.randn(n, device="cuda", dtype=d), torch.randn(n, device="cuda", dtype=d))
            for d in {d for _, d in CASES}}  # fmt: skip
    for block, warps, hoist in CONFIGS[:1] if args.default_only else CONFIGS:
        gpu.BLOCK, gpu.NUM_WARPS = block, warps
        trace.HOISTED = HOISTED if hoist else frozenset()
        gpu._MODULES.clear()  # the kernels are generated again from the (un)hoisted graphs
        cells = []
        for name, dtype in CASES:
            x, y = data[dtype]
            x = x.detach().requires_grad_()
            ms = bench_gpu.device_ms(bench_gpu._step(getattr(RF, f"{name}_loss"), x, y))
            # prediction and target read, the gradient written (half: ψ in float32 too)
            traffic = n * (3 * x.element_size() + (0 if dtype == torch.float32 else 8))
            cells.append(f"{ms:.3f} ({traffic / (ms / 1e3) / bw:.2f})")
        row = " | ".join(cells)
        lines.append(f"| {block} | {warps} | {'on' if hoist else 'off'} | {row} |")
        print(lines[-1], flush=True)
    trace.HOISTED, gpu.BLOCK, gpu.NUM_WARPS = HOISTED, CONFIGS[0][0], CONFIGS[0][1]
    gpu._MODULES.clear()
    host_side(lines)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
