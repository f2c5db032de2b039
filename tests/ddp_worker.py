"""The cases of ``tests/test_distributed.py`` and the process that runs them under DDP.

Each case is a model, a batch split unevenly over the ranks, and a loss call; a rank runs
every case with ``reduction='global_mean'`` and with plain ``'mean'`` under
DistributedDataParallel (gloo, CPU) and saves the parameters' gradients and the loss."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as tf
from torch.nn.parallel import DistributedDataParallel

import regloss.torch.functional as rtf
from regloss.torch import AdaptiveRobustLoss, gaussian_nll_loss

#: rows per rank (uneven; world sizes 2 and 3 take the first 2 or 3)
ROWS = (7, 2, 4)


class Model(torch.nn.Module):
    """A linear model (two outputs) and, for the adaptive case, a learned loss (only then:
    DDP waits for every parameter's gradient before it averages a bucket)."""

    def __init__(self, adaptive: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(4, 2, dtype=torch.float64)
        if adaptive:
            self.ada = AdaptiveRobustLoss(num_dims=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.lin(x)
        return out


def _data(world: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(world)
    n = sum(ROWS[:world])
    y = torch.randn(n, 2, generator=g, dtype=torch.float64) * 2
    nan_y = y.clone()
    nan_y[torch.rand(n, 2, generator=g) < 0.3] = float("nan")
    nan_y[ROWS[0] : ROWS[0] + ROWS[1]] = float("nan")  # rank 1 has no label at all
    mask = torch.rand(n, 2, generator=g) < 0.7
    mask[ROWS[0] : ROWS[0] + ROWS[1]] = False  # rank 1 keeps nothing
    return {
        "x": torch.randn(n, 4, generator=g, dtype=torch.float64),
        "y": y,
        "nan_y": nan_y,
        "mask": mask,
        "w": torch.rand(n, generator=g, dtype=torch.float64) * 3,
    }


def _call(case: str, model: Any, d: dict[str, torch.Tensor], reduction: str) -> torch.Tensor:
    out = model(d["x"])
    y = d["y"]
    if case == "mse uneven":
        return rtf.mse_loss(out, y, reduction=reduction)
    if case == "huber weights":
        return rtf.huber_loss(out, y, reduction=reduction, weight=d["w"])
    if case == "cauchy mask, a rank with nothing kept":
        return rtf.cauchy_loss(out, y, reduction, mask=d["mask"])
    if case == "smooth_l1 NaN targets omitted, a rank with no label":
        return rtf.smooth_l1_loss(out, d["nan_y"], reduction=reduction, nan_policy="omit")
    if case == "gaussian_nll weights":
        var = tf.softplus(out[:, 1]) + 0.1
        return gaussian_nll_loss(out[:, 0], y[:, 0], var, reduction=reduction, weight=d["w"])
    if case == "adaptive":
        inner = model.module if isinstance(model, DistributedDataParallel) else model
        inner.ada.reduction = reduction
        loss: torch.Tensor = inner.ada(out, y)
        return loss
    raise AssertionError(case)


CASES = (
    "mse uneven",
    "huber weights",
    "cauchy mask, a rank with nothing kept",
    "smooth_l1 NaN targets omitted, a rank with no label",
    "gaussian_nll weights",
    "adaptive",
)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        k: (torch.zeros_like(p) if p.grad is None else p.grad.detach().clone())
        for k, p in model.named_parameters()
    }


def step(
    case: str, reduction: str, d: dict[str, torch.Tensor], wrap: Callable[[Model], Any]
) -> tuple[float, dict[str, torch.Tensor]]:
    """(loss value, gradients) of one training step of ``case``."""
    model = Model(adaptive=case == "adaptive")
    runner = wrap(model)
    loss = _call(case, runner, d, reduction)
    loss.backward()
    return float(loss.detach()), _grads(model)


def full_batch(case: str, world: int) -> tuple[float, dict[str, torch.Tensor]]:
    """One process, the whole batch, reduction='mean': the reference."""
    return step(case, "mean", _data(world), lambda m: m)


def _join(rank: int, world: int, port: int) -> None:
    """Join a gloo process group of ``world`` ranks on this machine."""
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)


def run(rank: int, world: int, port: int, out: str) -> None:
    """One rank: every case with 'global_mean' and 'mean'; results saved to ``out``."""
    _join(rank, world, port)
    try:
        d = _data(world)
        lo = sum(ROWS[:rank])
        mine = {k: v[lo : lo + ROWS[rank]] for k, v in d.items()}
        results = {}
        for case in CASES:
            for reduction in ("global_mean", "mean"):
                value, grads = step(case, reduction, mine, lambda m: DistributedDataParallel(m))
                total = torch.tensor(value, dtype=torch.float64)
                dist.all_reduce(total)  # the global loss: the ranks' values averaged
                results[case, reduction] = (float(total) / world, grads)
        if rank == 0:
            torch.save(results, out)
    finally:
        dist.destroy_process_group()


# --- regloss.torch.metrics under torch.distributed -------------------------------------------

#: updates per rank (uneven; rank 2 of 3 makes none), rows per update
METRIC_UPDATES = (3, 1, 0)
METRIC_ROWS = 40


def metric_data(world: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + world)
    n = sum(METRIC_UPDATES[:world]) * METRIC_ROWS
    t = torch.randn(n, 2, generator=g, dtype=torch.float64) * 3 + 1e6
    p = t + torch.randn(n, 2, generator=g, dtype=torch.float64)
    w = torch.rand(n, generator=g, dtype=torch.float64)
    return p, t, w


def metrics() -> dict[str, Any]:
    from regloss.torch import metrics as rm

    return {
        name: getattr(rm, name)(num_outputs=2, multioutput="raw_values")
        for name in (
            "MeanSquaredError",
            "RootMeanSquaredError",
            "MeanAbsoluteError",
            "R2Score",
            "ExplainedVariance",
            "MaxError",
            "MedianAbsoluteError",
        )
    }


def run_metrics(rank: int, world: int, port: int, out: str) -> None:
    """One rank: its uneven share of updates, then compute() (which gathers every rank)."""
    _join(rank, world, port)
    try:
        p, t, w = metric_data(world)
        first = sum(METRIC_UPDATES[:rank])
        results = {}
        for name, m in metrics().items():
            for u in range(METRIC_UPDATES[rank]):
                lo = (first + u) * METRIC_ROWS
                m.update(
                    p[lo : lo + METRIC_ROWS], t[lo : lo + METRIC_ROWS], w[lo : lo + METRIC_ROWS]
                )
            results[name] = m.compute()
        torch.save(results, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()
