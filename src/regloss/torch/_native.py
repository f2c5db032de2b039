"""PyTorch's own fused kernels, used where their semantics equal regloss's definition.

``torch.nn.functional.mse_loss`` and its siblings run one fused C++/CUDA kernel forward and
one backward, with their own double backward. Where a regloss loss means exactly the same
thing (same formula, same reduction, every regloss option off), evaluating it through that
kernel is the cheapest correct route; everything else runs through regloss's own paths.

A call is eligible only when all of these hold, each checked in O(1) without touching the
data: the loss is in ``NATIVE`` and its parameters lie where PyTorch's formula keeps the
numerical contract (see each entry); ``weight`` and ``mask`` are
None and ``nan_policy='propagate'``; prediction and target are tensors of one float32 or
float64 dtype and one non-empty shape; the reduction is 'none', 'mean' or 'sum'. Any other
call, including every invalid one, takes the general path, so errors are regloss's.

``tests/test_torch_native.py`` proves each entry equal to the definition: values and
gradients over the range sweep (0, subnormals, finfo.max) in float32 and float64, every
reduction, double backward, torch.func, meta and FakeTensor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .. import _kernels
from .._kernels import WEIGHT_RANGE
from .._numerics import _DOT_BLOCKED_FROM
from .._validate import _is_traced
from ..losses import Loss
from ..losses._basic import AbsoluteError, Huber, SmoothL1, SquaredError
from ._lean import kernel_call

__all__ = ["NATIVE", "native_call", "native_weighted_call"]

# torch.nn._reduction's enum: the C++ losses take an int.
_REDUCTION = {"none": 0, "mean": 1, "sum": 2}
_FLOATS = (torch.float32, torch.float64)

_nn: Any = torch._C._nn


def _mse(loss: Loss, p: torch.Tensor, t: torch.Tensor, red: int) -> torch.Tensor | None:
    return _nn.mse_loss(p, t, red)  # type: ignore[no-any-return]


#: from these sizes regloss's generated one-pass kernel (through the lean door,
#: ``_lean.kernel_call``) beats PyTorch's own loss on the CPU: its step reads prediction and
#: target once and writes the gradient, where PyTorch's forward and backward read them
#: twice (l1_loss is a composite of several passes besides). Measured, training step as a
#: fraction of PyTorch's, the door against PyTorch's kernel called by regloss: l1 0.94
#: against 1.02 at 2^12 for 'mean' but 1.09-1.10 for 'sum' (PyTorch's sum is the cheaper),
#: 0.99 at 2^14 for 'sum', 0.48 against 0.81 at 2^16; huber float32 0.86 against 0.95 at 2^18,
#: 0.44 against 1.04 at 2^22; smooth_l1 float64 0.72 against 1.03 at 2^18, 0.32 against
#: 1.02 at 2^22, but float32 1.00 against 0.92 at 2^16 and 0.95 against 0.90 at 2^17.
KERNEL_FROM: dict[type[Loss], int] = {AbsoluteError: 1 << 14, Huber: 1 << 18, SmoothL1: 1 << 18}
_NEVER = 1 << 62


def _l1(loss: Loss, p: torch.Tensor, t: torch.Tensor, red: int) -> torch.Tensor | None:
    return _nn.l1_loss(p, t, red)  # type: ignore[no-any-return]


def _huber(loss: Loss, p: torch.Tensor, t: torch.Tensor, red: int) -> torch.Tensor | None:
    return _nn.huber_loss(p, t, red, loss.delta)  # type: ignore[attr-defined,no-any-return]


def _smooth_l1(loss: Loss, p: torch.Tensor, t: torch.Tensor, red: int) -> torch.Tensor | None:
    beta = loss.beta  # type: ignore[attr-defined]
    # PyTorch forms 0.5 r² / beta: r² underflows where the result need not when beta < 1/2
    # (regloss forms (r/beta)(r/2)); from beta = 1/2 up an underflowing r² means an
    # underflowing result, within the subnormal allowance of the contract.
    if beta < 0.5:
        return None
    return _nn.smooth_l1_loss(p, t, red, beta)  # type: ignore[no-any-return]


Native = Callable[[Loss, torch.Tensor, torch.Tensor, int], "torch.Tensor | None"]

#: loss class -> PyTorch kernel; an entry may decline (None) for some parameter values.
NATIVE: dict[type[Loss], Native] = {
    SquaredError: _mse,
    AbsoluteError: _l1,
    Huber: _huber,
    SmoothL1: _smooth_l1,
}


def _plain(prediction: Any, target: Any) -> bool:
    return (
        isinstance(prediction, torch.Tensor)
        and isinstance(target, torch.Tensor)
        and prediction.dtype in _FLOATS
        and target.dtype == prediction.dtype
        and prediction.shape == target.shape
        and prediction.numel() > 0
    )


#: from this many float32 elements on a GPU the generated Triton kernel serves these losses
#: too: its step moves 12 bytes an element where PyTorch's backward reads prediction and
#: target again (20); measured on an H200 at 2^26, 0.50-0.85 of PyTorch's time, while at
#: 2^22-2^24, where the host bounds the step, PyTorch's fewer Python calls win (1.4-2.4x).
#: float64 was not measured, so it keeps PyTorch's kernel.
GENERATED_ON_GPU_FROM = 1 << 26


def _generated_is_faster(prediction: torch.Tensor, red: int) -> bool:
    return (
        red != 0
        and prediction.numel() >= GENERATED_ON_GPU_FROM
        and prediction.dtype == torch.float32
        and _kernels.triton_serves(prediction) is not None
    )


def native_call(loss: Loss, prediction: Any, target: Any, reduction: str) -> torch.Tensor | None:
    """The loss through PyTorch's kernel, or None when the call is not eligible (the caller
    has already checked that weight and mask are None and nan_policy is 'propagate') or,
    on a GPU from :data:`GENERATED_ON_GPU_FROM` elements, the generated kernel is faster."""
    kernel = NATIVE.get(type(loss))
    red = _REDUCTION.get(reduction)
    if kernel is None or red is None or not _plain(prediction, target):
        return None
    if _generated_is_faster(prediction, red):
        return None  # regloss's generated Triton kernel
    if red != 0 and prediction.numel() >= KERNEL_FROM.get(type(loss), _NEVER):
        # regloss's generated CPU kernel through the lean door, where it takes the call
        # (it declines while compiling, under torch.func, autocast, or before the build)
        out = kernel_call(loss, prediction, target, None, reduction)
        if out is not None:
            return out
    return kernel(loss, prediction, target, red)


def native_weighted_call(
    loss: Loss, prediction: Any, target: Any, weight: Any, reduction: str
) -> torch.Tensor | None:
    """The weighted loss from PyTorch's elementwise kernel: ``w * l`` ('none'), ``sum(w * l)``
    ('sum') or ``sum(w * l) / sum(w)`` ('mean'), as regloss's
    general path defines them; None when not eligible (as :func:`native_call`, and the
    weight must be a tensor of the prediction's dtype and shape that needs no gradient).
    The caller orders this route and the lean door (``_lean.kernel_call``: regloss's
    generated weighted kernel, one pass) by measurement (``functional._native_first``);
    each serves what the other declines (here: the door's linear psi, MSE; kernels not
    built yet or off; 'none').

    The weights are checked as regloss always checks them (finite, >= 0) in one pass; any
    failure returns None and the general path raises its detailed error. Traced weights
    (meta, fake, compiled, torch.func) cannot be checked or scaled: their 'mean' takes the
    general path.
    """
    kernel = NATIVE.get(type(loss))
    if (
        kernel is None
        or reduction not in _REDUCTION
        or not _plain(prediction, target)
        or not isinstance(weight, torch.Tensor)
        or weight.dtype != prediction.dtype
        or weight.shape != prediction.shape
        or weight.requires_grad
    ):
        return None
    if not _is_traced(weight):
        extremes = torch.aminmax(weight)
        lo, hi = extremes.min.item(), extremes.max.item()
        if not lo >= 0.0 or not WEIGHT_RANGE[0] <= hi <= WEIGHT_RANGE[1]:
            return None  # includes all-zero weights, whose 'mean' is 0 by definition
    elif reduction == "mean":
        return None
    value = kernel(loss, prediction, target, 0)
    if value is None:
        return None
    if reduction == "none":
        return value * weight
    # A BLAS dot where it is accurate (short inputs, as _numerics.vdot); PyTorch's cascade
    # sum beyond (its error does not grow with N, and its backward is one multiply).
    if value.numel() <= _DOT_BLOCKED_FROM:
        if value.ndim != 1:
            value, weight = value.reshape(-1), weight.reshape(-1)
        total = torch.vdot(value, weight)
    else:
        total = (value * weight).sum()
    if reduction == "sum":
        return total
    mean: torch.Tensor = total / weight.sum()
    return mean
