"""``regloss demo``: the seed walkthrough of Mean Squared Error, end to end."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from .. import numpy as rnp
from .._optional import pyplot
from .._typing import Reduction
from ..losses import available_losses, get_loss
from ._progress import steps
from ._table import table

__all__ = ["add_parser", "run"]

PREDICTION = np.array([1.5, 2.0, 4.0])
TARGET = np.array([1.0, 2.0, 3.0])


def _fmt(values: np.ndarray) -> str:
    if np.ndim(values) == 0:
        return f"{float(values):.4f}"
    return "[" + ", ".join(f"{v:.4f}" for v in np.atleast_1d(values)) + "]"


DEFAULT_OUT = "regloss-demo"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help="walk through MSE, then the outlier experiment on real data",
        description="The Mean Squared Error walkthrough: residuals, reductions, the gradient "
        "2/N (prediction - target) against PyTorch, one outlier against many small errors, "
        "then a small MLP trained with each loss on the diabetes data with gross outliers "
        "injected, and regloss diagnose on its residuals. Figures (every loss's rho and psi, "
        "the outlier experiment) go into --out.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a few seconds' version of the experiment (2 levels, 1 seed)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default=DEFAULT_OUT,
        help=f"folder for the figures (default ./{DEFAULT_OUT}); --no-figures skips them",
    )
    p.add_argument("--no-figures", action="store_true", help="write no figures")
    p.add_argument(
        "--plot", metavar="FILE.png", help="also save the experiment's figure at this path"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.plot and not args.plot.lower().endswith(".png"):
        raise ValueError(f"--plot must name a .png file, got {args.plot!r}")
    figures = not args.no_figures and _can_draw(args)
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
    written = _experiment(args, figures)
    if figures:
        written.insert(0, gallery(Path(args.out) / "losses.png"))
        print()
        print(f"figures written into {args.out}/:")
        for path in written:
            print(f"  {path.name}")
    return 0


def _can_draw(args: argparse.Namespace) -> bool:
    """matplotlib present: figures. Absent: one line naming the extra, and the demo goes on
    (an explicit --plot path is a request, so that fails instead)."""
    if importlib.util.find_spec("matplotlib") is not None:
        return True
    if args.plot:
        pyplot("--plot")  # raises MissingExtra: exit 2 with the extra's name
    print("(figures skipped: they need matplotlib: pip install 'regloss[plot]')\n")
    return False


def gallery(path: Path) -> Path:
    """ρ(r) and ψ(r) of every registered loss at its default parameters, in one figure."""
    plt = pyplot("the loss gallery")
    r = np.linspace(-8.0, 8.0, 1601)
    fig, (ax_rho, ax_psi) = plt.subplots(1, 2, figsize=(11, 4.6))
    colours = plt.get_cmap("tab20").colors
    for i, name in enumerate(available_losses()):
        try:
            spec = get_loss(name)
        except TypeError:  # a loss without defaults for every parameter
            continue
        style = {"color": colours[i % 20], "ls": ("-", "--", ":")[i % 3], "lw": 1.4}
        ax_rho.plot(r, spec.rho(r), label=repr(spec), **style)
        ax_psi.plot(r, spec.psi(r), **style)
    ax_rho.set_ylim(-0.2, 8.0)
    ax_psi.set_ylim(-3.0, 3.0)
    for ax, title in ((ax_rho, "loss rho(r)"), (ax_psi, "influence psi(r) = rho'(r)")):
        ax.set_title(title)
        ax.set_xlabel("residual r = prediction - target")
        ax.axhline(0, color="0.7", lw=0.8)
        ax.grid(alpha=0.3)
    fig.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle("every regloss loss at its default parameters")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


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


def _experiment(args: argparse.Namespace, figures: bool) -> list[Path]:
    if importlib.util.find_spec("torch") is None:
        print("6. The outlier experiment trains PyTorch models: pip install 'regloss[torch]'.")
        return []
    from ..diagnostics import diagnose
    from ..diagnostics._present import recommendation_text
    from ..experiment import LEVELS, LOSSES, SEEDS, outlier_experiment, plot

    quick: dict[str, Any] = {"levels": (0.0, 0.2), "seeds": (0,), "steps": 80} if args.quick else {}
    runs = len(LOSSES) * len(quick.get("levels", LEVELS)) * len(quick.get("seeds", SEEDS))
    with steps("6. training", runs) as advance:
        result = outlier_experiment(**quick, progress=advance)
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
    written = []
    if args.plot:
        plot(result, args.plot)
        print(f"   figure saved to {args.plot}")
    if figures:
        written.append(Path(args.out) / "outlier_experiment.png")
        written[-1].parent.mkdir(parents=True, exist_ok=True)
        plot(result, str(written[-1]))
    pred, target = result.diagnosis_data
    out = diagnose(pred, target)["outputs"][0]
    print()
    print(
        f"7. regloss diagnose on the MSE model's training residuals at "
        f"{100 * result.diagnosis_level:.0f}% outliers recommends: {recommendation_text(out)}"
    )
    sd = result.target_sd
    trained = ", ".join(
        f"{name} {k}={v:g} SD = {v * sd:.4g}"
        for name, params in LOSSES.items()
        for k, v in params.items()
    )
    print(
        f"   (step 6 trained on standardised targets, in units of the target SD {sd:.4g}: "
        f"{trained} in target units, the units diagnose reports)"
    )
    for reason in out["recommendation"]["reasons"]:
        print(f"   - {reason}")
    return written
