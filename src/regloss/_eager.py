"""The eager backend: a form evaluated with the array library's own operations.

Every backend answers one contract (:class:`Result`): for checked inputs
(:class:`~regloss._validate.Prepared`) and a form (:mod:`regloss.losses._form`), the
reduced value and, when asked, one gradient buffer per argument,
:math:`f\\,\\partial\\ell/\\partial a_j` (``f`` = weight × mask). An input's gradient is then
± one of them (the form's ``feeds``) times ``grad_output * grad_scale``. This module is
the eager implementation, for NumPy, PyTorch and JAX alike; the generated kernels
(:mod:`regloss._kernels`) implement the same contract in one pass.

Masking is built into the arithmetic: masked arguments are replaced by the form's neutral
point *before* the definition sees them (r = 0: ρ(0) = ψ(0) = 0), and multiplied by
f = 0, so a NaN or inf target there cannot reach a value or a gradient.
"""

from __future__ import annotations

from typing import Any

from ._backend import Result, compute_dtype, factor
from ._namespace import astype
from ._thresholds import value as threshold
from ._typing import Array
from ._validate import Prepared
from .losses import Form

__all__ = [
    "BLOCK",
    "INTO_BLOCK",
    "arguments",
    "blockable",
    "forward",
    "forward_blocked",
    "forward_into",
    "sum_to_shape",
]


def arguments(
    form: Form, xp: Any, prep: Prepared, dtype: Any, differentiable: bool = False
) -> tuple[Array, ...]:
    """The form's arguments in ``dtype``, masked elements at the form's neutral point."""
    args = form.arguments(xp, tuple(astype(x, dtype) for x in prep.inputs), differentiable)
    if prep.keep is not None:
        keep = prep.keep
        args = tuple(xp.where(keep, a, n) for a, n in zip(args, form.neutral, strict=True))
    return tuple(args)


def forward(form: Form, xp: Any, prep: Prepared, need_grad: bool) -> Result:
    """The eager composition of ``form`` (every option, every array library)."""
    dtype = compute_dtype(xp, prep)
    red = prep.reduction
    n = form.n_args
    if prep.plain and not red.elementwise:
        # The training hot path: no pass over the data beyond the loss itself.
        scale = red.scale(xp, prep.shape, None)
        args = arguments(form, xp, prep, dtype)
        fresh = form.fresh_arguments
        if not need_grad:
            return Result(form.value_sum(xp, args, fresh), (None,) * n, scale, scale)
        if form.slope is not None:
            # grad = slope * argument: keep the argument, fold the slope into the scale
            return Result(form.value_sum(xp, args), args, scale, scale * form.slope)
        total, grads = form.value_sum_and_grad(xp, args, fresh)
        return Result(total, grads, scale, scale)
    args = arguments(form, xp, prep, dtype)
    f = factor(xp, prep, dtype)
    scale = red.scale(xp, prep.shape, f)
    value = form.value(*args)
    if f is not None:
        value = value * f
    out: tuple[Array | None, ...] = (None,) * n
    if need_grad:
        out = tuple(g if f is None else g * f for g in form.grad(*args))
    if red.elementwise:
        if prep.shape != tuple(value.shape):
            value = xp.broadcast_to(value, prep.shape)
        return Result(value, out, 1.0, 1.0)
    return Result(xp.sum(value), out, scale, scale)


#: CPU inputs longer than ``eager_blocks`` elements are reduced in blocks of this many
#: (``eager_block``, read at each call), so the argument and gradient temporaries stay in
#: cache: a training step then reads the inputs once and writes each gradient once,
#: instead of streaming every temporary.
BLOCK = threshold("eager_block")


def blockable(form: Form, xp: Any, prep: Prepared) -> bool:
    """Whether :func:`forward_blocked` may serve (from metadata): no weight, mask or
    'none'; a nonlinear form that does not depend on the position; inputs of one shape
    (no broadcasting); NumPy, or PyTorch on the CPU (on another device each block would
    be a round of kernel launches: measured on an H200, the blocked eager Cauchy took 27x
    the unblocked time at 2^22 and 300x at 2^26)."""
    if not prep.plain or prep.reduction.elementwise or form.slope is not None:
        return False
    if form.depends_on_position():
        return False
    shape = tuple(prep.inputs[0].shape)
    if any(tuple(x.shape) != shape for x in prep.inputs[1:]):
        return False
    if xp.__name__ == "torch":
        return all(x.device.type == "cpu" for x in prep.inputs)
    return bool(xp.__name__ == "numpy")


def forward_blocked(form: Form, xp: Any, prep: Prepared, need_grad: bool) -> Result:
    """:func:`forward` in blocks of ``eager_block`` elements (see :func:`blockable`); block
    totals add up in float64."""
    dtype = compute_dtype(xp, prep)
    flat = [xp.reshape(x, (-1,)) for x in prep.inputs]
    numel = int(flat[0].shape[0])
    grads: tuple[Array | None, ...] = (None,) * form.n_args
    if need_grad:
        # empty_like: the inputs' device and layout, the compute dtype
        grads = tuple(xp.empty_like(prep.inputs[0], dtype=dtype) for _ in range(form.n_args))
    flat_grads = [xp.reshape(g, (-1,)) for g in grads if g is not None]
    fresh = form.fresh_arguments
    block = threshold("eager_block")
    total: Any = 0.0
    for start in range(0, numel, block):
        stop = min(start + block, numel)
        part_inputs = tuple(astype(x[start:stop], dtype) for x in flat)
        args = tuple(form.arguments(xp, part_inputs))
        if not flat_grads:
            part = form.value_sum(xp, args, fresh)
        else:
            part, gb = form.value_sum_and_grad(xp, args, fresh)
            for out, g in zip(flat_grads, gb, strict=True):
                out[start:stop] = g
        total = total + astype(part, xp.float64)  # block totals add up in float64
    scale = prep.reduction.scale(xp, prep.shape, None)
    return Result(astype(total, dtype), grads, scale, scale)


#: NumPy's ``value_and_grad(out=)`` works in blocks of this many elements: the argument and
#: any temporary of a block stay in L2 cache, so memory traffic is one read of the inputs
#: and one write of the gradient (``benchmarks/bench_numpy.py``).
INTO_BLOCK = threshold("into_block")


def forward_into(form: Form, prep: Prepared, out: Any) -> float:
    """NumPy: the loss value (reduced and scaled), writing the prediction's gradient
    times the scale straight into ``out`` (C-contiguous, the compute dtype, the inputs'
    shape), blockwise. For plain calls of a form whose arguments are fresh: each block's
    first argument is written into ``out`` and then replaced by its gradient; block sums
    add up in float64."""
    import numpy as np

    scale = prep.reduction.scale(np, prep.shape, None)
    flat = [x.reshape(-1) for x in prep.inputs]
    o = out.reshape(-1)  # a view: out is C-contiguous
    n = o.shape[0]
    slope = form.slope
    arg, sign = form.feeds[0]
    size = threshold("into_block")
    total = 0.0
    for start in range(0, n, size):
        ob = o[start : start + size]
        block = tuple(x[start : start + size] for x in flat)
        if form.n_args == 1 and form.fresh_arguments:
            # the residual r = p - t written into out, then replaced by its gradient
            np.subtract(block[0], block[1], out=ob)
            args: tuple[Any, ...] = (ob,)
        else:
            args = tuple(form.arguments(np, block))
        if slope is not None:
            total += float(form.value_sum(np, args))
            np.multiply(args[arg], sign * slope * scale, out=ob)
        else:
            part, grads = form.value_sum_and_grad(np, args, form.fresh_arguments)
            total += float(part)
            np.multiply(grads[arg], sign * scale, out=ob)
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
