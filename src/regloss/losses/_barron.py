"""Barron's general and adaptive robust loss (CVPR 2019), defined once.

With :math:`x = r / c` (c = ``scale``) and :math:`b = |\\alpha - 2|`:

.. math::

    \\rho(r) = \\frac{b}{\\alpha}\\left[\\left(\\frac{x^2}{b} + 1\\right)^{\\alpha/2} - 1\\right],
    \\qquad \\psi(r) = \\frac{x}{c}\\left(\\frac{x^2}{b} + 1\\right)^{\\alpha/2 - 1}

and the limits: α = 2 is ½x² (L2), α = 1 is √(x² + 1) − 1 (Charbonnier / pseudo-Huber),
α = 0 is log(½x² + 1) (Cauchy), α = −2 is 2x²/(x² + 4) (Geman-McClure), α = −∞ is
1 − exp(−½x²) (Welsch, in Barron's scale), α = +∞ is exp(½x²) − 1.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from importlib import resources
from typing import Any

from .._namespace import namespace
from .._typing import Array
from .._validate import check_loss_param
from ._base import Loss, register

__all__ = ["Barron", "general_rho", "log_partition"]

#: Floor on |alpha - 2| and |alpha| in the general formula: keeps it finite (and its
#: derivatives too) for alpha within this of 2 or 0, where it is continuous anyway.
EPS = 1e-9


def general_rho(xp: Any, x: Array, alpha: Array) -> Array:
    """Barron's rho at scale 1 for an array ``alpha`` (learned alpha, any real value).

    The special values are reached as limits through the floors on ``|alpha - 2|`` and
    ``|alpha|``; the result and its gradients (x and alpha) stay finite.
    """
    b = xp.clip(xp.abs(alpha - 2.0), EPS, None)
    d = xp.where(alpha >= 0, xp.clip(alpha, EPS, None), xp.clip(alpha, None, -EPS))
    return b / d * xp.expm1(0.5 * d * xp.log1p(x * x / b))


@register("barron")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class Barron(Loss):
    r"""Barron's general robust loss :math:`\rho(r; \alpha, c)`.

    Parameters
    ----------
    alpha : float, default 1.0
        Shape, any real number or ±inf: 2 is L2, 1 Charbonnier, 0 Cauchy, −2
        Geman-McClure, −inf Welsch. Smaller is more robust.
    scale : float, default 1.0
        c > 0, the width of the quadratic bowl.

    Notes
    -----
    The special values use their closed forms exactly; elsewhere
    :math:`\frac{b}{\alpha}\operatorname{expm1}(\frac{\alpha}{2}\operatorname{log1p}(x^2/b))`
    keeps precision near α = 0 and α = 2 (continuous through both). For α = +inf the loss
    is exp(x²/2) − 1, which overflows to inf for |x| beyond about 37 (float64).

    References
    ----------
    J. T. Barron, "A General and Adaptive Robust Loss Function", CVPR 2019.

    Examples
    --------
    >>> import numpy as np
    >>> Barron(alpha=2.0).rho(np.array([2.0])), Barron(alpha=0.0).rho(np.array([2.0]))
    (array([2.]), array([1.09861229]))
    """

    alpha: float = 1.0
    scale: float = 1.0

    formula = "|a-2|/a (((r/c)^2/|a-2| + 1)^(a/2) - 1)"
    tuning_parameter = "scale"

    def __post_init__(self) -> None:
        a = self.alpha
        if isinstance(a, bool) or not isinstance(a, (int, float)) or math.isnan(a):
            raise ValueError(f"barron: parameter alpha must be a real number or ±inf, got {a!r}")
        object.__setattr__(self, "alpha", float(a))
        object.__setattr__(self, "scale", check_loss_param("barron", "scale", self.scale, low=0.0))

    def check_range(self) -> float:
        return 5.0 * self.scale if self.alpha == math.inf else 50.0

    def _parts(self, r: Array) -> tuple[Any, Array, float]:
        return namespace(r), r / self.scale, self.scale

    def rho(self, r: Array) -> Array:
        xp, x, _ = self._parts(r)
        a = self.alpha
        if a == 2.0:
            return 0.5 * x * x
        if a == 0.0:
            return xp.log1p(0.5 * x * x)
        if a == -math.inf:
            return -xp.expm1(-0.5 * x * x)
        if a == math.inf:
            return xp.expm1(0.5 * x * x)
        b = max(abs(a - 2.0), EPS)
        return b / a * xp.expm1(0.5 * a * xp.log1p(x * x / b))

    def psi(self, r: Array) -> Array:
        xp, x, c = self._parts(r)
        a = self.alpha
        if a == 2.0:
            return x / c
        if a == 0.0:
            return x / c / (0.5 * x * x + 1.0)
        if a == -math.inf:
            return x / c * xp.exp(-0.5 * x * x)
        if a == math.inf:
            return x / c * xp.exp(0.5 * x * x)
        b = max(abs(a - 2.0), EPS)
        return x / c * xp.exp((0.5 * a - 1.0) * xp.log1p(x * x / b))

    def psi_prime(self, r: Array) -> Array:
        xp, x, c = self._parts(r)
        a = self.alpha
        x2 = x * x
        if a == 2.0:
            return xp.ones_like(r) / (c * c)
        if a == 0.0:
            d = 0.5 * x2 + 1.0
            return (1.0 - 0.5 * x2) / (d * d) / (c * c)
        if a == -math.inf:
            return (1.0 - x2) * xp.exp(-0.5 * x2) / (c * c)
        if a == math.inf:
            return (1.0 + x2) * xp.exp(0.5 * x2) / (c * c)
        b = max(abs(a - 2.0), EPS)
        u = x2 / b
        # d/dx [x (u+1)^(a/2-1)] = (u+1)^(a/2-2) (u + 1 + (a-2) u)
        return xp.exp((0.5 * a - 2.0) * xp.log1p(u)) * (1.0 + u + (a - 2.0) * u) / (c * c)


@functools.cache
def _partition_table() -> dict[str, Any]:
    text = resources.files("regloss.data").joinpath("barron_log_partition.json").read_text()
    table: dict[str, Any] = json.loads(text)
    return table


def log_partition(alpha: Array) -> Array:
    r""":math:`\log Z(\alpha)` of Barron's distribution (scale 1), for alpha in [0, 4].

    A C¹ cubic Hermite interpolant of the table that ``scripts/make_barron_partition.py``
    computes by numerical integration (values and slopes every 0.01); differentiable in
    ``alpha`` under autodiff, in NumPy, PyTorch or JAX.

    Examples
    --------
    >>> import math, numpy as np
    >>> bool(np.isclose(log_partition(np.array(2.0)), math.log(math.sqrt(2 * math.pi))))
    True
    """
    xp = namespace(alpha)
    t = _partition_table()
    lo, step = float(t["alpha_min"]), float(t["step"])
    n = len(t["log_z"])
    kw: dict[str, Any] = {"dtype": alpha.dtype}
    if xp.__name__ == "torch":
        kw["device"] = alpha.device
    values = xp.asarray(t["log_z"], **kw)
    slopes = xp.asarray(t["dlog_z"], **kw)
    pos = xp.clip((alpha - lo) / step, 0.0, n - 1.0)
    i = xp.clip(xp.floor(pos), 0.0, n - 2.0)
    s = pos - i  # position inside the interval, in [0, 1]
    idx = i.long() if xp.__name__ == "torch" else xp.astype(i, xp.int32)
    y0, y1 = xp.take(values, idx), xp.take(values, idx + 1)
    m0, m1 = xp.take(slopes, idx) * step, xp.take(slopes, idx + 1) * step
    s2, s3 = s * s, s * s * s
    return (
        (2 * s3 - 3 * s2 + 1) * y0
        + (s3 - 2 * s2 + s) * m0
        + (-2 * s3 + 3 * s2) * y1
        + (s3 - s2) * m1
    )
