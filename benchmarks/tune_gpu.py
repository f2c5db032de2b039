"""Block size and warps of the generated Triton kernels, measured on a CUDA GPU (issue 9).

    python benchmarks/tune_gpu.py [--out FILE] [--log2 26]

For each (BLOCK, num_warps) setting: the profiler's device time of a training step
(forward kernel, the partial sums' reduction, backward multiplication) for a few losses at
N = 2^26, and the bytes a step must move over that time as a fraction of copy bandwidth.
``regloss._kernels.gpu.BLOCK`` and ``NUM_WARPS`` are set per row; the defaults come from
this table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_gpu
from regloss._kernels import gpu
from regloss.torch import functional as RF

CONFIGS = [(1024, 4), (2048, 4), (2048, 8), (4096, 4), (4096, 8), (8192, 8)]  # defaults first
CASES = [
    ("quantile", torch.float32),
    ("tukey", torch.float32),
    ("cauchy", torch.float32),
    ("log_cosh", torch.float32),
    ("welsch", torch.float32),
    ("fair", torch.float32),
    ("barron", torch.float32),
    ("quantile", torch.bfloat16),
    ("cauchy", torch.bfloat16),
]


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
    lines.append("| BLOCK | warps | " + " | ".join(f"{k} {str(d)[6:]}" for k, d in CASES) + " |")
    lines.append("|---" * (len(CASES) + 2) + "|")
    data = {d: (torch.randn(n, device="cuda", dtype=d), torch.randn(n, device="cuda", dtype=d))
            for d in {d for _, d in CASES}}  # fmt: skip
    for block, warps in CONFIGS[:1] if args.default_only else CONFIGS:
        gpu.BLOCK, gpu.NUM_WARPS = block, warps
        cells = []
        for name, dtype in CASES:
            x, y = data[dtype]
            x = x.detach().requires_grad_()
            ms = bench_gpu.device_ms(bench_gpu._step(getattr(RF, f"{name}_loss"), x, y))
            traffic = n * (3 * x.element_size() + 2 * 4)
            cells.append(f"{ms:.3f} ({traffic / (ms / 1e3) / bw:.2f})")
        lines.append(f"| {block} | {warps} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
