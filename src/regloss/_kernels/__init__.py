"""Kernels generated from the loss definitions.

``trace.py`` turns a definition's ``rho``/``psi``/``psi_prime`` into an expression graph;
``c.py`` generates, compiles and caches a one-pass CPU kernel from it. :func:`fused` is the
one place the front-ends ask for it: the hot path of ``_reduce.forward`` (no weight, mask
or NaN omission) on contiguous CPU NumPy arrays or PyTorch tensors of one float32/float64
dtype. It returns None whenever a kernel does not apply or is not built yet, and the
caller computes eagerly: same definition, same results within rounding.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "TRITON_DEVICES",
    "fused",
    "fused_into",
    "fused_nll",
    "fused_nll_weighted",
    "fused_weighted",
    "gpu_forward",
    "kernel_threads",
    "loss_kernel",
    "multiply_into",
    "nll_kernel",
    "triton_serves",
    "weights_taken",
]

_REGISTERED: frozenset[type] | None = None


def _registered() -> frozenset[type]:
    global _REGISTERED
    if _REGISTERED is None:
        from ..losses._base import _REGISTRY

        _REGISTERED = frozenset(_REGISTRY.values())
    return _REGISTERED


def _dtype_name(xp: Any, dtype: Any) -> str | None:
    if dtype == xp.float32:
        return "float32"
    if dtype == xp.float64:
        return "float64"
    return None


def _torch_ok(torch: Any, p: Any, t: Any) -> bool:
    return (
        type(p) is torch.Tensor
        and type(t) is torch.Tensor
        and p.device.type == "cpu"
        and t.device.type == "cpu"
        and p.is_contiguous()
        and t.is_contiguous()
        and not torch.compiler.is_compiling()
        and not torch._C._are_functorch_transforms_active()
    )


def _pointer(xp: Any, p: Any, t: Any, *more: Any) -> Any:
    """A function giving the address of each array, or None when the arrays are not plain
    contiguous CPU arrays of one library (then no kernel applies)."""
    arrays = (p, t, *more)
    name = xp.__name__
    if name == "torch":
        if not _torch_ok(xp, p, t) or not all(
            type(a) is xp.Tensor and a.is_contiguous() for a in more
        ):
            return None
        return lambda x: int(x.data_ptr())
    if name == "numpy":
        if not all(a.flags.c_contiguous for a in arrays):
            return None
        return lambda x: int(x.ctypes.data)
    return None


def _size(xp: Any, p: Any) -> int:
    return int(p.numel()) if xp.__name__ == "torch" else int(p.size)


def _total(xp: Any, total: float, dtype: Any) -> Any:
    if xp.__name__ == "torch":
        return xp.scalar_tensor(total, dtype=dtype)  # 3.4 us here; torch.tensor 7.5 us
    return xp.asarray(total, dtype=dtype)


_C: Any = None  # the c module, imported on first use (it imports the losses)


def loss_kernel(loss: Any, dt: str) -> Any:
    """The built kernel (``c.CKernel``) of a registered loss with nonlinear psi and no
    per-element parameters in dtype ``dt`` ('float32'/'float64'), or None."""
    global _C
    if type(loss) not in _registered() or loss.psi_slope is not None or loss.depends_on_position():
        return None
    if _C is None:
        from . import c as _C
    return _C.kernel(loss, dt)


def _loss_kernel(loss: Any, xp: Any, dtype: Any, ptr: Any) -> Any:
    """:func:`loss_kernel` for arrays that have pointers (``ptr``), or None."""
    dt = _dtype_name(xp, dtype)
    return None if ptr is None or dt is None else loss_kernel(loss, dt)


def fused(
    loss: Any, xp: Any, prep: Any, dtype: Any, need_psi: bool, gscale: float = 1.0
) -> tuple[Any, Any] | None:
    """``(gscale·Σρ as a 0-d array of dtype, ψ·gscale or None)`` from the generated kernel,
    or None.

    ``gscale`` (the reduction's scale, 1/N for 'mean') is rounded to the dtype and
    multiplied in as ψ is written, so no pass is left for it; the total is scaled in double
    before its one rounding to the dtype (no operation is left for that either)."""
    from . import c

    p, t = prep.prediction, prep.target
    if p.dtype != dtype or t.dtype != dtype or tuple(p.shape) != tuple(t.shape):
        return None
    ptr = _pointer(xp, p, t)
    k = _loss_kernel(loss, xp, dtype, ptr)
    if k is None:
        return None
    n = _size(xp, p)
    if need_psi:
        psi = xp.empty_like(p)
        total = k.fwd(ptr(p), ptr(t), ptr(psi), n, gscale, c.threads())
    else:
        psi = None
        total = k.val(ptr(p), ptr(t), n, c.threads())
    return _total(xp, total * gscale, dtype), psi


#: weights whose largest lies in this range are taken as they are for a weighted mean (the
#: eager path divides by the largest first): sums of w and of w·rho neither overflow nor
#: lose precision (as the PyTorch native route, torch/_native.py)
WEIGHT_RANGE = (2.0**-30, 2.0**30)


def _weighted_ok(xp: Any, prep: Any, dtype: Any, *more: Any) -> Any:
    """The pointer function when ``prep`` has full-shaped weights of the compute dtype, no
    mask, a reduction to one number and plain contiguous arrays; else None."""
    p, t, w = prep.prediction, prep.target, prep.weight
    if (
        w is None
        or prep.keep is not None
        or prep.reduction == "none"
        or p.dtype != dtype
        or t.dtype != dtype
        or w.dtype != dtype
        or not tuple(p.shape) == tuple(t.shape) == tuple(w.shape)
        or getattr(w, "requires_grad", False)
    ):
        return None
    return _pointer(xp, p, t, w, *more)


def weights_taken(got: Any, reduction: str) -> bool:
    """Whether a weighted kernel's result (``c.Weighted``) stands as it is: not where the
    weights hold a NaN, an infinite or a negative value (the eager path's detailed error),
    are all zero (the mean's 0 by definition) or, for a mean, have their largest outside
    WEIGHT_RANGE (rescaled first)."""
    if got.bad or not got.weight_sum > 0 or not math.isfinite(got.hi):
        return False
    return reduction == "sum" or WEIGHT_RANGE[0] <= got.hi <= WEIGHT_RANGE[1]


def _weighted_result(
    xp: Any, prep: Any, got: Any, dtype: Any, scale: Any = None
) -> tuple[Any, float] | None:
    """``(Σ f·value as a 0-d array, Σ f)``, or None where the weights need the eager path
    (NaN, infinite or negative: its detailed error; a mean of weights outside WEIGHT_RANGE: rescaled
    first; all zero: the mean's 0 by definition)."""
    if not weights_taken(got, prep.reduction):
        return None
    factor = 1.0 if scale is None else scale(got.weight_sum)
    return _total(xp, got.total * factor, dtype), got.weight_sum


def _mean_numerator(prep: Any, scale: Any) -> float:
    """What the weighted kernels divide by Σw to scale the gradient: the reduction's
    numerator (``scale(1.0)``) for the means, 0 (no scaling) for 'sum'."""
    return 0.0 if prep.reduction == "sum" else float(scale(1.0))


def fused_weighted(
    loss: Any, xp: Any, prep: Any, dtype: Any, need_psi: bool, scale: Any
) -> tuple[Any, Any, float] | None:
    """``(scale(Σ w)·Σ w·ρ, scale(Σ w)·w·ψ or None, Σ w)`` from the generated weighted
    kernel in one pass (``scale`` gives the reduction's scale from the weights' sum,
    applied to the total in double and to the gradient in the kernel), or None (then the
    eager path runs)."""
    from . import c

    ptr = _weighted_ok(xp, prep, dtype)
    k = _loss_kernel(loss, xp, dtype, ptr)
    if k is None:
        return None
    p, t, w, n = prep.prediction, prep.target, prep.weight, _size(xp, prep.prediction)
    psi = xp.empty_like(p) if need_psi else None
    if psi is not None:
        num = _mean_numerator(prep, scale)
        got = k.weighted(
            "fwd_w", ptr(p), ptr(t), ptr(w), ptr(psi), n=n, threads=c.threads(), num=num
        )
    else:
        got = k.weighted("val_w", ptr(p), ptr(t), ptr(w), n=n, threads=c.threads())
    result = _weighted_result(xp, prep, got, dtype, scale)
    return None if result is None else (result[0], psi, result[1])


def nll_kernel(nll: Any, log_input: bool, dt: str) -> Any:
    """The built kernel of a registered NLL loss without beta-weights in dtype ``dt``
    ('float32'/'float64'), or None."""
    global _C
    from ..losses._nll import _NLL_REGISTRY

    if type(nll) not in _NLL_REGISTRY.values() or float(getattr(nll, "beta", 0.0)) != 0.0:
        return None
    if _C is None:
        from . import c as _C
    return _C.kernel(_C.NLLSpec(nll, log_input), dt)


def _nll_kernel(nll: Any, log_input: bool, xp: Any, dtype: Any, ptr: Any) -> Any:
    """:func:`nll_kernel` for arrays that have pointers (``ptr``), or None."""
    dt = _dtype_name(xp, dtype)
    return None if ptr is None or dt is None else nll_kernel(nll, log_input, dt)


def fused_nll_weighted(
    nll: Any,
    log_input: bool,
    xp: Any,
    prep: Any,
    s: Any,
    dtype: Any,
    need_grad: bool,
    scale: Any,
) -> tuple[Any, Any, Any] | None:
    """``scale(Σ w)·(Σ w·value, w·d/dr, w·d/ds)`` of an NLL loss from its weighted kernel
    (the total scaled in double, the gradients in the kernel), or None."""
    from . import c

    if s.dtype != dtype or tuple(s.shape) != tuple(prep.prediction.shape):
        return None
    ptr = _weighted_ok(xp, prep, dtype, s)
    k = _nll_kernel(nll, log_input, xp, dtype, ptr)
    if k is None:
        return None
    p, t, w, n = prep.prediction, prep.target, prep.weight, _size(xp, prep.prediction)
    if need_grad:
        d_r, d_s = xp.empty_like(p), xp.empty_like(p)
        pointers = (ptr(p), ptr(t), ptr(s), ptr(w), ptr(d_r), ptr(d_s))
        num = _mean_numerator(prep, scale)
        got = k.weighted("nll_fwd_w", *pointers, n=n, threads=c.threads(), num=num)
    else:
        d_r = d_s = None
        got = k.weighted("nll_val_w", ptr(p), ptr(t), ptr(s), ptr(w), n=n, threads=c.threads())
    result = _weighted_result(xp, prep, got, dtype, scale)
    return None if result is None else (result[0], d_r, d_s)


def fused_nll(
    nll: Any,
    log_input: bool,
    xp: Any,
    prep: Any,
    s: Any,
    dtype: Any,
    need_grad: bool,
    gscale: float = 1.0,
) -> tuple[Any, Any, Any] | None:
    """``gscale·(Σ value, d/dr, d/ds)`` of an NLL loss from its generated kernel (no
    weight, mask or β-weights; the scale input of the prediction's shape and dtype), or
    None. ``gscale`` is the reduction's scale, folded in as :func:`fused` does."""
    from . import c

    p, t = prep.prediction, prep.target
    if (
        p.dtype != dtype
        or t.dtype != dtype
        or s.dtype != dtype
        or not tuple(p.shape) == tuple(t.shape) == tuple(s.shape)
    ):
        return None
    k = _nll_kernel(nll, log_input, xp, dtype, ptr := _pointer(xp, p, t, s))
    if k is None:
        return None
    n = _size(xp, p)
    if not need_grad:
        total = k.nll_val(ptr(p), ptr(t), ptr(s), n, c.threads())
        return _total(xp, total * gscale, dtype), None, None
    d_r, d_s = xp.empty_like(p), xp.empty_like(p)
    total = k.nll_fwd(ptr(p), ptr(t), ptr(s), ptr(d_r), ptr(d_s), n, c.threads(), gscale)
    return _total(xp, total * gscale, dtype), d_r, d_s


def fused_into(loss: Any, prep: Any, out: Any) -> Any:
    """The kernel for NumPy's ``value_and_grad(out=)`` hot path (its caller has checked the
    shapes, dtypes and contiguity of out), or None."""
    import numpy as np

    from . import c

    if type(loss) not in _registered():
        return None
    p, t = prep.prediction, prep.target
    if not (p.flags.c_contiguous and t.flags.c_contiguous) or p.dtype != out.dtype:
        return None
    dt = _dtype_name(np, out.dtype)
    return None if dt is None else c.kernel(loss, dt)


def kernel_threads() -> int:
    from . import c

    return c.threads()


_TRITON: Any = None


#: device types the Triton kernels serve. The tests add "cpu" with TRITON_INTERPRET=1 set,
#: which runs the generated kernels on the CPU through Triton's interpreter.
TRITON_DEVICES: set[str] = {"cuda"}


def _triton() -> Any:
    global _TRITON
    if _TRITON is None:
        found: Any = False
        try:
            import triton  # noqa: F401  (the optional dependency itself)

            from . import gpu

            found = gpu
        except ImportError:
            pass
        _TRITON = found
    return _TRITON


def triton_serves(x: Any) -> Any:
    """The Triton kernel module where the generated GPU kernels may run on ``x`` (a plain
    eager torch tensor on a Triton device, kernels on, Triton importable), else None: the
    one test every GPU route (forward, backward scaling, PyTorch's own losses) asks."""
    import torch

    if (
        type(x) is not torch.Tensor
        or x.device.type not in TRITON_DEVICES
        or not enabled()
        or torch.compiler.is_compiling()
        or torch._C._are_functorch_transforms_active()
    ):
        return None
    return _triton() or None


def gpu_forward(loss: Any, prep: Any, dtype: Any, need_psi: bool) -> tuple[Any, ...] | None:
    """``(total, psi_f, value_scale, grad_scale)`` from the generated Triton kernel for
    torch tensors on a GPU — every option (weight, mask, nan_policy, all reductions) in one
    pass — or None where it does not apply (then the eager path runs)."""
    import torch

    p, t = prep.prediction, prep.target
    if (
        type(t) is not torch.Tensor
        or type(loss) not in _registered()
        or loss.depends_on_position()
        or p.dtype != t.dtype
        or tuple(p.shape) != tuple(t.shape)
        or tuple(p.shape) != tuple(prep.shape)
    ):
        return None
    tk = triton_serves(p)
    if tk is None:
        return None
    from .. import _reduce

    f = _reduce._factor(torch, prep, dtype)
    weight = None if f is None else torch.broadcast_to(f, prep.shape).contiguous()
    keep = None if prep.keep is None else torch.broadcast_to(prep.keep, prep.shape).contiguous()
    want_value = prep.reduction == "none"
    # Without weights or a mask the reduction's scale is known now (1/N for 'mean'): the
    # kernel folds it into ψ and the partial sums, so no multiplication is left to launch.
    ratio = _reduce.scale_ratio(prep) if f is None else (1, 1)
    total, _, psi_f, value = tk.forward(
        loss,
        p.contiguous(),
        t.contiguous(),
        weight=weight,
        keep=keep,
        want_grad=need_psi,
        want_value=want_value,
        scale=ratio,
        want_count=False,
        total_dtype=dtype,
    )
    if want_value:
        return value, psi_f, 1.0, 1.0
    scale = 1.0 if f is None else _reduce._scale(torch, prep, f)
    return total, psi_f, scale, scale


def multiply_into(g: Any, s: Any) -> Any:
    """``g *= s`` for a gradient buffer ``g`` nobody else sees and a 0-d incoming gradient
    ``s``. On a GPU with Triton, from ``gpu.SCALE_ON_DEVICE_FROM`` elements, the
    multiplication is decided on the device (no pass where ``s`` is exactly 1, and no host
    synchronisation to find that out); elsewhere ``mul_``."""
    import torch

    if (
        type(s) is torch.Tensor
        and s.device == g.device
        and s.dim() == 0
        and g.is_contiguous()
        and (tk := triton_serves(g)) is not None
        and g.numel() >= tk.SCALE_ON_DEVICE_FROM
    ):
        tk.scale_into(g, s)
        return g
    return g.mul_(s)


def enabled() -> bool:
    from . import c

    return c.enabled()
