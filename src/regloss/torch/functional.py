"""Functional PyTorch losses, drop-in for ``torch.nn.functional``'s.

Each registered loss is available as ``<name>_loss`` (and under PyTorch's own name where
it has the loss: ``mse_loss``, ``l1_loss``, ``huber_loss``, ``smooth_l1_loss``), with the
signature ``f(input, target, reduction='mean', *, <loss parameters>, weight=None,
mask=None, nan_policy='propagate', broadcast=False)``.

Unlike ``torch.nn.functional``, a target whose shape differs from the input's is an error
(``broadcast=True`` opts in), integer inputs are a TypeError, float16/bfloat16 inputs are
computed in float32 and the loss comes back as float32.

Examples
--------
>>> import torch
>>> from regloss.torch import functional as RF
>>> pred = torch.tensor([1.5, 2.0, 4.0], requires_grad=True)
>>> loss = RF.mse_loss(pred, torch.tensor([1.0, 2.0, 3.0]))
>>> loss.backward()
>>> round(loss.item(), 4), pred.grad
(0.4167, tensor([0.3333, 0.0000, 0.6667]))
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch

from .._frontend import OPTION_DOC, loss_signature_params, torch_names
from .._validate import prepare
from ..losses import Loss, resolve
from ..losses._base import _REGISTRY
from ._autograd import apply_loss

__all__ = ["loss", *torch_names()]


def loss(
    name_or_loss: str | Loss,
    input: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    *,
    weight: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    nan_policy: str = "propagate",
    broadcast: bool = False,
    **params: Any,
) -> torch.Tensor:
    """The loss ``name_or_loss`` of ``(input, target)`` = (prediction, target)."""
    spec = resolve(name_or_loss, params)
    return _evaluate(spec, input, target, reduction, weight, mask, nan_policy, broadcast)


def _evaluate(
    spec: Loss,
    input: torch.Tensor,
    target: torch.Tensor,
    reduction: str,
    weight: torch.Tensor | None,
    mask: torch.Tensor | None,
    nan_policy: str,
    broadcast: bool,
) -> torch.Tensor:
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
    return apply_loss(spec, prep)


loss.__doc__ = (loss.__doc__ or "") + OPTION_DOC


@functools.cache
def _function(registry_name: str, public_name: str) -> Callable[..., torch.Tensor]:
    cls = _REGISTRY[registry_name]
    params_spec = loss_signature_params(cls)
    default = cls() if all(p.default is not inspect.Parameter.empty for p in params_spec) else None

    def fn(
        input: torch.Tensor,
        target: torch.Tensor,
        reduction: str = "mean",
        *,
        weight: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        nan_policy: str = "propagate",
        broadcast: bool = False,
        **params: Any,
    ) -> torch.Tensor:
        spec = default if default is not None and not params else resolve(registry_name, params)
        return _evaluate(spec, input, target, reduction, weight, mask, nan_policy, broadcast)

    fn.__name__ = fn.__qualname__ = public_name
    fn.__module__ = __name__
    fn.__doc__ = (
        f"The {registry_name} loss of ``(input, target)`` = (prediction, target), "
        f"with regloss's analytic backward.\n\n{cls.__doc__}\n{OPTION_DOC}"
    )
    base = inspect.signature(fn)
    params = [p for p in base.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    fn.__signature__ = base.replace(  # type: ignore[attr-defined]
        parameters=params[:3] + loss_signature_params(cls) + params[3:]
    )
    return fn


def __getattr__(name: str) -> Callable[..., torch.Tensor]:
    names = torch_names()
    if name in names:
        return _function(names[name], name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(torch_names()))
