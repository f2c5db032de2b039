"""The generated CPU kernels as a backend: the contract of :mod:`regloss._backend` in one
pass, for NumPy arrays and PyTorch CPU tensors.

:func:`serves` is what a route asks (metadata only); :func:`forward` runs the kernel and
answers a :class:`~regloss._backend.Result` whose scales are folded in (1.0), or None
where the weights' values make it decline: a NaN, infinite or negative weight (the eager
path's detailed error), all-zero weights (a mean is 0 by definition), or, for a mean,
weights whose largest lies outside :data:`WEIGHT_RANGE` (rescaled first).
"""

from __future__ import annotations

import math
from typing import Any

from .._backend import Result
from .._validate import Prepared
from ..losses import Form
from . import c

__all__ = ["WEIGHT_RANGE", "forward", "forward_into", "kernel_for", "serves", "weights_taken"]

#: weights whose largest lies in this range are taken as they are for a weighted mean (the
#: eager path divides by the largest first): sums of w and of w·value neither overflow nor
#: lose precision
WEIGHT_RANGE = (2.0**-30, 2.0**30)

_NAMES: dict[Any, str] = {}


def _dtype_name(dtype: Any) -> str | None:
    name = _NAMES.get(dtype)
    if name is None:
        text = str(dtype).removeprefix("torch.")
        name = text if text in ("float32", "float64") else ""
        _NAMES[dtype] = name
    return name or None


_MISSING = object()


def kernel_for(form: Form, dtype: Any) -> c.CKernel | None:
    """The built kernel of a registered, position-independent form with plain parameters
    in ``dtype`` (a NumPy or torch dtype of float32/float64), or None; builds it on first
    request and keeps it on the form (``REGLOSS_KERNELS=0`` is still read at each call)."""
    if not c.enabled():
        return None
    cache = form.__dict__.get("_kernels")
    if cache is None:
        cache = {}
        object.__setattr__(form, "_kernels", cache)
    k = cache.get(dtype, _MISSING)
    if k is _MISSING:
        dt = _dtype_name(dtype)
        k = c.kernel(form, dt) if dt is not None and form.kernel_eligible else None
        cache[dtype] = k
    return k  # type: ignore[no-any-return]


def _contiguous(x: Any) -> bool:
    flags = getattr(x, "flags", None)
    if flags is not None:
        return bool(flags.c_contiguous)
    return bool(x.is_contiguous())


def serves(prep: Prepared, dtype: Any) -> bool:
    """Whether the kernel's arithmetic covers ``prep`` (metadata only): every input and a
    weight (if any) contiguous, of ``dtype`` and of one shape; no mask or NaN omission;
    a reduction to one number. (The caller has checked the array library and device.)"""
    if prep.keep is not None or prep.reduction.elementwise:
        return False
    shape = tuple(prep.inputs[0].shape)
    arrays = (*prep.inputs, *(() if prep.weight is None else (prep.weight,)))
    for x in arrays:
        if x.dtype != dtype or tuple(x.shape) != shape or not _contiguous(x):
            return False
    w = prep.weight
    return w is None or not getattr(w, "requires_grad", False)


def weights_taken(got: c.Weighted, normalised: bool) -> bool:
    """Whether a weighted kernel's result stands as it is (see the module docstring)."""
    if got.bad or not got.weight_sum > 0 or not math.isfinite(got.hi):
        return False
    return not normalised or WEIGHT_RANGE[0] <= got.hi <= WEIGHT_RANGE[1]


def _pointer(x: Any) -> int:
    ptr = getattr(x, "data_ptr", None)
    return int(ptr()) if ptr is not None else int(x.ctypes.data)


def _total(torch: bool, xp: Any, total: float, dtype: Any) -> Any:
    if torch:
        return xp.scalar_tensor(total, dtype=dtype)  # 3.4 us here; torch.tensor 7.5 us
    return xp.asarray(total, dtype=dtype)


def forward(k: c.CKernel, xp: Any, prep: Prepared, need_grad: bool) -> Result | None:
    """The contract's answer from kernel ``k`` (:func:`kernel_for`) for inputs that
    :func:`serves` accepts; None where the weights' values make it decline. (Written
    without generators: it runs on every training step of the kernel routes.)"""
    inputs = prep.inputs
    p = inputs[0]
    dtype = p.dtype
    torch = xp.__name__ == "torch"
    if torch:
        n = p.numel()
        ins = tuple([x.data_ptr() for x in inputs])
    else:
        n = int(p.size)
        ins = tuple([x.ctypes.data for x in inputs])
    nt = c.threads() if n >= c.PARALLEL_FROM else 1
    red = prep.reduction
    if need_grad:
        if k.m == 1:
            g0 = xp.empty_like(p)
            grads: tuple[Any, ...] = (g0,)
            outs: tuple[int, ...] = (g0.data_ptr() if torch else g0.ctypes.data,)
        else:
            grads = tuple([xp.empty_like(p) for _ in range(k.m)])
            outs = tuple([g.data_ptr() if torch else g.ctypes.data for g in grads])
    else:
        grads, outs = (None,) * k.m, ()
    # the reduction's scale: num / den, with N known here (no product over the shape)
    rescale = red.rescales_weights
    num = red.numerator_of(prep.shape, n) if rescale else 1
    if prep.weight is None:
        gs = num / n if rescale else 1.0
        total = k.fwd(ins, outs, n, gs, nt) if need_grad else k.val(ins, n, nt)
        return _NEW(Result, (_total(torch, xp, total * gs, dtype), grads, 1.0, 1.0))  # type: ignore[no-any-return]
    w = _pointer(prep.weight)
    if need_grad:
        got = k.fwd_w(ins, w, outs, n, nt, float(num) if rescale else 0.0)
    else:
        got = k.val_w(ins, w, n, nt)
    if not weights_taken(got, rescale):
        return None
    scale = num / got.weight_sum if rescale else 1.0
    return _NEW(Result, (_total(torch, xp, got.total * scale, dtype), grads, 1.0, 1.0))  # type: ignore[no-any-return]


_NEW: Any = tuple.__new__  # a NamedTuple without its Python-level __new__


def forward_into(k: c.CKernel, form: Form, prep: Prepared, out: Any) -> float:
    """NumPy's ``value_and_grad(out=)``: the loss value, the prediction's gradient times
    the reduction's scale written by the kernel straight into ``out`` (its other
    arguments' gradients, where the form has more, into scratch)."""
    import numpy as np

    scale = prep.reduction.kernel_scale(prep.shape)
    arg, _sign = form.feeds[0]
    buffers = [out if j == arg else np.empty_like(out) for j in range(k.m)]
    outs = tuple(b.ctypes.data for b in buffers)
    n = int(out.size)
    nt = c.threads() if n >= c.PARALLEL_FROM else 1
    total = k.fwd(tuple(x.ctypes.data for x in prep.inputs), outs, n, scale, nt)
    return float(total * scale)
