"""PyTorch front-end: functional losses and ``nn.Module``s with analytic autograd.

``from regloss.torch import mse_loss, HuberLoss`` gives the functional
(:mod:`regloss.torch.functional`) and module (:mod:`regloss.torch.modules`) forms of every
registered loss.
"""

from __future__ import annotations

from typing import Any

try:
    import torch as _torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without torch installed
    raise ImportError(
        "regloss.torch needs PyTorch: pip install 'regloss[torch]' (or install torch yourself)"
    ) from exc

from . import functional, modules
from .adaptive import AdaptiveRobustLoss
from .functional import loss
from .modules import RegressionLoss
from .nll import GaussianNLLLoss, LaplaceNLLLoss, gaussian_nll_loss, laplace_nll_loss

__all__ = [
    "AdaptiveRobustLoss",
    "GaussianNLLLoss",
    "LaplaceNLLLoss",
    "RegressionLoss",
    "functional",
    "gaussian_nll_loss",
    "laplace_nll_loss",
    "loss",
    "modules",
]


def __getattr__(name: str) -> Any:
    if name in functional.__dir__():
        return getattr(functional, name)
    if name in modules.__dir__():
        return getattr(modules, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(functional.__dir__()) | set(modules.__dir__()))
