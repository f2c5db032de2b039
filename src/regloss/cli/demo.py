"""``regloss demo``: the seed walkthrough of Mean Squared Error, end to end."""

from __future__ import annotations

import argparse
import importlib.util

import numpy as np

from .. import numpy as rnp
from ._table import table

__all__ = ["add_parser", "run"]

PREDICTION = np.array([1.5, 2.0, 4.0])
TARGET = np.array([1.0, 2.0, 3.0])


def _fmt(values: np.ndarray) -> str:
    if np.ndim(values) == 0:
        return f"{float(values):.4f}"
    return "[" + ", ".join(f"{v:.4f}" for v in np.atleast_1d(values)) + "]"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="walk through MSE on the seed example")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print("regloss demo: Mean Squared Error, step by step\n")
    r = PREDICTION - TARGET
    print(
        table(
            ["i", "prediction", "target", "residual r", "r^2"],
            [
                [i, f"{p:.4f}", f"{t:.4f}", f"{d:.4f}", f"{d * d:.4f}"]
                for i, (p, t, d) in enumerate(zip(PREDICTION, TARGET, r))
            ],
            title="1. residuals r = prediction - target",
        )
    )
    rows = []
    for reduction, meaning in [
        ("none", "r^2 per element"),
        ("sum", "sum of r^2"),
        ("mean", "sum of r^2 / N  (torch.nn.MSELoss)"),
        ("batchmean", "1/N sum_i ||r_i||^2 over samples"),
    ]:
        rows.append([reduction, _fmt(rnp.mse(PREDICTION, TARGET, reduction=reduction)), meaning])
    print()
    print(table(["reduction", "loss", "meaning"], rows, title="2. the loss under each reduction"))
    value, grad = rnp.value_and_grad("mse", PREDICTION, TARGET)
    manual = 2.0 / r.size * r
    print()
    print(
        table(
            ["quantity", "value"],
            [
                ["MSE (mean)", f"{value:.4f}"],
                ["gradient dL/dprediction (regloss)", _fmt(grad)],
                ["manual 2/N (prediction - target)", _fmt(manual)],
                ["equal", str(bool(np.allclose(grad, manual)))],
            ],
            title="3. the gradient 2/N (prediction - target)",
        )
    )
    print()
    _torch_comparison(value, grad)
    print()
    _outliers()
    return 0


def _torch_comparison(value: float, grad: np.ndarray) -> None:
    if importlib.util.find_spec("torch") is None:
        print("4. PyTorch is not installed: pip install 'regloss[torch]' to compare with it.")
        return
    import torch

    from ..torch import functional as rtf

    pred = torch.tensor(PREDICTION, requires_grad=True)
    pred_ref = torch.tensor(PREDICTION, requires_grad=True)
    target = torch.tensor(TARGET)
    ours = rtf.mse_loss(pred, target)
    ours.backward()  # type: ignore[no-untyped-call]
    ref = torch.nn.MSELoss()(pred_ref, target)
    ref.backward()
    assert pred.grad is not None and pred_ref.grad is not None
    manual = 2.0 / len(TARGET) * (pred.detach() - target)
    rows = [
        ["regloss.torch.mse_loss", f"{ours.item():.4f}", _fmt(pred.grad.numpy())],
        ["torch.nn.MSELoss + autograd", f"{ref.item():.4f}", _fmt(pred_ref.grad.numpy())],
        ["manual 2/N (prediction - target)", f"{value:.4f}", _fmt(manual.numpy())],
    ]
    same = (
        torch.allclose(ours, ref)
        and torch.allclose(pred.grad, pred_ref.grad)
        and torch.allclose(pred.grad, manual)
        and bool(np.allclose(grad, manual.numpy()))
    )
    print(
        table(
            ["implementation", "loss", "gradient"],
            rows,
            title="4. regloss against PyTorch (torch.allclose)",
        )
    )
    print(f"   loss and gradient agree: {same}")


def _outliers() -> None:
    one_big = np.array([10.0])
    ten_small = np.ones(10)
    rows = []
    for name, kw in [("mse", {}), ("mae", {}), ("huber", {"delta": 1.0})]:
        big = float(rnp.loss(name, one_big, np.zeros(1), reduction="sum", **kw))
        small = float(rnp.loss(name, ten_small, np.zeros(10), reduction="sum", **kw))
        rows.append([name, f"{big:.1f}", f"{small:.1f}", f"{big / small:.1f}x"])
    print(
        table(
            ["loss", "one error of 10", "ten errors of 1", "ratio"],
            rows,
            title="5. one outlier against many small errors (summed loss)",
        )
    )
    print(
        "   Squared error charges one error of 10 ten times as much as ten errors of 1,\n"
        "   so a single outlier dominates MSE. MAE charges them equally; Huber (delta=1)\n"
        "   is quadratic for small errors and linear beyond delta, in between."
    )
