"""Each registered loss written by hand from torch operations, as a user would without
regloss: the naive formula, differentiated by autograd. ``bench_losses.py`` measures
regloss against these (the issue's "hand composition")."""

from __future__ import annotations

from collections.abc import Callable

import torch


def _barron(r: torch.Tensor, alpha: float = 1.0, scale: float = 1.0) -> torch.Tensor:
    b = abs(alpha - 2)
    return b / alpha * (((r / scale) ** 2 / b + 1) ** (alpha / 2) - 1)


#: name -> f(r) elementwise, default parameters of regloss's definitions
ELEMENTWISE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mse": lambda r: r**2,
    "mae": torch.abs,
    "huber": lambda r: torch.where(r.abs() <= 1.0, 0.5 * r**2, r.abs() - 0.5),
    "smooth_l1": lambda r: torch.where(r.abs() < 1.0, 0.5 * r**2, r.abs() - 0.5),
    "pseudo_huber": lambda r: torch.sqrt(1 + r**2) - 1,
    "log_cosh": lambda r: torch.log(torch.cosh(r)),
    "quantile": lambda r: torch.maximum(0.5 * r, -0.5 * r),
    "cauchy": lambda r: 2.385**2 / 2 * torch.log1p((r / 2.385) ** 2),
    "geman_mcclure": lambda r: 3.787**2 / 2 * (r / 3.787) ** 2 / (1 + (r / 3.787) ** 2),
    "welsch": lambda r: 2.985**2 / 2 * (1 - torch.exp(-((r / 2.985) ** 2))),
    "tukey": lambda r: torch.where(
        r.abs() <= 4.685, 4.685**2 / 6 * (1 - (1 - (r / 4.685) ** 2) ** 3), 4.685**2 / 6
    ),
    "fair": lambda r: 1.3998**2 * (r.abs() / 1.3998 - torch.log1p(r.abs() / 1.3998)),
    "barron": _barron,
}


def loss(name: str, **params: float) -> Callable[..., torch.Tensor]:
    """``f(prediction, target, reduction='mean')`` for the hand-written loss ``name``
    (``params``: Barron's alpha and scale)."""
    rho = ELEMENTWISE[name]

    def f(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        v = rho(x - y, **params)
        return v.mean() if reduction == "mean" else v.sum()

    f.__name__ = f"hand_{name}"
    return f
