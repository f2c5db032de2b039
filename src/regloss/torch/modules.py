"""``torch.nn.Module`` losses, drop-in for ``torch.nn``'s.

Each registered loss is a module named ``<CamelCase>Loss`` (and PyTorch's own name where
it has the loss: ``MSELoss``, ``L1Loss``, ``HuberLoss``, ``SmoothL1Loss``). The
constructor takes ``reduction`` and the loss's parameters as in ``torch.nn`` plus
``nan_policy`` and ``broadcast``; ``forward(input, target, weight=None, mask=None)``.

Examples
--------
>>> import torch
>>> from regloss.torch import HuberLoss
>>> criterion = HuberLoss(delta=0.5)
>>> criterion
HuberLoss(huber(delta=0.5), reduction='mean')
>>> criterion(torch.tensor([1.5, 2.0, 4.0]), torch.tensor([1.0, 2.0, 3.0]))
tensor(0.1667)
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from .._frontend import OPTION_DOC, module_names
from .._validate import check_nan_policy, check_reduction, prepare
from ..losses import Loss, resolve
from ..losses._base import _REGISTRY
from ._autograd import apply_loss

__all__ = ["RegressionLoss", *module_names()]


class RegressionLoss(torch.nn.Module):
    """A regloss loss as a module: ``RegressionLoss("huber", delta=2.0)``."""

    def __init__(
        self,
        loss: str | Loss,
        reduction: str = "mean",
        *,
        nan_policy: str = "propagate",
        broadcast: bool = False,
        **params: Any,
    ) -> None:
        super().__init__()
        self.loss = resolve(loss, params)
        self.reduction = check_reduction(reduction)
        self.nan_policy = check_nan_policy(nan_policy)
        self.broadcast = bool(broadcast)

    def forward(
        self,
        input: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss of ``(input, target)`` = (prediction, target)."""
        prep = prepare(
            torch,
            input,
            target,
            reduction=self.reduction,
            weight=weight,
            mask=mask,
            nan_policy=self.nan_policy,
            broadcast=self.broadcast,
        )
        return apply_loss(self.loss, prep)

    def extra_repr(self) -> str:
        extra = f"{self.loss!r}, reduction={self.reduction!r}"
        if self.nan_policy != "propagate":
            extra += f", nan_policy={self.nan_policy!r}"
        if self.broadcast:
            extra += ", broadcast=True"
        return extra


@functools.cache
def _module(registry_name: str, public_name: str) -> type[RegressionLoss]:
    cls = _REGISTRY[registry_name]

    def __init__(
        self: RegressionLoss,
        reduction: str = "mean",
        *,
        nan_policy: str = "propagate",
        broadcast: bool = False,
        **params: Any,
    ) -> None:
        RegressionLoss.__init__(
            self, registry_name, reduction, nan_policy=nan_policy, broadcast=broadcast, **params
        )

    doc = f"The {registry_name} loss as a ``torch.nn.Module``.\n\n{cls.__doc__}\n{OPTION_DOC}"
    return type(
        public_name,
        (RegressionLoss,),
        {"__init__": __init__, "__doc__": doc, "__module__": __name__, "__qualname__": public_name},
    )


def __getattr__(name: str) -> type[RegressionLoss]:
    names = module_names()
    if name in names:
        return _module(names[name], name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(module_names()))
