"""The robust family: smooth, redescending and asymmetric alternatives to squared error.

Parametrizations (tuning constants depend on them) follow the convention
:math:`\\rho(r) \\approx r^2/2` near 0 for the scale-parametrized losses, the one under
which the classic 95%-efficiency constants are published (Huber 1.345, Cauchy 2.385,
Welsch 2.985, Tukey 4.685). Barron's Welsch, :math:`1 - \\exp(-\\tfrac12 (r/c)^2)`, has a
different scale: its c is ours divided by :math:`\\sqrt2`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._namespace import namespace
from .._numerics import RATIO_ONE, log1p_quotient, log1p_square
from .._typing import Array
from .._validate import check_loss_param, check_scale_param
from ._base import Loss, register

__all__ = [
    "Cauchy",
    "Fair",
    "GemanMcClure",
    "LogCosh",
    "PseudoHuber",
    "Quantile",
    "Tukey",
    "Welsch",
]

_LOG2 = math.log(2.0)
#: Welsch's e^{-u²} underflows to 0 in float64 long before u = 64 (e^{-4096}).
_FLAT = 64.0
#: Fair's series branch: u <= 1/4 (t <= 1/9); 10 terms of the atanh series reach 1e-20.
_FAIR_SERIES = 0.25
_FAIR_COEFFS = tuple(1.0 / (2 * k + 3) for k in reversed(range(10)))


def _scale_param(loss: str, name: str, value: Any) -> float:
    return check_scale_param(loss, name, value)


# Numerical form shared by the scale-parametrized losses. With a = |r| and c the scale,
# each formula has two branches joined by ``where``: a <= c, written in u = a/c <= 1 and in
# a² itself (so nothing underflows that the result does not), and a > c, written in
# v = c/a < 1 and in log(a/c) (so nothing overflows that the result does not). Each branch
# gets an input that is safe for it (``_split``), which keeps the untaken branch finite:
# no NaN reaches a value, and none reaches a gradient when rho is differentiated by autodiff.


def _split(xp: Any, r: Array, c: float) -> tuple[Array, Array, Array, Array]:
    """``(a, big, a_small, a_large)``: |r|, |r| > c, |r| clamped to [0, c] and to [c, inf)."""
    a = xp.abs(r)
    big = a > c
    return a, big, xp.where(big, c, a), xp.where(big, a, c)


def _signed(xp: Any, r: Array, x: Array) -> Array:
    """``x`` with the sign of ``r`` (x >= 0); 0 where r is 0."""
    return xp.where(r < 0, -x, x)


@register("pseudo_huber")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class PseudoHuber(Loss):
    r"""Pseudo-Huber (Charbonnier): :math:`\rho(r) = \delta^2(\sqrt{1 + (r/\delta)^2} - 1)`.

    .. math:: \psi(r) = \frac{r}{\sqrt{1 + (r/\delta)^2}}, \qquad
              \psi'(r) = \left(1 + (r/\delta)^2\right)^{-3/2}

    A smooth (C-infinity) Huber: quadratic near 0, slope :math:`\pm\delta` far away.
    Barron's loss with :math:`\alpha = 1` is this with scale c = delta, divided by delta².

    Examples
    --------
    >>> import numpy as np
    >>> PseudoHuber(delta=1.0).rho(np.array([0.0, 1.0]))
    array([0.        , 0.41421356])
    """

    delta: float = 1.0

    formula = "delta^2 (sqrt(1 + (r/delta)^2) - 1)"
    tuning_parameter = "delta"

    def __post_init__(self) -> None:
        object.__setattr__(self, "delta", _scale_param("pseudo_huber", "delta", self.delta))

    def rho(self, r: Array) -> Array:
        xp = namespace(r)
        d = self.delta
        _, big, a_s, a_l = _split(xp, r, d)
        u, v = a_s / d, d / a_l
        # sqrt(1+u²) - 1 = a²/δ² / (sqrt(1+u²) + 1)          (no cancellation for small u)
        #               = u (sqrt(1+v²) - v), times δ² = δ a (...)   (no overflow for large u)
        small = a_s * a_s / (xp.sqrt(1.0 + u * u) + 1.0)
        large = (d * (xp.sqrt(1.0 + v * v) - v)) * a_l
        return xp.where(big, large, small)

    def psi(self, r: Array) -> Array:
        xp = namespace(r)
        d = self.delta
        _, big, a_s, a_l = _split(xp, r, d)
        u, v = a_s / d, d / a_l
        return _signed(xp, r, xp.where(big, d / xp.sqrt(1.0 + v * v), a_s / xp.sqrt(1.0 + u * u)))

    def psi_prime(self, r: Array) -> Array:
        xp = namespace(r)
        d = self.delta
        _, big, a_s, a_l = _split(xp, r, d)
        u, v = a_s / d, d / a_l
        # (1+u²)^(-3/2) = (v / sqrt(1+v²))³ for large u
        t = xp.where(big, v / xp.sqrt(1.0 + v * v), 1.0 / xp.sqrt(1.0 + u * u))
        return t * t * t


@register("log_cosh")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class LogCosh(Loss):
    r"""Log-cosh: :math:`\rho(r) = \log\cosh r`, :math:`\psi = \tanh r`,
    :math:`\psi' = 1 - \tanh^2 r`.

    Notes
    -----
    Computed as :math:`\operatorname{log1p}(m^2 / (2s(1+s)^2))` with
    :math:`m = \operatorname{expm1}(-2|r|)`, :math:`s = e^{-|r|}` for :math:`|r| < 1` (that is
    :math:`\cosh r - 1` without cancellation for small r) and
    :math:`|r| + \operatorname{log1p}(e^{-2|r|}) - \log 2` beyond (``cosh`` itself
    overflows past :math:`|r| \approx 89` in float32); finite for any finite r.
    :math:`\psi' = 4e^{-2|r|}/(1 + e^{-2|r|})^2`, accurate where :math:`1 - \tanh^2` would
    round to 0. The maximum-likelihood loss of the
    hyperbolic-secant distribution.

    Examples
    --------
    >>> import numpy as np
    >>> LogCosh().rho(np.array([0.0, 1e4], dtype=np.float32))
    array([   0.   , 9999.307], dtype=float32)
    """

    formula = "log cosh r"
    noise_model = "hyperbolic secant"

    def rho(self, r: Array) -> Array:
        xp = namespace(r)
        a = xp.abs(r)
        big = a >= 1.0
        # Both sides from psi's expm1 (a fused kernel evaluates both sides of a where, and
        # computes the shared call once): m = expm1(-2a), e^{-2a} = 1 + m (exact for a >= 1,
        # Sterbenz) and, with s = e^{-a} = sqrt(1 + m), cosh a - 1 = m² / (2 s (1 + s)²), a
        # product without cancellation (1 - s = -m/(1 + s)).
        m = xp.expm1(-2.0 * a)
        e = 1.0 + m
        s = xp.sqrt(xp.where(big, 1.0, e))
        one_s = 1.0 + s
        # one log1p for both sides: log1p(cosh a - 1) below 1, a - log 2 + log1p(e^{-2a})
        log = xp.log1p(xp.where(big, e, m * m / (2.0 * s * (one_s * one_s))))
        return xp.where(big, a + log - _LOG2, log)

    def psi(self, r: Array) -> Array:
        xp = namespace(r)
        m = xp.expm1(-2.0 * xp.abs(r))  # tanh|r| = -m / (2 + m), exact in form at 0 and inf
        return _signed(xp, r, xp.abs(m) / (2.0 + m))

    def psi_prime(self, r: Array) -> Array:
        xp = namespace(r)
        e = xp.exp(-2.0 * xp.abs(r))
        d = 1.0 + e
        return 4.0 * e / (d * d)


@register("quantile")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class Quantile(Loss):
    r"""Quantile (pinball) loss at level q, on r = prediction − target:

    .. math:: \rho(r) = q\,\max(-r, 0) + (1 - q)\,\max(r, 0)

    i.e. :math:`q\max(y - \hat y, 0) + (1-q)\max(\hat y - y, 0)`, whose minimiser is the
    q-quantile of the target. ``q`` is a level in (0, 1), or a sequence or 1-d array of levels
    (list, tuple, ndarray, tensor) applied along the prediction's last dimension (several
    quantiles in one call).

    Notes
    -----
    :math:`\psi(r) = 1 - q` for r > 0, :math:`-q` for r < 0 and 0 at r = 0 (the
    subgradient closest to MAE's convention; q = 0.5 gives half the absolute error).
    :math:`\psi' = 0`. The maximum-likelihood loss of the asymmetric Laplace distribution.
    """

    q: float | tuple[float, ...] = 0.5

    formula = "q max(-r, 0) + (1 - q) max(r, 0)"
    noise_model = "asymmetric Laplace"
    symmetric = False

    def __post_init__(self) -> None:
        q: Any = self.q
        if hasattr(q, "__array__"):  # ndarray, tensor or NumPy scalar; 0-d is one level
            arr = np.asarray(q)
            q = arr.item() if arr.ndim == 0 else tuple(arr.reshape(-1).tolist())
        elif isinstance(q, Sequence) and not isinstance(q, str):
            q = tuple(q)
        if isinstance(q, tuple):
            if not q:
                raise ValueError("quantile: parameter q must not be an empty sequence")
            levels = tuple(self._level(v) for v in q)
            object.__setattr__(self, "q", levels if len(levels) > 1 else levels[0])
        else:
            object.__setattr__(self, "q", self._level(q))

    @staticmethod
    def _level(v: Any) -> float:
        value = check_loss_param("quantile", "q", v, low=0.0)
        if value >= 1.0:
            raise ValueError(f"quantile: parameter q must be in (0, 1), got {v!r}")
        return value

    def _q(self, r: Array) -> Any:
        if not isinstance(self.q, tuple):  # one level (a float, or a traced JAX value)
            return self.q
        if r.ndim == 0 or r.shape[-1] != len(self.q):
            raise ValueError(
                f"quantile: {len(self.q)} levels q={self.q} need the prediction's last "
                f"dimension to be {len(self.q)}, got shape {tuple(r.shape)}"
            )
        xp = namespace(r)
        if xp.__name__ == "torch":
            return xp.asarray(self.q, dtype=r.dtype, device=r.device)
        return xp.asarray(self.q, dtype=r.dtype)

    def rho(self, r: Array) -> Array:
        xp = namespace(r)
        q = self._q(r)
        return q * xp.clip(-r, 0.0, None) + (1.0 - q) * xp.clip(r, 0.0, None)

    def psi(self, r: Array) -> Array:
        xp = namespace(r)
        q = self._q(r)
        s = xp.sign(r)
        return xp.where(s > 0, (1.0 - q) * s, q * s)

    def psi_prime(self, r: Array) -> Array:
        return namespace(r).zeros_like(r)

    def weight(self, r: Array) -> Array:
        """IRLS weight psi(r)/r: (1-q)/r or q/|r|, +inf at 0."""
        xp = namespace(r)
        zero = r == 0
        safe = xp.where(zero, xp.ones_like(r), r)
        return xp.where(zero, xp.full_like(r, float("inf")), self.psi(safe) / safe)

    def breakpoints(self) -> tuple[float, ...]:
        return (0.0,)

    def depends_on_position(self) -> bool:
        return isinstance(self.q, tuple)


@register("cauchy")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class Cauchy(Loss):
    r"""Cauchy (Lorentzian): :math:`\rho(r) = \tfrac{c^2}{2}\log(1 + (r/c)^2)`.

    .. math:: \psi(r) = \frac{r}{1 + (r/c)^2}, \qquad
              \psi'(r) = \frac{1 - (r/c)^2}{(1 + (r/c)^2)^2}

    Redescending, not bounded (grows like log). c = 2.385 gives 95% efficiency under
    Gaussian noise. The maximum-likelihood loss of the Cauchy distribution with scale c.
    """

    c: float = 2.385

    formula = "c^2/2 log(1 + (r/c)^2)"
    noise_model = "Cauchy"
    tuning_parameter = "c"

    def __post_init__(self) -> None:
        object.__setattr__(self, "c", _scale_param("cauchy", "c", self.c))

    def rho(self, r: Array) -> Array:
        xp = namespace(r)
        c = self.c
        a = xp.abs(r)
        # one log1p for both sides (the kernels evaluate both sides of the where)
        log, u2 = log1p_square(xp, a, c)
        a_s = xp.where(a > c, c, a)
        # a²/2 · log1p(u²)/u² below c: exact for u² underflowing; c²/2 log1p(u²) above
        zero = u2 < RATIO_ONE
        small = 0.5 * a_s * a_s * xp.where(zero, 1.0, log / xp.where(zero, 1.0, u2))
        return xp.where(a > c, (0.5 * c * c) * log, small)

    def psi(self, r: Array) -> Array:
        xp = namespace(r)
        c = self.c
        _, big, a_s, a_l = _split(xp, r, c)
        u, v = a_s / c, c / a_l
        # r / (1 + u²) = c v / (1 + v²) for large u
        return _signed(xp, r, xp.where(big, (c * v) / (1.0 + v * v), a_s / (1.0 + u * u)))

    def psi_prime(self, r: Array) -> Array:
        xp = namespace(r)
        c = self.c
        _, big, a_s, a_l = _split(xp, r, c)
        u2, v2 = (a_s / c) ** 2, (c / a_l) ** 2
        ds, dl = 1.0 + u2, 1.0 + v2
        return xp.where(big, v2 * (v2 - 1.0) / (dl * dl), (1.0 - u2) / (ds * ds))


@register("geman_mcclure")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class GemanMcClure(Loss):
    r"""Geman-McClure: :math:`\rho(r) = \tfrac{c^2}{2}\,\frac{(r/c)^2}{1 + (r/c)^2}`.

    .. math:: \psi(r) = \frac{r}{(1 + (r/c)^2)^2}, \qquad
              \psi'(r) = \frac{1 - 3(r/c)^2}{(1 + (r/c)^2)^3}

    Bounded by :math:`c^2/2`, redescending; c = 3.787 (the default) gives 95% Gaussian
    efficiency. Barron's :math:`\alpha = -2` case, :math:`2u^2/(u^2 + 4)` with u = r/c_B,
    is this with :math:`c = 2 c_B`, scaled.
    """

    c: float = 3.787

    formula = "c^2/2 (r/c)^2 / (1 + (r/c)^2)"
    tuning_parameter = "c"

    def __post_init__(self) -> None:
        object.__setattr__(self, "c", _scale_param("geman_mcclure", "c", self.c))

    def rho(self, r: Array) -> Array:
        xp = namespace(r)
        c = self.c
        _, big, a_s, a_l = _split(xp, r, c)
        u, v = a_s / c, c / a_l
        # c²/2 u²/(1+u²) = a²/2 / (1+u²) = c²/2 / (1+v²)
        return xp.where(big, (0.5 * c * c) / (1.0 + v * v), 0.5 * a_s * a_s / (1.0 + u * u))

    def psi(self, r: Array) -> Array:
        xp = namespace(r)
        c = self.c
        _, big, a_s, a_l = _split(xp, r, c)
        u, v = a_s / c, c / a_l
        ds, dl = 1.0 + u * u, 1.0 + v * v
        # r/(1+u²)² = c v³/(1+v²)² for large u
        large = (c * v) * v * v / (dl * dl)
        return _signed(xp, r, xp.where(big, large, a_s / (ds * ds)))

    def psi_prime(self, r: Array) -> Array:
        xp = namespace(r)
        c = self.c
        _, big, a_s, a_l = _split(xp, r, c)
        u2, v2 = (a_s / c) ** 2, (c / a_l) ** 2
        ds, dl = 1.0 + u2, 1.0 + v2
        # (1 - 3u²)/(1+u²)³ = v⁴ (v² - 3)/(1+v²)³ for large u
        large = v2 * v2 * (v2 - 3.0) / (dl * dl * dl)
        return xp.where(big, large, (1.0 - 3.0 * u2) / (ds * ds * ds))


@register("welsch")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class Welsch(Loss):
    r"""Welsch (Leclerc): :math:`\rho(r) = \tfrac{c^2}{2}(1 - e^{-(r/c)^2})`.

    .. math:: \psi(r) = r\,e^{-(r/c)^2}, \qquad \psi'(r) = (1 - 2(r/c)^2)\,e^{-(r/c)^2}

    Bounded by :math:`c^2/2`, redescending; c = 2.985 gives 95% Gaussian efficiency.
    (Barron writes Welsch as :math:`1 - \exp(-\tfrac12 (r/c_B)^2)`: :math:`c = \sqrt2\,c_B`.)
    """

    c: float = 2.985

    formula = "c^2/2 (1 - exp(-(r/c)^2))"
    tuning_parameter = "c"

    def __post_init__(self) -> None:
        object.__setattr__(self, "c", _scale_param("welsch", "c", self.c))

    def rho(self, r: Array) -> Array:
        xp = namespace(r)
        c = self.c
        a, big, a_s, _ = _split(xp, r, c)
        # one expm1 for both sides: e^{-u²} is 0 long before u² overflows, so u is capped
        z = -(xp.clip(a / c, None, _FLAT) ** 2)
        e = xp.expm1(z)
        # a²/2 · (1 - e^{-u²})/u² for small u (exact where u² underflows); c²/2 (1 - e^{-u²})
        zero = z > -RATIO_ONE  # z <= 0
        small = 0.5 * a_s * a_s * xp.where(zero, 1.0, e / xp.where(zero, 1.0, z))
        return xp.where(big, (-0.5 * c * c) * e, small)

    def psi(self, r: Array) -> Array:
        xp = namespace(r)
        rc = xp.clip(r, -_FLAT * self.c, _FLAT * self.c)  # r e^{-u²} is 0 beyond u = 64
        return rc * xp.exp(-((rc / self.c) ** 2))

    def psi_prime(self, r: Array) -> Array:
        xp = namespace(r)
        u2 = xp.clip(xp.abs(r) / self.c, None, _FLAT) ** 2
        return (1.0 - 2.0 * u2) * xp.exp(-u2)


@register("tukey")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class Tukey(Loss):
    r"""Tukey's biweight (bisquare).

    .. math::

        \rho(r) = \begin{cases} \tfrac{c^2}{6}\left(1 - (1 - (r/c)^2)^3\right) & |r| \le c \\
                                \tfrac{c^2}{6} & |r| > c \end{cases}
        \qquad \psi(r) = r\,(1 - (r/c)^2)^2 \;\; (|r| \le c), \;\; 0 \text{ beyond}

    Notes
    -----
    Beyond c the loss is the constant :math:`c^2/6`, not 0 (a docstring in statsmodels says
    0; its code returns :math:`c^2/6`, as here). c = 4.685 gives 95% Gaussian efficiency.
    """

    c: float = 4.685

    formula = "c^2/6 (1 - (1 - (r/c)^2)^3) if |r| <= c, else c^2/6"
    tuning_parameter = "c"

    def __post_init__(self) -> None:
        object.__setattr__(self, "c", _scale_param("tukey", "c", self.c))

    def _inside(self, r: Array) -> tuple[Any, Array, Array]:
        """``(xp, rc, w)``: r clamped to [-c, c] (psi and rho are flat outside) and
        w = 1 - (rc/c)² computed as (c - a)(c + a)/c², exact near |r| = c."""
        xp = namespace(r)
        c = self.c
        rc = xp.clip(r, -c, c)
        a = xp.abs(rc)
        # c - a is exact near a = c (Sterbenz), where 1 - a/c would carry a/c's rounding.
        return xp, rc, ((c - a) / c) * ((c + a) / c)

    def rho(self, r: Array) -> Array:
        xp, rc, w = self._inside(r)
        u2 = 1.0 - w
        # c²/6 (1 - w³) = rc²/6 (3w + u⁴): no cancellation for small r, exactly c²/6 at c.
        bound = self.c * self.c / 6.0
        inside = xp.clip(rc * rc * (3.0 * w + u2 * u2) / 6.0, None, bound)  # rounding near c
        return xp.where(xp.abs(r) >= self.c, bound, inside)

    def psi(self, r: Array) -> Array:
        _, rc, w = self._inside(r)
        return rc * w * w

    def psi_prime(self, r: Array) -> Array:
        _, _, w = self._inside(r)
        return w * (5.0 * w - 4.0)

    def breakpoints(self) -> tuple[float, ...]:
        return (-self.c, self.c)


@register("fair")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class Fair(Loss):
    r"""Fair: :math:`\rho(r) = c^2\left(|r|/c - \log(1 + |r|/c)\right)`.

    .. math:: \psi(r) = \frac{r}{1 + |r|/c}, \qquad \psi'(r) = \frac{1}{(1 + |r|/c)^2}

    Convex, C² (:math:`\psi''` jumps at 0), slope :math:`\pm c` far away.
    """

    c: float = 1.3998

    formula = "c^2 (|r|/c - log(1 + |r|/c))"
    tuning_parameter = "c"

    def __post_init__(self) -> None:
        object.__setattr__(self, "c", _scale_param("fair", "c", self.c))

    def rho(self, r: Array) -> Array:
        xp = namespace(r)
        c = self.c
        a = xp.abs(r)
        big = a > _FAIR_SERIES * c
        # u - log1p(u) cancels for small u. With t = u/(2+u), log1p(u) = 2 atanh(t) and
        # u - log1p(u) = t² F(t), F = 2/(1-t) - 2t (1/3 + t²/5 + t⁴/7 + ...); c t = a/(2+u).
        a_s = xp.where(big, 0.0, a)
        u = a_s / c
        t = u / (2.0 + u)
        t2 = t * t
        series = xp.zeros_like(t2) + _FAIR_COEFFS[0]
        for coeff in _FAIR_COEFFS[1:]:
            series = series * t2 + coeff
        ct = a_s / (2.0 + u)
        small = ct * ct * (2.0 / (1.0 - t) - 2.0 * t * series)
        a_l = xp.where(big, a, c)
        large = c * (a_l - c * log1p_quotient(xp, a_l, c))  # one log1p
        return xp.where(big, large, small)

    def psi(self, r: Array) -> Array:
        xp = namespace(r)
        c = self.c
        _, big, a_s, a_l = _split(xp, r, c)
        # r/(1 + u) = c/(1 + v) for large u (u itself may overflow)
        return _signed(xp, r, xp.where(big, c / (1.0 + c / a_l), a_s / (1.0 + a_s / c)))

    def psi_prime(self, r: Array) -> Array:
        d = 1.0 + namespace(r).abs(r) / self.c
        return 1.0 / (d * d)

    def breakpoints(self) -> tuple[float, ...]:
        return (0.0,)
