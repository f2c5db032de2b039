"""Memory held by kept loss tensors: regloss.torch against torch.nn.functional.

Two training-loop patterns, each contender in a fresh subprocess (RSS deltas of one
process do not mix with another's allocator state):

* ``kept-20``: 20 losses of an 8 MB model output, each kept after its backward
  (``history.append(loss)``);
* ``mlp-loop``: a small MLP trained for N steps with ``history.append(loss)``.

Prints the RSS growth in MB and the ratio regloss / torch. Run:
``python benchmarks/bench_memory.py [--steps 1000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import gc, json, os, sys
import torch
torch.set_num_threads(1)
torch.manual_seed(0)
which, loss_name, scenario, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if which == "torch":
    import torch.nn.functional as F
    fn = {"mse": F.mse_loss, "huber": F.huber_loss}[loss_name]
else:
    from regloss.torch import functional as RF
    fn = {"mse": RF.mse_loss, "huber": RF.huber_loss, "cauchy": RF.cauchy_loss}[loss_name]

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

history = []
if scenario == "kept-20":
    # One scalar parameter; each step's 8 MB output is w * base. After backward PyTorch
    # frees what it saved, so a kept loss should pin nothing of the size of the output.
    target = torch.randn(1 << 21)
    w = torch.ones((), requires_grad=True)
    fn(w * torch.randn(1 << 21), target).backward()
    gc.collect()
    before = rss_mb()
    for _ in range(20):
        loss = fn(w * torch.randn(1 << 21), target)
        loss.backward()
        history.append(loss)
        del loss
else:
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 512)
    )
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    xb, yb = torch.randn(512, 64), torch.randn(512, 512)
    for _ in range(5):
        opt.zero_grad(); fn(model(xb), yb).backward(); opt.step()
    gc.collect()
    before = rss_mb()
    for _ in range(steps):
        opt.zero_grad()
        loss = fn(model(xb), yb)
        loss.backward()
        opt.step()
        history.append(loss)
gc.collect()
print(json.dumps({"growth_mb": rss_mb() - before}))
"""


def run(which: str, loss: str, scenario: str, steps: int) -> float:
    # A fixed mmap threshold: glibc otherwise raises it after large frees and keeps freed
    # 8 MB blocks in the heap, so RSS would count memory that nothing holds.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, which, loss, scenario, str(steps)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["growth_mb"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    print(f"{'scenario':10s} {'loss':7s} {'regloss MB':>11s} {'torch MB':>9s}")
    for scenario in ("kept-20", "mlp-loop"):
        for loss in ("mse", "huber"):
            ours = run("regloss", loss, scenario, args.steps)
            theirs = run("torch", loss, scenario, args.steps)
            print(f"{scenario:10s} {loss:7s} {ours:11.1f} {theirs:9.1f}")


if __name__ == "__main__":
    main()
