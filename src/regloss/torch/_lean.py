"""The lean front door: regloss's generated CPU kernel reached with metadata-only checks.

The general path (``prepare`` → ``apply_loss`` → ``_reduce.forward`` → ``_kernels.fused*``)
costs some 50-100 µs of Python a call on this project's 2-core machine, which is the whole
time of a step at N ≤ 2^12 and more than PyTorch's own weighted losses take there. For
the calls the generated kernel serves exactly as they are, this module checks metadata
only (O(1), no pass over the data) and calls the kernel once. Its backward hands the
gradient buffer on (times the incoming gradient where that is not 1); double backward and
a second backward through a retained graph are the general path's own
(:meth:`regloss.torch._autograd._LossFunction.backward`), and the inputs are saved, so
version checks are as there.

Eligible: a registered loss with a built CPU kernel (nonlinear ψ, no per-element
parameters, none requiring grad); prediction, target and (optional) weight plain
contiguous CPU tensors of one float32/float64 dtype and one non-empty shape, the weight
needing no gradient; reduction 'mean' or 'sum'; no mask, ``nan_policy='propagate'``;
eager (not compiling, no torch.func transform, no autocast, the CPU not served by the
Triton kernels as in the tests). Weights the kernel does not take
(``_kernels.weights_taken``) send the call to the general path, which raises its detailed
error or rescales. ``tests/test_torch_lean.py`` proves the door equal to the general path.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch

from .. import _kernels
from .._kernels import c as _c
from .._validate import _has_negative
from ..losses import Loss
from ..losses._nll import NLLLoss
from ._autograd import _is_one, _LossFunction, _Meta, _NLLFunction, _params_need_grad

__all__ = ["kernel_call", "nll_kernel_call"]

_DTYPES = {torch.float32: "float32", torch.float64: "float64"}


def _plain(x: Any, dtype: torch.dtype, shape: torch.Size) -> bool:
    return (
        type(x) is torch.Tensor
        and x.dtype == dtype
        and x.shape == shape
        and x.is_cpu  # (.device.type costs 0.4 us more)
        and x.is_contiguous()
    )


def _eligible(prediction: Any, target: Any, weight: Any, reduction: str, *more: Any) -> bool:
    """The metadata checks both doors share (``more``: an NLL's scale input, at most one)."""
    if (
        torch.compiler.is_compiling()  # first: Dynamo reads no further
        or (reduction != "mean" and reduction != "sum")
        or type(prediction) is not torch.Tensor
        or prediction.dtype not in _DTYPES
        or prediction.numel() == 0
    ):
        return False
    dtype, shape = prediction.dtype, prediction.shape
    return (
        prediction.is_cpu
        and prediction.is_contiguous()
        and _plain(target, dtype, shape)
        and (not more or _plain(more[0], dtype, shape))
        and (weight is None or (_plain(weight, dtype, shape) and not weight.requires_grad))
        and not torch._C._are_functorch_transforms_active()
        and not torch._C._is_any_autocast_enabled()
        # the tests serve CPU tensors with the Triton kernels under its interpreter
        and "cpu" not in _kernels.TRITON_DEVICES
    )


def _threads(n: int) -> int:
    return _c.threads() if n >= _c.PARALLEL_FROM else 1  # (reading it costs ~3 us)


def _weighted_value(got: Any, reduction: str) -> float | None:
    """The reduced value from a weighted kernel's sums (``c.Weighted``), or None where the
    general path must take the weights (``_kernels.weights_taken``)."""
    if not _kernels.weights_taken(got, reduction):
        return None
    return got.total if reduction == "sum" else got.total * (1.0 / got.weight_sum)  # type: ignore[no-any-return]


def kernel_call(
    loss: Loss, prediction: Any, target: Any, weight: Any, reduction: str
) -> torch.Tensor | None:
    """The loss from its generated kernel with metadata-only checks, or None (then the
    general path runs); the caller has checked that mask is None and nan_policy is
    'propagate'."""
    if not _eligible(prediction, target, weight, reduction) or _params_need_grad(loss):
        return None
    dtype = prediction.dtype
    k = _kernels.loss_kernel(loss, _DTYPES[dtype])
    if k is None:
        return None
    n = prediction.numel()
    grad = torch.is_grad_enabled() and (prediction.requires_grad or target.requires_grad)
    psi = torch.empty_like(prediction) if grad else None
    p, t, threads = prediction.data_ptr(), target.data_ptr(), _threads(n)
    value: float | None
    if weight is None:
        scale = 1.0 / n if reduction == "mean" else 1.0
        if psi is None:
            total = k.val(p, t, n, threads)
        else:
            total = k.fwd(p, t, psi.data_ptr(), n, scale, threads)
        value = total * scale
    else:
        w = weight.data_ptr()
        if psi is None:
            got = k.weighted("val_w", p, t, w, n=n, threads=threads)
        else:
            # the kernel scales psi by num / Σw (0: not at all, for 'sum')
            num = 1.0 if reduction == "mean" else 0.0
            got = k.weighted("fwd_w", p, t, w, psi.data_ptr(), n=n, threads=threads, num=num)
        if (value := _weighted_value(got, reduction)) is None:
            return None
    if psi is None:
        return torch.scalar_tensor(value, dtype=dtype)
    rest = (loss, _Meta(prediction.shape, reduction, False, True), value, psi)
    return _apply(prediction, target, weight, rest)  # type: ignore[no-any-return]


def nll_kernel_call(
    nll: NLLLoss,
    prediction: Any,
    target: Any,
    scale: Any,
    log_input: bool,
    weight: Any,
    reduction: str,
) -> torch.Tensor | None:
    """An NLL loss from its generated kernel (scale input of the prediction's shape and
    dtype), as :func:`kernel_call`; the scale input's sign is checked in one reduction (a
    negative entry: None, and the general path raises)."""
    if not _eligible(prediction, target, weight, reduction, scale):
        return None
    dtype = prediction.dtype
    k = _kernels.nll_kernel(nll, log_input, _DTYPES[dtype])
    if k is None or (not log_input and _has_negative(torch, scale)):
        return None
    n = prediction.numel()
    grad = torch.is_grad_enabled() and (
        prediction.requires_grad or target.requires_grad or scale.requires_grad
    )
    p, t, s, threads = prediction.data_ptr(), target.data_ptr(), scale.data_ptr(), _threads(n)
    d_r = d_s = None
    value: float | None
    if grad:
        d_r, d_s = torch.empty_like(prediction), torch.empty_like(prediction)
        pr, ps = d_r.data_ptr(), d_s.data_ptr()
    if weight is None:
        gscale = 1.0 / n if reduction == "mean" else 1.0
        if d_r is None:
            total = k.nll_val(p, t, s, n, threads)
        else:
            total = k.nll_fwd(p, t, s, pr, ps, n, threads, gscale)
        value = total * gscale
    else:
        w = weight.data_ptr()
        if d_r is None:
            got = k.weighted("nll_val_w", p, t, s, w, n=n, threads=threads)
        else:
            num = 1.0 if reduction == "mean" else 0.0
            got = k.weighted("nll_fwd_w", p, t, s, w, pr, ps, n=n, threads=threads, num=num)
        if (value := _weighted_value(got, reduction)) is None:
            return None
    if d_r is None:
        return torch.scalar_tensor(value, dtype=dtype)
    meta = _Meta(prediction.shape, reduction, False, True)
    rest = (nll, meta, log_input, value, d_r, d_s)
    return _apply_nll(prediction, target, scale, weight, rest)  # type: ignore[no-any-return]


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
            saved = (prediction, target, weight, None, None, None)
            shim = _shim(ctx, saved, loss=ctx.loss, psi_owned=None, grad_scale=1.0)
            g = _LossFunction.backward(shim, grad)
            return g[0], g[1], None, None
        if not _is_one(grad):
            _kernels.multiply_into(owned, grad)
        needs = ctx.needs_input_grad
        return (owned if needs[0] else None), (-owned if needs[1] else None), None, None


class _NLLKernelFunction(torch.autograd.Function):
    """:class:`_KernelFunction` for :func:`nll_kernel_call`: the buffers d/dr and d/ds
    handed on as the gradients of prediction (target: its negative) and scale input."""

    @staticmethod
    def forward(
        ctx: Any,
        prediction: torch.Tensor,
        target: torch.Tensor,
        scale: torch.Tensor,
        weight: torch.Tensor | None,
        rest: tuple[NLLLoss, _Meta, bool, float, torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        nll, meta, log_input, value, d_r, d_s = rest
        ctx.save_for_backward(prediction, target, scale, weight)
        ctx.owned, ctx.nll, ctx.meta, ctx.log_input = (d_r, d_s), nll, meta, log_input
        return torch.scalar_tensor(value, dtype=prediction.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        prediction, target, scale, weight = ctx.saved_tensors  # version-checked here
        (d_r, d_s), ctx.owned = ctx.owned, (None, None)
        needs = ctx.needs_input_grad
        if d_r is None or torch.is_grad_enabled():
            saved = (prediction, target, scale, weight, None, None, None, None)
            more = {"nll": ctx.nll, "log_input": ctx.log_input, "value_scale": 1.0}
            shim = _shim(ctx, saved, owned=(None, None), **more)
            g = _NLLFunction.backward(shim, grad)
            return g[0], g[1], g[2], None, None
        one = _is_one(grad)
        if not one and (needs[0] or needs[1]):
            _kernels.multiply_into(d_r, grad)
        if not one and needs[2]:
            _kernels.multiply_into(d_s, grad)
        return (
            d_r if needs[0] else None,
            -d_r if needs[1] else None,
            d_s if needs[2] else None,
            None,
            None,
        )


def _shim(ctx: Any, saved: tuple[torch.Tensor | None, ...], **more: Any) -> SimpleNamespace:
    """The ctx the general path's backward reads, for a door's node: its saved tensors
    already unpacked, no owned buffers (``more``: the rest)."""
    return SimpleNamespace(
        saved_tensors=saved, meta=ctx.meta, needs_input_grad=ctx.needs_input_grad, **more
    )


# as _autograd's _fast_apply: the C++ apply, without Function.apply's per-call signature check
_apply: Any = super(torch.autograd.Function, _KernelFunction).apply
_apply_nll: Any = super(torch.autograd.Function, _NLLKernelFunction).apply
