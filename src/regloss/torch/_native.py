"""PyTorch's own fused losses, where their semantics equal regloss's definition.

``torch.nn.functional.mse_loss`` and its siblings run one fused C++/CUDA kernel forward
and one backward, with their own double backward and an autograd node built in C++. Where
a regloss loss means exactly the same thing (same formula, same reduction), that kernel is
the cheapest correct route below the sizes where regloss's one-pass kernels win: at small N
a Python autograd Function alone costs most of PyTorch's whole step. These routes hand the
whole call, autograd included, to PyTorch (``regloss/torch/_routes.py`` says when).

``NATIVE`` maps a loss class to its PyTorch op; an entry may decline for some parameter
values (``native_ok``). ``tests/test_routes.py`` holds every entry equal to the definition
(values, gradients, double backward over the range sweep).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .._kernels.cpu import WEIGHT_RANGE
from .._numerics import DOT_BLOCKED_FROM
from .._validate import is_traced
from ..losses import AbsoluteError, Form, Huber, Loss, SmoothL1, SquaredError

__all__ = ["NATIVE", "OPS", "native", "native_ok", "native_weighted", "op_of"]

_nn: Any = torch._C._nn

Native = Callable[[Loss, torch.Tensor, torch.Tensor, int], torch.Tensor]

#: loss class -> PyTorch's op (the reduction as torch.nn._reduction's number)
NATIVE: dict[type[Loss], Native] = {
    SquaredError: lambda loss, p, t, red: _nn.mse_loss(p, t, red),
    AbsoluteError: lambda loss, p, t, red: _nn.l1_loss(p, t, red),
    Huber: lambda loss, p, t, red: _nn.huber_loss(p, t, red, loss.delta),  # type: ignore[attr-defined]
    SmoothL1: lambda loss, p, t, red: _nn.smooth_l1_loss(p, t, red, loss.beta),  # type: ignore[attr-defined]
}


def native_ok(form: Form) -> str | None:
    """None where PyTorch has this form's loss with the definition's semantics, else why
    not."""
    loss = form.definition
    if form.kind != "residual" or type(loss) not in NATIVE:
        return "PyTorch has no loss of this definition"
    # PyTorch forms 0.5 r² / beta: r² underflows where the result need not when beta < 1/2
    # (regloss forms (r/beta)(r/2)); from beta = 1/2 up an underflowing r² means an
    # underflowing result, within the subnormal allowance of the contract.
    if type(loss) is SmoothL1 and not loss.beta >= 0.5:
        return (
            "smooth_l1 with beta < 1/2 (PyTorch's r²/(2 beta) underflows where regloss's does not)"
        )
    return None


#: loss class -> (PyTorch's op, the names of the loss's parameters it takes after the
#: reduction): what the route calls without a wrapper
OPS: dict[type[Loss], tuple[Any, tuple[str, ...]]] = {
    SquaredError: (_nn.mse_loss, ()),
    AbsoluteError: (_nn.l1_loss, ()),
    Huber: (_nn.huber_loss, ("delta",)),
    SmoothL1: (_nn.smooth_l1_loss, ("beta",)),
}


def op_of(form: Form) -> tuple[Any, tuple[Any, ...]] | None:
    """(PyTorch's op, the loss's parameters it takes) for a form of a loss in OPS."""
    found = OPS.get(type(form.definition))
    if found is None:
        return None
    op, names = found
    return op, tuple(getattr(form.definition, n) for n in names)


def native(form: Form, prediction: torch.Tensor, target: torch.Tensor, red: int) -> torch.Tensor:
    """The loss from PyTorch's own op."""
    loss = form.definition
    return NATIVE[type(loss)](loss, prediction, target, red)


def native_weighted(
    form: Form, prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, red: int
) -> torch.Tensor | None:
    """The weighted loss from PyTorch's elementwise op: ``w * l`` ('none'), ``sum(w * l)``
    ('sum') or ``sum(w * l) / sum(w)`` ('mean'), as regloss's definition weighs; None where
    the weights' values need the eager path (a negative, NaN or infinite weight: its
    detailed error; all zero or the largest outside WEIGHT_RANGE: rescaled first), checked
    in one pass. Traced weights (meta, compiled, torch.func) cannot be checked: their
    'mean' declines."""
    if not is_traced(weight):
        extremes = torch.aminmax(weight)
        lo, hi = extremes.min.item(), extremes.max.item()
        if not lo >= 0.0 or not WEIGHT_RANGE[0] <= hi <= WEIGHT_RANGE[1]:
            return None  # includes all-zero weights, whose 'mean' is 0 by definition
    elif red == 1:
        return None
    value = native(form, prediction, target, 0)
    if red == 0:
        return value * weight
    # A BLAS dot where it is accurate (short inputs, as _numerics.vdot); PyTorch's cascade
    # sum beyond (its error does not grow with N, and its backward is one multiply).
    if value.numel() <= DOT_BLOCKED_FROM:
        if value.ndim != 1:
            value, weight = value.reshape(-1), weight.reshape(-1)
        total = torch.vdot(value, weight)
    else:
        total = (value * weight).sum()
    if red == 2:
        return total
    mean: torch.Tensor = total / weight.sum()
    return mean
