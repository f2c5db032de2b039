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
from .._numerics import RATIO_ONE, log1p_square
from .._typing import Array
from .._validate import check_param_array, check_scale_param
from ._base import Loss, register
from ._robust import _signed

__all__ = ["Barron", "general_psi", "general_psi_prime", "general_rho", "log_partition"]


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


#: Floor on |alpha - 2| and |alpha| in the general formula: keeps it finite (and its
#: derivatives too) for alpha within this of 2 or 0, where it is continuous anyway.
EPS = 1e-9
#: Largest finite |alpha| accepted (beyond it the ±inf closed forms are the loss to float
#: precision, and alpha itself would overflow float32).
ALPHA_MAX = 1e18
#: e^{-x²/2} underflows to 0 in float64 long before |x| = 64.
_FLAT = 64.0
#: Shapes with a closed form that needs at most one transcendental call (Charbonnier,
#: Cauchy, Geman-McClure); 2 and ±inf have theirs too.
CLOSED = (1.0, 0.0, -2.0)
#: Past this, expm1(z) = exp(z) to float64 precision.
_Z_BIG = 40.0


def general_rho(xp: Any, x: Array, alpha: Array) -> Array:
    """Barron's rho at scale 1 for an array ``alpha`` (learned alpha, any real value).

    The special values are reached as limits through the floors on ``|alpha - 2|`` and
    ``|alpha|``; the result and its gradients (x and alpha) stay finite.
    """
    b, d = _floors(xp, alpha)
    _, _, _, log_term = _general_parts(xp, x, b)
    return b / d * xp.expm1(0.5 * d * log_term)


def _general_parts(xp: Any, x: Array, b: Array) -> tuple[Array, Array, Array, Array]:
    """``(big, ys, w, L)`` for array alpha: y = |x|/sqrt(b), big = y > 1, the small
    branch's y, w = 1/y² of the large branch, and L = log1p(y²) -- as log1p(y²) for y <= 1
    and 2 log y + log1p(1/y²) beyond, each branch on an input safe for it, so x² never
    overflows (nor its gradient)."""
    k = xp.sqrt(b)
    ax = xp.abs(x)
    big = ax > k
    ys = xp.where(big, 0.0, ax) / k
    yl = xp.where(big, ax, k) / k
    w = 1.0 / (yl * yl)
    log_term = xp.where(big, 2.0 * xp.log(yl) + xp.log1p(w), xp.log1p(ys * ys))
    return big, ys, w, log_term


def _floors(xp: Any, alpha: Array) -> tuple[Array, Array]:
    """(b, d): |alpha - 2| and alpha kept EPS away from 0 (the formula's floors)."""
    b = xp.clip(xp.abs(alpha - 2.0), EPS, None)
    d = xp.where(alpha >= 0, xp.clip(alpha, EPS, None), xp.clip(alpha, None, -EPS))
    return b, d


def general_psi(xp: Any, x: Array, alpha: Array) -> Array:
    """d/dx of :func:`general_rho`, :math:`x (1 + x^2/b)^{\\alpha/2 - 1}`; for large |x| as
    sign(x) exp(log|x| + (alpha/2 - 1) L), so no overflow meets an underflowing power."""
    b, d = _floors(xp, alpha)
    big, _, _, log_term = _general_parts(xp, x, b)
    power = (0.5 * d - 1.0) * log_term
    ax = xp.abs(x)
    large = xp.exp(xp.log(xp.where(big, ax, 1.0)) + power)
    small = xp.where(big, 0.0, ax) * xp.exp(power)
    return xp.where(x < 0, -1.0, 1.0) * xp.where(big, large, small)


def general_psi_prime(xp: Any, x: Array, alpha: Array) -> Array:
    """d²/dx² of :func:`general_rho`: (1+y²)^(alpha/2-1) (1 + (alpha-1) y²)/(1 + y²) with
    y² = x²/b, in w = 1/y² for large y (a bounded factor)."""
    b, d = _floors(xp, alpha)
    big, ys, w, log_term = _general_parts(xp, x, b)
    y2 = ys * ys
    factor = xp.where(big, (w + (d - 1.0)) / (w + 1.0), (1.0 + (d - 1.0) * y2) / (1.0 + y2))
    return xp.exp((0.5 * d - 1.0) * log_term) * factor


def _representable(xp: Any, x: Array, value: float) -> bool:
    """Whether ``value`` fits x's dtype (PyTorch refuses a bound beyond float32's largest on
    float32 tensors; no float32 value can exceed such a bound anyway). A traced array takes
    the constant in its compute dtype, where it becomes inf."""
    dtype = x.dtype
    if isinstance(dtype, str):  # the kernel tracer's symbolic dtype
        return True
    return value <= float(xp.finfo(dtype).max)


@register("barron")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class Barron(Loss):
    r"""Barron's general robust loss :math:`\rho(r; \alpha, c)`.

    Parameters
    ----------
    alpha : float or array, default 1.0
        Shape, any real number or ±inf: 2 is L2, 1 Charbonnier, 0 Cauchy, −2
        Geman-McClure, −inf Welsch. Smaller is more robust. An array (or tensor)
        broadcastable to the residual gives one shape per element, as Barron's ``lossfun``
        (finite values; the general formula with its floors near 0 and 2).
    scale : float or array, default 1.0
        c > 0, the width of the quadratic bowl; an array gives one per element.

    Notes
    -----
    α = 2, 1, 0, −2, −inf and +inf use their closed forms (1, 0 and −2 in 1/y for y > 1,
    with at most one transcendental call, a third of the general form's cost in a fused
    kernel; ``CLOSED``); every other α is
    :math:`\tfrac{b}{2} L\,\frac{\operatorname{expm1}(z)}{z}` with
    :math:`L = \operatorname{log1p}(x^2/b)` and :math:`z = \tfrac{\alpha}{2} L`, which
    keeps precision near α = 0 and α = 2 (continuous through both) and for tiny |α|. L is
    one log1p of :math:`y^2`, :math:`y = |x|/\sqrt b`, taken as :math:`2\log y` where y²
    would overflow (``_numerics.log1p_square``), and ψ for y > 1 is
    :math:`(\sqrt b/c)\,e^{(\alpha-1)L/2}/\sqrt{1 + 1/y^2}`, so no square or power
    overflows: ρ and ψ are finite wherever their value is, from three transcendental calls. For
    α = +inf the loss is exp(x²/2) − 1, which is inf for |x| beyond about 37 (float64).
    ``alpha`` is ±inf or finite with :math:`|\alpha| \le 10^{18}`; ``scale`` is in
    [1e-18, 1e18].

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
        if _is_array(self.alpha) or _is_array(self.scale):
            self._check_arrays()
            return
        a = self.alpha
        if isinstance(a, bool) or not isinstance(a, (int, float)) or math.isnan(a):
            raise ValueError(f"barron: parameter alpha must be a real number or ±inf, got {a!r}")
        if math.isfinite(a) and abs(a) > ALPHA_MAX:
            raise ValueError(
                f"barron: parameter alpha must be ±inf or finite with |alpha| <= {ALPHA_MAX:g}, "
                f"got {a!r}; pass alpha=float('inf') (or -inf) for the limit"
            )
        object.__setattr__(self, "alpha", float(a))
        object.__setattr__(self, "scale", check_scale_param("barron", "scale", self.scale))

    def _check_arrays(self) -> None:
        """Array parameters: alpha finite, scale positive; a number beside an array is a float."""
        for key, positive in (("alpha", False), ("scale", True)):
            value = getattr(self, key)
            if _is_array(value):
                check_param_array("barron", key, value, positive=positive)
            else:
                object.__setattr__(self, key, float(value))

    def _arrays(self) -> bool:
        return not (isinstance(self.alpha, float) and isinstance(self.scale, float))

    def depends_on_position(self) -> bool:
        return self._arrays()  # per-element parameters: never evaluated on flat blocks

    def check_range(self) -> float:
        return 5.0 * self.scale if self.alpha == math.inf else 50.0

    def _parts(self, r: Array) -> tuple[Any, Array, float]:
        return namespace(r), r / self.scale, self.scale

    def _general(self, r: Array) -> tuple[Any, Array, Array, Array, Array, Array, float]:
        """``(xp, big, a_s, a_l, L, ys, b)`` for the general formula: y = |r|/(c sqrt b),
        big = y > 1, |r| clamped to each branch, L = log1p(y²) and the small branch's y."""
        xp = namespace(r)
        b = max(abs(self.alpha - 2.0), EPS)
        k = self.scale * math.sqrt(b)
        a = xp.abs(r)
        big = a > k
        a_s, a_l = xp.where(big, k, a), xp.where(big, a, k)
        # L = log1p(y²) in one log1p call for both sides (see log1p_square)
        log_term, _ = log1p_square(xp, a, k)
        return xp, big, a_s, a_l, log_term, a_s / k, b

    def _closed(self, r: Array) -> tuple[Any, Array, Array, Array, Array, float]:
        """``(xp, big, s, a_s, a_l, k)`` for the closed forms: k = c sqrt(b), y = |r|/k,
        big = y > 1, s = y on the small side and 1/y on the large (so s <= 1 and nothing
        squared overflows), |r| clamped to each side."""
        xp = namespace(r)
        k = self.scale * math.sqrt(abs(self.alpha - 2.0))
        a = xp.abs(r)
        big = a > k
        a_s, a_l = xp.where(big, k, a), xp.where(big, a, k)
        return xp, big, xp.where(big, k / a_l, a_s / k), a_s, a_l, k

    def rho(self, r: Array) -> Array:
        a = self.alpha
        if not self._arrays() and a in CLOSED:
            return self._closed_rho(r)
        if self._arrays():  # per-element (or traced) parameters: the array-alpha form
            return general_rho(namespace(r), r / self.scale, a)
        if a == 2.0:
            _, x, _ = self._parts(r)
            return 0.5 * x * x
        if a == -math.inf:
            _, x, _ = self._parts(r)
            return -namespace(r).expm1(-0.5 * x * x)
        if a == math.inf:
            _, x, _ = self._parts(r)
            return namespace(r).expm1(0.5 * x * x)
        xp, big, a_s, _, log_term, ys, b = self._general(r)
        z = (0.5 * a) * log_term
        # expm1(z) overflows before (b/a) expm1(z) does when b/a is small (a near 2): past
        # z = 40 the -1 is below float64 precision and b/a goes into the exponent. The same
        # expm1 call serves both (a fused kernel evaluates both sides of a where).
        huge = z > _Z_BIG if a > 0 else None
        em = xp.expm1(z if huge is None else xp.where(huge, z + math.log(b / a), z))
        zero = xp.abs(z) < RATIO_ONE
        e = xp.where(zero, 1.0, em / xp.where(zero, 1.0, z))  # expm1(z)/z
        # b/a expm1(a/2 L) = (b/2) L e; for small y, (b/2) L = x²/2 · log1p(y²)/y².
        xs = a_s / self.scale
        y2 = ys * ys
        tiny = y2 < RATIO_ONE
        small = 0.5 * xs * xs * xp.where(tiny, 1.0, log_term / xp.where(tiny, 1.0, y2))
        out = xp.where(big, (0.5 * b) * log_term, small) * e
        if huge is not None:
            out = xp.where(huge, em + 1.0, out)
        elif a < 0 and _representable(xp, out, b / -a):
            out = xp.clip(out, None, b / -a)  # bounded by b/|a|; rounding may touch it
        return out

    def psi(self, r: Array) -> Array:
        a, c = self.alpha, self.scale
        if not self._arrays() and a in CLOSED:
            return self._closed_psi(r)
        if self._arrays():
            return general_psi(namespace(r), r / c, a) / c
        if a == 2.0:
            _, x, _ = self._parts(r)
            return x / c
        if a == math.inf:
            xp, x, _ = self._parts(r)
            return x / c * xp.exp(0.5 * x * x)
        if a == -math.inf:
            xp, x, _ = self._parts(r)
            xc = xp.clip(x, -_FLAT, _FLAT)
            return xc / c * xp.exp(-0.5 * xc * xc)
        xp, big, a_s, a_l, log_term, _, b = self._general(r)
        k = c * math.sqrt(b)
        # Small y: x/c (1+y²)^(a/2-1). Large y, with w = 1/y²:
        # (sqrt(b)/c) y^(a-1) (1+w)^(a/2-1): powers of y, not of 1 + y², so nothing
        # overflows or underflows that the result does not; where y itself overflows
        # (tiny scales in float32) the power is taken in logs.
        # In L = log1p(y²) = 2 log y + log1p(w) with w = 1/y², the large side is
        # (sqrt(b)/c) e^{(a-1)/2 L} / sqrt(1 + w); its constant goes into the exponent. One
        # exp serves both sides.
        power = xp.where(
            big,
            (0.5 * (a - 1.0)) * log_term + math.log(math.sqrt(b) / c),
            (0.5 * a - 1.0) * log_term,
        )
        e = xp.exp(power)
        v = k / a_l
        large = e / xp.sqrt(1.0 + v * v)
        return _signed(xp, r, xp.where(big, large, a_s / (c * c) * e))

    def psi_prime(self, r: Array) -> Array:
        a, c = self.alpha, self.scale
        if not self._arrays() and a in CLOSED:
            return self._closed_psi_prime(r)
        if self._arrays():
            return general_psi_prime(namespace(r), r / c, a) / (c * c)
        if a == 2.0:
            return namespace(r).ones_like(r) / (c * c)
        if a == math.inf:
            xp, x, _ = self._parts(r)
            x2 = x * x
            return (1.0 + x2) * xp.exp(0.5 * x2) / (c * c)
        if a == -math.inf:
            xp, x, _ = self._parts(r)
            x2 = xp.clip(xp.abs(x), None, _FLAT) ** 2
            return (1.0 - x2) * xp.exp(-0.5 * x2) / (c * c)
        xp, big, _, a_l, log_term, ys, b = self._general(r)
        k = c * math.sqrt(b)
        # d/dx [x (1+y²)^(a/2-1)] = (1+y²)^(a/2-1) (1 + (a-1) y²)/(1 + y²); in w = 1/y² for
        # large y: (w + a - 1)/(w + 1), bounded.
        y2 = ys * ys
        w = (k / a_l) ** 2
        factor = xp.where(big, (w + (a - 1.0)) / (w + 1.0), (1.0 + (a - 1.0) * y2) / (1.0 + y2))
        return xp.exp((0.5 * a - 1.0) * log_term) * factor / (c * c)

    # The closed forms of alpha in CLOSED, in s = y (small side) or 1/y (large side), so
    # no power or square overflows or underflows that the result does not:
    #   a = 1 (Charbonnier):   rho = sqrt(1 + y²) - 1,  psi = (x/c) (1 + y²)^(-1/2)
    #   a = 0 (Cauchy):        rho = log1p(y²),         psi = (x/c) (1 + y²)^(-1)
    #   a = -2 (Geman-McClure): rho = 2y²/(1 + y²),     psi = (x/c) (1 + y²)^(-2)
    # with y² = x²/b. At most one transcendental call (a = 0's log1p) against the general
    # form's three: the same values, a third of the cost in a fused kernel.

    def _closed_rho(self, r: Array) -> Array:
        a, c = self.alpha, self.scale
        xp, big, s, _, a_l, k = self._closed(r)
        if a == 1.0:
            q = xp.sqrt(1.0 + s * s)
            # small: y²/(q + 1), no cancellation; large: x (sqrt(1 + 1/y²) - 1/y), q - s >= 0.41
            return xp.where(big, a_l / c * (q - s), s * s / (q + 1.0))
        if a == 0.0:
            log_term, y2 = log1p_square(xp, xp.abs(r), k)
            return xp.where(y2 < RATIO_ONE, y2, log_term)  # log1p(y²) = y² for tiny y²
        return xp.where(big, 2.0, 2.0 * (s * s)) / (1.0 + s * s)

    def _closed_psi(self, r: Array) -> Array:
        a, c = self.alpha, self.scale
        xp, big, s, a_s, a_l, _ = self._closed(r)
        small = a_s / (c * c)  # x/c; large side: (sqrt(b)/c) times a power of 1/y
        d = 1.0 + s * s
        if a == 1.0:
            out = xp.where(big, 1.0 / c, small) / xp.sqrt(d)
        elif a == 0.0:  # (sqrt(b)/c)(1/y) = b/|r|: 1/y can be subnormal where this is not
            out = xp.where(big, 2.0 / a_l, small) / d
        else:  # (2/c) s³: the partial products fall towards the result, none underflows first
            out = xp.where(big, 2.0 / c * s * s * s, small) / (d * d)
        return _signed(xp, r, out)

    def _closed_psi_prime(self, r: Array) -> Array:
        a, c = self.alpha, self.scale
        xp, big, s, _, _, _ = self._closed(r)
        s2 = s * s
        d = 1.0 + s2
        if a == 1.0:  # (1 + y²)^(-3/2) = (s/sqrt(1 + s²))³ on the large side
            t = xp.where(big, s, 1.0) / xp.sqrt(d)
            out = t * t * t
        elif a == 0.0:  # (1 - y²)/(1 + y²)², in w = 1/y²: w (w - 1)/(w + 1)²
            out = xp.where(big, s2 * (s2 - 1.0), 1.0 - s2) / (d * d)
        else:  # (1 - 3y²)/(1 + y²)³, in w: (w - 3) w²/(w + 1)³
            out = xp.where(big, (s2 - 3.0) * s2 * s2, 1.0 - 3.0 * s2) / (d * d * d)
        return out / (c * c)


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
