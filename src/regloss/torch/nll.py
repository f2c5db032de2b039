"""Gaussian and Laplace negative log-likelihoods for PyTorch (third input: the predicted
variance or scale), with analytic backward and double backward.

``gaussian_nll_loss`` keeps ``torch.nn.functional.gaussian_nll_loss``'s signature
``(input, target, var, full=False, eps=1e-6, reduction='mean')`` and adds regloss's
keywords (``log_var``, ``beta``, ``weight``, ``mask``, ``nan_policy``, ``broadcast``).

Examples
--------
>>> import torch
>>> from regloss.torch import gaussian_nll_loss
>>> pred, target = torch.tensor([1.5, 2.0, 4.0]), torch.tensor([1.0, 2.0, 3.0])
>>> gaussian_nll_loss(pred, target, torch.ones(3))  # MSE / 2 with unit variance
tensor(0.2083)
"""

from __future__ import annotations

import torch

from .._validate import (
    TORCH_REDUCTIONS,
    check_nan_policy,
    check_reduction,
    check_scale_input,
    check_tensor,
    prepare,
)
from ..losses._nll import GaussianNLL, LaplaceNLL, NLLLoss
from ._autograd import apply_nll
from ._distributed import GLOBAL_MEAN, global_mean
from ._lean import nll_kernel_call

__all__ = ["GaussianNLLLoss", "LaplaceNLLLoss", "gaussian_nll_loss", "laplace_nll_loss"]


def _evaluate(
    spec: NLLLoss,
    input: torch.Tensor,
    target: torch.Tensor,
    scale: torch.Tensor | float,
    log_input: bool,
    reduction: str,
    weight: torch.Tensor | None,
    mask: torch.Tensor | None,
    nan_policy: str,
    broadcast: bool,
) -> torch.Tensor:
    if reduction == GLOBAL_MEAN:

        def evaluate(red: str) -> torch.Tensor:
            return _evaluate(
                spec, input, target, scale, log_input, red, weight, mask, nan_policy, broadcast
            )

        return global_mean(evaluate, input, target, weight, mask, nan_policy, broadcast)
    if mask is None and nan_policy == "propagate":
        # the lean door: the generated kernel after metadata-only checks (torch/_lean.py)
        out = nll_kernel_call(spec, input, target, scale, log_input, weight, reduction)
        if out is not None:
            return out
    check_tensor("input", input)
    check_tensor("target", target)
    prep = prepare(
        torch,
        input,
        target,
        reduction=reduction,
        weight=weight,
        mask=mask,
        nan_policy=nan_policy,
        broadcast=broadcast,
    )
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        # a Python number (torch accepts var=0.5): one value for every element
        scale = torch.full((), float(scale), dtype=prep.prediction.dtype, device=input.device)
    check_tensor(spec.scale_input, scale)
    s = check_scale_input(torch, spec.scale_input, scale, prep.shape, log_input=log_input)
    return apply_nll(spec, prep, s, log_input)


def gaussian_nll_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    var: torch.Tensor | float,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
    *,
    log_var: bool = False,
    beta: float = 0.0,
    weight: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    nan_policy: str = "propagate",
    broadcast: bool = False,
) -> torch.Tensor:
    """Gaussian NLL of ``(input, target)`` = (prediction, target) with predicted ``var``
    (its logarithm with ``log_var=True``); see :class:`regloss.losses.GaussianNLL`."""
    spec = GaussianNLL(full=full, eps=eps, beta=beta)
    return _evaluate(
        spec, input, target, var, log_var, reduction, weight, mask, nan_policy, broadcast
    )


def laplace_nll_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    scale: torch.Tensor | float,
    reduction: str = "mean",
    *,
    eps: float = 1e-6,
    log_scale: bool = False,
    weight: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    nan_policy: str = "propagate",
    broadcast: bool = False,
) -> torch.Tensor:
    """Laplace NLL log(2b) + |r|/b with predicted scale b (its log with ``log_scale=True``)."""
    spec = LaplaceNLL(eps=eps)
    return _evaluate(
        spec, input, target, scale, log_scale, reduction, weight, mask, nan_policy, broadcast
    )


class _NLLModule(torch.nn.Module):
    """Shared module body: the spec, the options, and ``forward(input, target, scale_input,
    weight=None, mask=None)``."""

    def __init__(
        self, spec: NLLLoss, reduction: str, log_input: bool, nan_policy: str, broadcast: bool
    ) -> None:
        super().__init__()
        self.spec = spec
        self.reduction = check_reduction(reduction, TORCH_REDUCTIONS)
        self.nan_policy = check_nan_policy(nan_policy)
        self.log_input, self.broadcast = bool(log_input), bool(broadcast)

    def forward(
        self,
        input: torch.Tensor,
        target: torch.Tensor,
        scale: torch.Tensor,
        weight: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return _evaluate(
            self.spec,
            input,
            target,
            scale,
            self.log_input,
            self.reduction,
            weight,
            mask,
            self.nan_policy,
            self.broadcast,
        )

    def extra_repr(self) -> str:
        flag = f"log_{self.spec.scale_input}"
        return f"{self.spec!r}, reduction={self.reduction!r}, {flag}={self.log_input}"


class GaussianNLLLoss(_NLLModule):
    """Drop-in for ``torch.nn.GaussianNLLLoss``; ``forward(input, target, var, weight=None,
    mask=None)``."""

    def __init__(
        self,
        *,
        full: bool = False,
        eps: float = 1e-6,
        reduction: str = "mean",
        log_var: bool = False,
        beta: float = 0.0,
        nan_policy: str = "propagate",
        broadcast: bool = False,
    ) -> None:
        super().__init__(
            GaussianNLL(full=full, eps=eps, beta=beta), reduction, log_var, nan_policy, broadcast
        )


class LaplaceNLLLoss(_NLLModule):
    """Laplace NLL as a module; ``forward(input, target, scale, weight=None, mask=None)``."""

    def __init__(
        self,
        *,
        eps: float = 1e-6,
        reduction: str = "mean",
        log_scale: bool = False,
        nan_policy: str = "propagate",
        broadcast: bool = False,
    ) -> None:
        super().__init__(LaplaceNLL(eps=eps), reduction, log_scale, nan_policy, broadcast)
