"""The outlier experiment of ``regloss demo``: MSE is pulled by gross outliers, robust losses
are not — measured on real data.

A small PyTorch MLP is trained on the diabetes data (442 patients; Efron et al. 2004, via
scikit-learn; shipped in ``regloss/data``) after a fraction of the *training* targets is
corrupted by gross outliers (the target plus 10 standard deviations, seeded), once per loss
and corruption level; the score is the RMSE on the clean test set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

__all__ = ["ExperimentResult", "load_diabetes", "outlier_experiment"]

LOSSES: dict[str, dict[str, Any]] = {
    "mse": {},
    "mae": {},
    "huber": {"delta": 1.0},  # in standardized target units
    "tukey": {"c": 4.685},
}


#: Small and regularised on purpose: with more capacity every loss but a redescending one
#: memorises the corrupted targets, and the comparison measures overfitting instead.
HIDDEN = 16
WEIGHT_DECAY = 1e-2


def load_diabetes() -> tuple[np.ndarray, np.ndarray]:
    """(features (442, 10), target (442,)) of the diabetes data shipped with regloss."""
    text = resources.files("regloss.data").joinpath("diabetes.csv").read_text()
    table = np.loadtxt(text.splitlines()[1:], delimiter=",")
    return table[:, :-1], table[:, -1]


@dataclass
class ExperimentResult:
    levels: list[float]
    losses: list[str]
    #: rmse[loss][level index] -> list over seeds, in the target's units
    rmse: dict[str, list[list[float]]]
    #: (prediction, corrupted target) on the training set of the MSE model at the level
    #: used for the diagnosis
    diagnosis_level: float
    diagnosis_data: tuple[np.ndarray, np.ndarray]
    #: the training targets' standard deviation: models train on targets divided by it, so
    #: a loss constant c there is c x target_sd in the target's units
    target_sd: float = 1.0

    def mean(self, loss: str) -> list[float]:
        return [float(np.mean(v)) for v in self.rmse[loss]]


def _train(x: Any, y: Any, name: str, params: dict[str, Any], seed: int, steps: int) -> Any:
    import torch

    from .torch import functional as rtf

    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, 1)
    ).double()
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=WEIGHT_DECAY)
    for _ in range(steps):
        opt.zero_grad()
        loss = rtf.loss(name, model(x)[:, 0], y, **params)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    return model


LEVELS = (0.0, 0.1, 0.2, 0.3)  # shares of training targets corrupted
SEEDS = (0, 1, 2)


def outlier_experiment(
    levels: tuple[float, ...] = LEVELS,
    seeds: tuple[int, ...] = SEEDS,
    steps: int = 200,
    diagnosis_level: float = 0.2,
    progress: Callable[[str], None] | None = None,
) -> ExperimentResult:
    """Train with each loss at each corruption level; see the module docstring.
    ``progress(what)`` is called after each model is trained.

    Runs on one CPU thread (restored afterwards): the models are tiny, so torch's default
    of one thread per core only adds synchronisation, and on a busy machine it thrashes
    (the whole demo on 2 cores beside two busy processes: 85.0 s with 2 threads, 31.3 s
    with 1; 15.5 s idle).
    """
    from ._optional import require

    torch = require("torch", "the outlier experiment")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _experiment(levels, seeds, steps, diagnosis_level, progress)
    finally:
        torch.set_num_threads(threads)


def _experiment(
    levels: tuple[float, ...],
    seeds: tuple[int, ...],
    steps: int,
    diagnosis_level: float,
    progress: Callable[[str], None] | None,
) -> ExperimentResult:
    import torch

    features, target = load_diabetes()
    rng = np.random.default_rng(2019)
    order = rng.permutation(target.size)
    train, test = order[:332], order[332:]
    mu, sd = features[train].mean(0), features[train].std(0)
    ymu, ysd = target[train].mean(), target[train].std()
    x = torch.tensor((features - mu) / sd)
    y = torch.tensor((target - ymu) / ysd)
    rmse: dict[str, list[list[float]]] = {name: [] for name in LOSSES}
    diag: tuple[np.ndarray, np.ndarray] | None = None
    for level in levels:
        per_loss: dict[str, list[float]] = {name: [] for name in LOSSES}
        for seed in seeds:
            y_train = y[train].clone()
            bad = np.random.default_rng(1000 + seed).random(train.size) < level
            y_train[torch.tensor(bad)] += 10.0  # gross outliers: +10 standard deviations
            for name, params in LOSSES.items():
                model = _train(x[train], y_train, name, params, seed, steps)
                if progress is not None:
                    progress(f"{name}, {100 * level:.0f}% outliers, seed {seed}")
                with torch.no_grad():
                    pred = model(x[test])[:, 0]
                    err = float(torch.sqrt(torch.mean((pred - y[test]) ** 2))) * ysd
                per_loss[name].append(err)
                if name == "mse" and level == diagnosis_level and seed == seeds[0]:
                    with torch.no_grad():
                        fit = model(x[train])[:, 0].numpy() * ysd + ymu
                    diag = (fit, y_train.numpy() * ysd + ymu)
        for name in LOSSES:
            rmse[name].append(per_loss[name])
    if diag is None:
        raise ValueError(f"diagnosis_level {diagnosis_level} is not one of the levels {levels}")
    return ExperimentResult(list(levels), list(LOSSES), rmse, diagnosis_level, diag, float(ysd))


def plot(result: ExperimentResult, path: str) -> None:
    """Clean-test RMSE against the corruption level, one line per loss, as a PNG."""
    from ._optional import pyplot

    plt = pyplot("the experiment's figure")

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    pct = [100 * lv for lv in result.levels]
    for name in result.losses:
        ax.plot(pct, result.mean(name), marker="o", label=name)
    ax.set_xlabel("training targets corrupted by gross outliers (%)")
    ax.set_ylabel("RMSE on the clean test set")
    ax.set_title("diabetes data, small MLP: MSE is pulled by outliers")
    ax.legend()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
