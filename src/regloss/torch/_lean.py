"""The lean front door: regloss's generated CPU kernel reached with metadata-only checks.

The general path (``prepare`` → ``apply_loss`` → ``_reduce.forward`` → ``_kernels.fused*``)
costs some 50-100 µs of Python a call on this project's 2-core machine, which is the whole
time of a step at N ≤ 2^12 and more than PyTorch's own weighted losses take there. For
the calls the generated kernel serves exactly as they are, this module checks metadata
only (O(1), no pass over the data), calls the kernel once and hands its gradient buffer to
the general path's own backward (:meth:`regloss.torch._autograd._LossFunction.backward`),
so double backward, retained graphs and version checks are the general path's.

Eligible: a registered loss with a built CPU kernel (nonlinear ψ, no per-element
parameters, none requiring grad); prediction, target and (optional) weight plain
contiguous CPU tensors of one float32/float64 dtype and one non-empty shape, the weight
needing no gradient; reduction 'mean' or 'sum'; no mask, ``nan_policy='propagate'``;
eager (not compiling, no torch.func transform, no autocast). Weights the kernel finds
NaN, negative or infinite, all zero, or (for a mean) with their largest outside
``WEIGHT_RANGE``, send the call to the general path, which raises its detailed error or
rescales. ``tests/test_torch_lean.py`` proves the door equal to the general path.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import torch

from .. import _kernels
from .._kernels import WEIGHT_RANGE
from .._kernels import c as _c
from ..losses import Loss
from ._autograd import _is_one, _LossFunction, _Meta, _params_need_grad

__all__ = ["kernel_call"]

_DTYPES = {torch.float32: "float32", torch.float64: "float64"}


def kernel_call(
    loss: Loss, prediction: Any, target: Any, weight: Any, reduction: str
) -> torch.Tensor | None:
    """The loss from its generated kernel with metadata-only checks, or None (then the
    general path runs); the caller has checked that mask is None and nan_policy is
    'propagate'."""
    if (
        torch.compiler.is_compiling()  # first: Dynamo reads no further
        or (reduction != "mean" and reduction != "sum")
        or type(prediction) is not torch.Tensor
        or type(target) is not torch.Tensor
        or (dt := _DTYPES.get(dtype := prediction.dtype)) is None
        or target.dtype != dtype
        or (shape := prediction.shape) != target.shape
        or not (prediction.is_cpu and target.is_cpu)  # (.device.type: 0.4 us more each)
        or not (prediction.is_contiguous() and target.is_contiguous())
        or (n := prediction.numel()) == 0
        or (
            weight is not None
            and (
                type(weight) is not torch.Tensor
                or weight.dtype != dtype
                or weight.shape != shape
                or not weight.is_cpu
                or not weight.is_contiguous()
                or weight.requires_grad
            )
        )
        or torch._C._are_functorch_transforms_active()
        or torch._C._is_any_autocast_enabled()
        or _params_need_grad(loss)
    ):
        return None
    k = _kernels.loss_kernel(loss, dt)
    if k is None:
        return None
    grad = torch.is_grad_enabled() and (prediction.requires_grad or target.requires_grad)
    psi = torch.empty_like(prediction) if grad else None
    p, t = prediction.data_ptr(), target.data_ptr()
    threads = _c.threads() if n >= _c.PARALLEL_FROM else 1  # (reading it costs ~3 us)
    if weight is None:
        scale = 1.0 / n if reduction == "mean" else 1.0
        if psi is None:
            total = k.lib.rl_val(p, t, n, threads)
        else:
            total = k.lib.rl_fwd(p, t, psi.data_ptr(), n, scale, threads)
        value = total * scale
    else:
        out = (ctypes.c_double * 4)()
        w = weight.data_ptr()
        if psi is None:
            total = k.lib.rl_val_w(p, t, w, n, threads, out)
        else:
            num = 1.0 if reduction == "mean" else 0.0  # the kernel scales psi by num / Σw
            total = k.lib.rl_fwd_w(p, t, w, psi.data_ptr(), n, threads, out, num)
        weight_sum, hi, bad = out[0], out[2], out[3]
        if bad or not weight_sum > 0 or not math.isfinite(hi):
            return None  # the general path's error (or the mean's 0 for zero weights)
        if reduction == "mean":
            if not WEIGHT_RANGE[0] <= hi <= WEIGHT_RANGE[1]:
                return None  # the general path rescales the weights first
            value = total * (1.0 / weight_sum)  # as the general path rounds it
        else:
            value = total
    if psi is None:
        return torch.scalar_tensor(value, dtype=dtype)
    rest = (loss, _Meta(shape, reduction, False, True), value, psi)
    return _apply(prediction, target, weight, rest)  # type: ignore[no-any-return]


class _KernelFunction(torch.autograd.Function):
    """The value and gradient buffer computed by :func:`kernel_call`, attached to the graph
    with the general path's backward: the buffer is owned (handed on as the gradient), and
    a second backward through a retained graph, or one with create_graph, is that
    backward's own."""

    @staticmethod
    def forward(
        ctx: Any,
        prediction: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        rest: tuple[Loss, _Meta, float, torch.Tensor],
    ) -> torch.Tensor:
        # (the buffer travels in a tuple: as a tensor argument it would be a graph input)
        loss, meta, value, psi = rest
        ctx.save_for_backward(prediction, target, weight)
        ctx.psi_owned, ctx.loss, ctx.meta = psi, loss, meta
        return torch.scalar_tensor(value, dtype=prediction.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        prediction, target, weight = ctx.saved_tensors  # version-checked here
        owned, ctx.psi_owned = ctx.psi_owned, None
        if owned is None or torch.is_grad_enabled():
            # create_graph, or the buffer went to an earlier backward: the general path's
            g = _LossFunction.backward(_Saved(ctx, prediction, target, weight), grad)
            return g[0], g[1], None, None
        if not _is_one(grad):
            _kernels.multiply_into(owned, grad)
        needs = ctx.needs_input_grad
        return (owned if needs[0] else None), (-owned if needs[1] else None), None, None


class _Saved:
    """What :meth:`_LossFunction.backward` reads from its ctx, for the door's node."""

    def __init__(self, ctx: Any, *saved: torch.Tensor | None) -> None:
        self.saved_tensors = (*saved, None, None, None)
        self.psi_owned, self.grad_scale = None, 1.0
        self.loss, self.meta, self.needs_input_grad = ctx.loss, ctx.meta, ctx.needs_input_grad


# as _autograd's _fast_apply: the C++ apply, without Function.apply's per-call signature check
_apply: Any = super(torch.autograd.Function, _KernelFunction).apply
