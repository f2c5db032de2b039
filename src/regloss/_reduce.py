"""Reductions, weights, masks and NaN omission: the one implementation every front-end uses.

Given checked inputs (:class:`~regloss._validate.Prepared`) and a loss, :func:`forward`
returns the reduced value and, when asked, ``psi_f``: the elementwise
:math:`\\psi(r)\\,f` (``f`` = weight × mask). The gradient with respect to the prediction
is then ``psi_f * (grad_output * scale)``; the target's is its negative. Masking is built
into the arithmetic: masked residuals are replaced by 0 *before* the loss sees them
(every loss has :math:`\\rho(0) = \\psi(0) = 0`), so a NaN or inf target there cannot
reach a value or a gradient.

Reductions, for an elementwise factor :math:`f` (1 when absent):

=============  ====================================================================
``none``       :math:`f_i\\,\\rho(r_i)`, the prediction's shape
``sum``        :math:`\\sum_i f_i\\,\\rho(r_i)`
``mean``       :math:`\\sum_i f_i\\,\\rho(r_i) / \\sum_i f_i` (0 when everything is masked)
``batchmean``  ``mean`` × D, D = elements per sample: :math:`\\frac1N\\sum_n\\lVert r_n\\rVert^2`
               for MSE without weights
=============  ====================================================================
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

from ._kernels import (
    TRITON_DEVICES,
    fused,
    fused_into,
    fused_nll,
    fused_nll_weighted,
    fused_weighted,
    gpu_forward,
    kernel_threads,
)
from ._namespace import astype, promoted_dtype
from ._numerics import stop_gradient
from ._typing import Array
from ._validate import Prepared, check_weight_values
from .losses import Loss
from .losses._nll import NLLLoss, in_form

__all__ = [
    "BLOCK",
    "Forward",
    "NLLForward",
    "compute_dtype",
    "forward",
    "nll_forward",
    "psi_factor",
    "residual",
    "sum_to_shape",
]


class Forward(NamedTuple):
    """Result of :func:`forward`: the loss is ``total * value_scale``, and
    d loss / d prediction is ``psi_f * grad_output * grad_scale``.

    The scales are kept apart from the arrays so that a front-end applies each with one
    multiplication of its choice (PyTorch: by a cached 0-d tensor, which is cheaper than a
    Python float there).
    """

    #: Σ f·ρ (unscaled) for a reduction, the elementwise f·ρ for ``none``.
    total: Array
    #: Elementwise part of the gradient, or None when not requested: :math:`\psi(r)\,f`,
    #: or :math:`r` for a loss with linear :math:`\psi` (``Loss.psi_slope``).
    psi_f: Array | None
    #: 1 for ``none``/``sum``, 1/Σf for ``mean``, D/Σf for ``batchmean`` (float or 0-d array).
    value_scale: Any
    #: value_scale times the slope of a linear psi.
    grad_scale: Any

    @property
    def value(self) -> Array:
        """The loss: ``total * value_scale``."""
        return self.total if _is_one(self.value_scale) else self.total * self.value_scale


def _is_one(x: Any) -> bool:
    return isinstance(x, float) and x == 1.0


def compute_dtype(xp: Any, prep: Prepared) -> Any:
    """float32 for half-precision inputs, otherwise the promoted input dtype."""
    if prep.upcast:
        return xp.float32
    return promoted_dtype(xp, prep.prediction, prep.target)


def residual(xp: Any, prep: Prepared, dtype: Any) -> Array:
    """``prediction - target`` in ``dtype``, with masked elements set to exactly 0."""
    p, t = prep.prediction, prep.target
    r = p - t if p.dtype == dtype and t.dtype == dtype else astype(p, dtype) - astype(t, dtype)
    if prep.keep is not None:
        r = xp.where(prep.keep, r, 0.0)
    return r


def _factor(xp: Any, prep: Prepared, dtype: Any) -> Array | None:
    # the one eager entry of the weights: their check, where prepare left it to a kernel
    check_weight_values(xp, prep, dtype)
    f = prep.weight
    if f is not None and prep.reduction in ("mean", "batchmean"):
        # A weighted mean does not change when the weights are rescaled; dividing by the
        # largest (before any cast to a narrower compute dtype) keeps sum(w) and 1/sum(w)
        # finite for tiny (subnormal) or huge weights.
        top = xp.max(f)
        f = f / xp.where(top > 0, top, 1.0)
    if f is not None:
        f = astype(f, dtype)
    if prep.keep is not None:
        k = astype(prep.keep, dtype)
        f = k if f is None else f * k
    return f


def scale_ratio(prep: Prepared) -> tuple[int, int]:
    """The unweighted scale of the reduction as integers ``(num, den)``: 1/N for 'mean',
    (N / batch)/N for 'batchmean', 1/1 for 'sum' and 'none'."""
    if prep.reduction == "sum" or prep.reduction == "none":
        return 1, 1
    shape = prep.shape
    numel = math.prod(shape)
    return (numel // shape[0] if prep.reduction == "batchmean" else 1), numel


def _scale(xp: Any, prep: Prepared, f: Array | None) -> Any:
    if prep.reduction == "sum" or prep.reduction == "none":
        return 1.0
    per_sample, numel = scale_ratio(prep)
    if f is None:
        return per_sample / numel
    f_numel = math.prod(f.shape)
    # f is either full-shaped or a per-sample (N, 1, ...) view: scale its sum accordingly.
    den = xp.sum(f) * (numel // f_numel)
    positive = den > 0
    return xp.where(positive, per_sample / xp.where(positive, den, 1.0), 0.0)


#: Inputs longer than 4 blocks are reduced in blocks of this many elements, so the
#: residual and psi temporaries stay in cache: a training step then reads prediction and
#: target once and writes psi once, instead of streaming every temporary through memory.
#: (A loss with linear psi needs no temporary beyond the residual and is not blocked.)
BLOCK = 1 << 18


def forward(loss: Loss, xp: Any, prep: Prepared, *, need_psi: bool) -> Forward:
    """Unscaled loss total, its scale and (optionally) ``psi_f`` for the gradient."""
    dtype = compute_dtype(xp, prep)
    if xp.__name__ == "torch" and prep.prediction.device.type in TRITON_DEVICES:
        gpu = gpu_forward(loss, prep, dtype, need_psi)  # one generated Triton kernel
        if gpu is not None:
            return Forward(*gpu)
    if prep.weight is None and prep.keep is None and prep.reduction != "none":
        # The training hot path: no pass over the data beyond the loss itself.
        numel = math.prod(prep.shape)
        scale = _scale(xp, prep, None)
        # one generated pass (regloss._kernels), the gradient's scale folded into psi
        kernel = fused(loss, xp, prep, dtype, need_psi, scale)
        if kernel is not None:
            return Forward(kernel[0], kernel[1], 1.0, 1.0)
        if (
            numel > 4 * BLOCK
            and loss.psi_slope is None
            and not loss.depends_on_position()
            and _blockable(xp, prep)
        ):
            total, psi = _blocked(loss, xp, prep, dtype, numel, need_psi)
            return Forward(total, psi, scale, scale)
        r = residual(xp, prep, dtype)
        if not need_psi:
            return Forward(loss.rho_sum(r, overwrite=True), None, scale, scale)
        if loss.psi_slope is not None:
            # psi(r) = slope * r: keep r and fold the slope into the scale (no pass).
            return Forward(loss.rho_sum(r), r, scale, scale * loss.psi_slope)
        total, psi = loss.rho_sum_and_psi(r, overwrite=True)
        return Forward(total, psi, scale, scale)

    if prep.weight is not None and prep.keep is None and prep.reduction != "none":
        scale_of = functools.partial(_weighted_scale, prep)
        hit = fused_weighted(loss, xp, prep, dtype, need_psi, scale_of)  # one generated pass
        if hit is not None:  # the scale is in the total and in psi_f already
            return Forward(hit[0], hit[1], 1.0, 1.0)
    r = residual(xp, prep, dtype)
    f = _factor(xp, prep, dtype)
    scale = _scale(xp, prep, f)
    value = loss.rho(r) if f is None else loss.rho(r) * f
    psi_f = None
    if need_psi:
        psi_f = loss.psi(r) if f is None else loss.psi(r) * f
    if prep.reduction == "none":
        if prep.shape != tuple(value.shape):
            value = xp.broadcast_to(value, prep.shape)
        return Forward(value, psi_f, 1.0, 1.0)
    return Forward(xp.sum(value), psi_f, scale, scale)


def _weighted_scale(prep: Prepared, weight_sum: float) -> float:
    """The reduction's scale for full-shaped weights summing to ``weight_sum`` (> 0)."""
    if prep.reduction == "sum":
        return 1.0
    per_sample, _ = scale_ratio(prep)
    return per_sample / weight_sum


def psi_factor(xp: Any, prep: Prepared, psi: Any) -> tuple[Array, Any]:
    """``(psi(r) * f, scale)`` built from differentiable operations (double backward)."""
    dtype = compute_dtype(xp, prep)
    r = residual(xp, prep, dtype)
    f = _factor(xp, prep, dtype)
    psi_f = psi(r) if f is None else psi(r) * f
    return psi_f, _scale(xp, prep, f)


def _blockable(xp: Any, prep: Prepared) -> bool:
    # Blocks write into a preallocated psi: NumPy and PyTorch only (JAX arrays are
    # immutable, and XLA fuses the passes anyway), and only without broadcasting. Blocking
    # keeps temporaries in a CPU's cache; on any other device (CUDA, meta) each block would
    # be a round of kernel launches: measured on an H200, the blocked eager Cauchy took 27x
    # the unblocked time at 2^22 and 300x at 2^26.
    p, t = prep.prediction, prep.target
    if tuple(p.shape) != tuple(t.shape):
        return False
    if xp.__name__ == "torch":
        return bool(p.device.type == "cpu")
    return bool(xp.__name__ == "numpy")


def _blocked(
    loss: Loss, xp: Any, prep: Prepared, dtype: Any, numel: int, need_psi: bool
) -> tuple[Array, Array | None]:
    p = xp.reshape(prep.prediction, (-1,))
    t = xp.reshape(prep.target, (-1,))
    # empty_like: the inputs' device (meta, CUDA...) and layout, the compute dtype.
    psi = xp.empty_like(prep.prediction, dtype=dtype) if need_psi else None
    psi_flat = None if psi is None else xp.reshape(psi, (-1,))
    total: Any = 0.0
    for start in range(0, numel, BLOCK):
        stop = min(start + BLOCK, numel)
        rb = astype(p[start:stop], dtype) - astype(t[start:stop], dtype)
        if psi_flat is None:
            total = total + astype(loss.rho_sum(rb, overwrite=True), xp.float64)
        else:
            part, psi_b = loss.rho_sum_and_psi(rb, overwrite=True)
            psi_flat[start:stop] = psi_b
            total = total + astype(part, xp.float64)  # block totals add up in float64
    return astype(total, dtype), psi


#: ``forward_into`` works in blocks of this many elements: the residual and any temporary
#: of a block stay in L2 cache, so memory traffic is one read of prediction and target and
#: one write of the gradient (measured in ``benchmarks/bench_numpy.py``).
INTO_BLOCK = 1 << 16


def forward_into(loss: Loss, prep: Prepared, out: Any) -> float:
    """NumPy: the loss value (reduced and scaled), writing the gradient ψ(r)·scale
    straight into ``out`` (C-contiguous, the compute dtype, the inputs' shape), blockwise.

    Only for the hot path: no weight, mask or NaN omission, a reduction other than 'none',
    prediction and target of ``out``'s shape and dtype, a loss that does not depend on the
    element's position. Each block's residual is written into ``out`` and then replaced by
    the gradient; block sums add up in float64.
    """
    import numpy as np

    scale = _scale(np, prep, None)
    k = fused_into(loss, prep, out)
    if k is not None:  # the generated one-pass kernel writes ψ·scale straight into out
        total = k.fwd(
            prep.prediction.ctypes.data,
            prep.target.ctypes.data,
            out.ctypes.data,
            out.size,
            scale,
            kernel_threads(),
        )
        return float(total * scale)
    p = prep.prediction.reshape(-1)
    t = prep.target.reshape(-1)
    o = out.reshape(-1)  # a view: out is C-contiguous
    n = o.shape[0]
    slope = loss.psi_slope
    total = 0.0
    for start in range(0, n, INTO_BLOCK):
        ob = o[start : start + INTO_BLOCK]
        np.subtract(p[start : start + INTO_BLOCK], t[start : start + INTO_BLOCK], out=ob)
        if slope is not None:
            total += float(loss.rho_sum(ob))
            np.multiply(ob, slope * scale, out=ob)
        else:
            part, psi = loss.rho_sum_and_psi(ob, overwrite=True)
            total += float(part)
            np.multiply(psi, scale, out=ob)
    return float(total * scale)


def sum_to_shape(xp: Any, g: Array, shape: tuple[int, ...]) -> Array:
    """Sum a broadcast gradient back to an input's ``shape``."""
    if tuple(g.shape) == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1
    )
    out = xp.sum(g, axis=axes, keepdims=True) if axes else g
    return xp.reshape(out, shape)


class NLLForward(NamedTuple):
    """Result of :func:`nll_forward`: loss = ``total * value_scale``; gradients are
    ``d_pred * grad_output * value_scale`` (the target's is its negative) and
    ``d_scale * grad_output * value_scale`` (summed to the scale input's shape)."""

    total: Array
    value_scale: Any
    d_pred: Array | None
    d_scale: Array | None


def nll_parts(
    xp: Any, nll: NLLLoss, prep: Prepared, s: Array, *, log_input: bool, differentiable: bool
) -> tuple[Array, Array, Array | None, Any]:
    """``(r, v, f_total, value_scale)``: masked residual, floored variance/scale (or its
    floored log), the elementwise factor (weights x mask x beta-weights) and the mean's scale.

    With ``differentiable=True`` the floor is written as ``v + stop_gradient(max(v, eps) -
    v)`` so autodiff passes the gradient through it, as the analytic path does.
    """
    dtype = compute_dtype(xp, prep)
    r = residual(xp, prep, dtype)
    s = astype(s, dtype)
    # A log input stays in logs (``in_form``): e^s overflows float32 past s = 88.7 while the
    # loss does not. Its floor is log(eps), and dv/ds is part of the log-form derivatives.
    floor = math.log(nll.eps) if log_input else nll.eps
    floored = xp.clip(s, floor, None)
    v = s + stop_gradient(xp, floored - s) if differentiable else floored
    if prep.keep is not None:
        # masked: a harmless scale (1, or its log 0), whatever was passed
        v = xp.where(prep.keep, v, 0.0 if log_input else 1.0)
    f = _factor(xp, prep, dtype)
    scale = _scale(xp, prep, f)
    beta = float(getattr(nll, "beta", 0.0))
    if beta:
        base = stop_gradient(xp, floored)
        w = xp.exp(beta * base) if log_input else base**beta
        f = w if f is None else f * w
    return r, v, f, scale


def nll_forward(
    xp: Any, nll: NLLLoss, prep: Prepared, s: Array, *, log_input: bool, need_grad: bool
) -> NLLForward:
    """Loss total and analytic gradients of an NLL loss with scale input ``s``."""
    if prep.weight is None and prep.keep is None and prep.reduction != "none":
        dtype = compute_dtype(xp, prep)
        # one generated pass (regloss._kernels), the reduction's scale folded in
        kernel = fused_nll(nll, log_input, xp, prep, s, dtype, need_grad, _scale(xp, prep, None))
        if kernel is not None:
            return NLLForward(kernel[0], 1.0, kernel[1], kernel[2])
    elif prep.weight is not None and prep.keep is None and prep.reduction != "none":
        scale_of = functools.partial(_weighted_scale, prep)
        dtype = compute_dtype(xp, prep)
        hit = fused_nll_weighted(nll, log_input, xp, prep, s, dtype, need_grad, scale_of)
        if hit is not None:  # scaled in the kernel
            return NLLForward(hit[0], 1.0, hit[1], hit[2])
    r, v, f, scale = nll_parts(xp, nll, prep, s, log_input=log_input, differentiable=False)
    fns = in_form(nll, log_input)
    value = fns.value(r, v)
    if f is not None:
        value = value * f
    if prep.reduction == "none":
        if prep.shape != tuple(value.shape):
            value = xp.broadcast_to(value, prep.shape)
        scale = 1.0
    else:
        value = xp.sum(value)
    if not need_grad:
        return NLLForward(value, scale, None, None)
    d_r, d_v = fns.grad(r, v)
    if f is not None:
        d_r, d_v = d_r * f, d_v * f
    if tuple(d_r.shape) != prep.shape:
        d_r = xp.broadcast_to(d_r, prep.shape)
    return NLLForward(value, scale, d_r, d_v)
