"""Gaussian and Laplace negative log-likelihoods for PyTorch (third input: the predicted
variance or scale), with analytic backward and double backward.

``gaussian_nll_loss`` keeps ``torch.nn.functional.gaussian_nll_loss``'s signature
``(input, target, var, full=False, eps=1e-6, reduction='mean')`` and adds regloss's
keywords (``log_var``, ``beta``, ``weight``, ``mask``, ``nan_policy``, ``broadcast``).

Examples
--------
>>> from typing import Any

import torch
>>> from regloss.torch import gaussian_nll_loss
>>> pred, target = torch.tensor([1.5, 2.0, 4.0]), torch.tensor([1.0, 2.0, 3.0])
>>> gaussian_nll_loss(pred, target, torch.ones(3))  # MSE / 2 with unit variance
tensor(0.2083)
"""

from __future__ import annotations

from typing import Any

import torch

from .._reduction import TORCH_REDUCTIONS, Options, check_reduction, get_reduction
from .._validate import check_nan_policy
from ..losses import Form, GaussianNLL, LaplaceNLL, NLLLoss, form_of
from ._routes import call

__all__ = ["GaussianNLLLoss", "LaplaceNLLLoss", "gaussian_nll_loss", "laplace_nll_loss"]


_FORMS: dict[tuple[Any, ...], Form] = {}


def _form(cls: type[NLLLoss], log_input: bool, **params: Any) -> Form:
    """The form of ``cls(**params)`` with its scale input or its log, cached (constructing
    and checking a loss costs microseconds on every step otherwise)."""
    key = (cls, log_input, *params.items())
    try:
        found = _FORMS.get(key)
    except TypeError:  # an unhashable parameter: its error comes from the constructor
        found = None
    if found is None:
        found = form_of(cls(**params), log_input)
        if len(_FORMS) > 256:
            _FORMS.clear()
        _FORMS[key] = found
    return found


def _evaluate(
    spec: NLLLoss | Form,
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
    options = Options(
        get_reduction(reduction, TORCH_REDUCTIONS), weight, mask, nan_policy, broadcast
    )
    form = spec if isinstance(spec, Form) else form_of(spec, log_input)
    return call(form, (input, target, scale), options)


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
    form = _form(GaussianNLL, log_var, full=full, eps=eps, beta=beta)
    return _evaluate(
        form, input, target, var, log_var, reduction, weight, mask, nan_policy, broadcast
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
    form = _form(LaplaceNLL, log_scale, eps=eps)
    return _evaluate(
        form, input, target, scale, log_scale, reduction, weight, mask, nan_policy, broadcast
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
