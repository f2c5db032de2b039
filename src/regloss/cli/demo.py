"""``regloss demo``: the seed walkthrough of Mean Squared Error, end to end."""

from __future__ import annotations

import argparse
import importlib.util

import numpy as np

from .. import numpy as rnp
from .._typing import Reduction
from ._table import table

__all__ = ["add_parser", "run"]

PREDICTION = np.array([1.5, 2.0, 4.0])
TARGET = np.array([1.0, 2.0, 3.0])


def _fmt(values: np.ndarray) -> str:
    if np.ndim(values) == 0:
        return f"{float(values):.4f}"
    return "[" + ", ".join(f"{v:.4f}" for v in np.atleast_1d(values)) + "]"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="walk through MSE, then the outlier experiment on real data")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a few seconds' version of the experiment (2 levels, 1 seed)",
    )
    p.add_argument("--plot", metavar="FILE.png", help="save the experiment's figure here")
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
    reductions: list[tuple[Reduction, str]] = [
        ("none", "r^2 per element"),
        ("sum", "sum of r^2"),
        ("mean", "sum of r^2 / N  (torch.nn.MSELoss)"),
        ("batchmean", "1/N sum_i ||r_i||^2 over samples"),
    ]
    for reduction, meaning in reductions:
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
    print()
    _experiment(args)
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


def _experiment(args: argparse.Namespace) -> None:
    if importlib.util.find_spec("torch") is None:
        print("6. The outlier experiment trains PyTorch models: pip install 'regloss[torch]'.")
        return
    if args.plot and not args.plot.lower().endswith(".png"):
        raise ValueError(f"--plot must name a .png file, got {args.plot!r}")
    from ..diagnostics import diagnose
    from ..experiment import outlier_experiment, plot

    quick = {"levels": (0.0, 0.2), "seeds": (0,), "steps": 80} if args.quick else {}
    result = outlier_experiment(**quick)  # type: ignore[arg-type]
    headers = ["loss", *(f"{100 * lv:.0f}% outliers" for lv in result.levels)]
    rows = []
    for name in result.losses:
        cells = [
            f"{np.mean(v):.1f} ± {np.std(v):.1f}" if len(v) > 1 else f"{v[0]:.1f}"
            for v in result.rmse[name]
        ]
        rows.append([name, *cells])
    print(
        table(
            headers,
            rows,
            title="6. the outlier experiment: clean-test RMSE of a small "
            "MLP on the diabetes data\n   (training targets corrupted by +10 SD outliers; "
            "mean ± SD over seeds)",
        )
    )
    print("   MSE is pulled by the outliers; MAE and Huber less; Tukey (redescending) not at all.")
    if args.plot:
        plot(result, args.plot)
        print(f"   figure saved to {args.plot}")
    pred, target = result.diagnosis_data
    rec = diagnose(pred, target)["outputs"][0]["recommendation"]
    params = ", ".join(f"{k}={v:.4g}" for k, v in rec["params"].items())
    print()
    print(
        f"7. regloss diagnose on the MSE model's training residuals at "
        f"{100 * result.diagnosis_level:.0f}% outliers recommends: {rec['loss']}({params})"
    )
    for reason in rec["reasons"]:
        print(f"   - {reason}")
