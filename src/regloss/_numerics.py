"""Small numeric building blocks the loss definitions share, one backend-aware place.

They exist for speed, never for different mathematics: each has the plain array-API
meaning stated in its docstring.
"""

from __future__ import annotations

import math
from typing import Any

from ._typing import Array

__all__ = ["axpy", "expm1_ratio", "log1p_ratio", "log_ratio", "stop_gradient", "vdot"]


def vdot(xp: Any, a: Array, b: Array) -> Array:
    """``sum(a * b)`` over every element, in one pass (BLAS dot) without a temporary."""
    if a.ndim != 1:
        a = xp.reshape(a, (-1,))
    if b.ndim != 1:
        b = xp.reshape(b, (-1,))
    return xp.vdot(a, b)


def axpy(xp: Any, alpha: float, x: Array, y: Array, *, overwrite: bool = False) -> Array:
    """``alpha * x + y``; one fused operation in PyTorch (``torch.add(..., alpha=)``).

    PyTorch wraps a Python float into a tensor for every arithmetic operation (about a
    microsecond and a half each); ``alpha`` here is passed as a C++ scalar instead. With
    ``overwrite=True`` the result may be written into ``y`` (a scratch temporary of the
    caller's): no allocation, which is most of the cost for arrays of megabytes.
    """
    name = xp.__name__
    if name == "torch":
        return y.add_(x, alpha=alpha) if overwrite else xp.add(y, x, alpha=alpha)
    if name == "numpy" and overwrite and y.flags.writeable:
        y += alpha * x
        return y
    return alpha * x + y


def stop_gradient(xp: Any, x: Array) -> Array:
    """``x`` as a constant for autodiff (``detach`` / ``lax.stop_gradient``; NumPy: as is)."""
    name = xp.__name__
    if name == "torch":
        return x.detach()
    if name.startswith("jax"):
        import jax

        return jax.lax.stop_gradient(x)
    return x


def log_ratio(xp: Any, a: Array, c: float) -> Array:
    """``log(a / c)`` for ``a >= c > 0``, finite even where ``a / c`` overflows.

    Where the quotient is finite its log is exact to an ulp; where it overflows the log is
    past 88 (float32) and ``log(a) - log(c)`` loses nothing to cancellation.
    """
    u = a / c
    finite = xp.isfinite(u)
    return xp.where(finite, xp.log(xp.where(finite, u, 1.0)), xp.log(a) - math.log(c))


def log1p_ratio(xp: Any, x: Array) -> Array:
    """``log1p(x) / x`` with its limit 1 at ``x = 0`` (x >= 0)."""
    zero = x == 0
    return xp.where(zero, 1.0, xp.log1p(x) / xp.where(zero, 1.0, x))


def expm1_ratio(xp: Any, z: Array) -> Array:
    """``expm1(z) / z`` with its limit 1 at ``z = 0`` (inf where expm1 overflows)."""
    zero = z == 0
    return xp.where(zero, 1.0, xp.expm1(z) / xp.where(zero, 1.0, z))
