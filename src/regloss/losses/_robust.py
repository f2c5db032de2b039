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
from typing import Any

from .._namespace import namespace
from .._typing import Array
from .._validate import check_loss_param
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


def _scale_param(loss: str, name: str, value: Any) -> float:
    return check_loss_param(loss, name, value, low=0.0)


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
        u = r / self.delta
        # sqrt(1+u^2) - 1 = u^2 / (sqrt(1+u^2) + 1): no cancellation for small u.
        return self.delta**2 * (u * u) / (xp.sqrt(1.0 + u * u) + 1.0)

    def psi(self, r: Array) -> Array:
        u = r / self.delta
        return r / namespace(r).sqrt(1.0 + u * u)

    def psi_prime(self, r: Array) -> Array:
        xp = namespace(r)
        u = r / self.delta
        s = xp.sqrt(1.0 + u * u)
        return 1.0 / (s * s * s)


@register("log_cosh")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class LogCosh(Loss):
    r"""Log-cosh: :math:`\rho(r) = \log\cosh r`, :math:`\psi = \tanh r`,
    :math:`\psi' = 1 - \tanh^2 r`.

    Notes
    -----
    Computed as :math:`|r| + \operatorname{log1p}(e^{-2|r|}) - \log 2`: ``cosh`` itself
    overflows past :math:`|r| \approx 89` in float32, this form is finite for any finite r.
    The maximum-likelihood loss of the hyperbolic-secant distribution.

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
        return a + xp.log1p(xp.exp(-2.0 * a)) - _LOG2

    def psi(self, r: Array) -> Array:
        return namespace(r).tanh(r)

    def psi_prime(self, r: Array) -> Array:
        t = namespace(r).tanh(r)
        return 1.0 - t * t


@register("quantile")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class Quantile(Loss):
    r"""Quantile (pinball) loss at level q, on r = prediction − target:

    .. math:: \rho(r) = q\,\max(-r, 0) + (1 - q)\,\max(r, 0)

    i.e. :math:`q\max(y - \hat y, 0) + (1-q)\max(\hat y - y, 0)`, whose minimiser is the
    q-quantile of the target. ``q`` is a level in (0, 1) or a tuple of levels applied along
    the prediction's last dimension (several quantiles in one call).

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
        q = self.q
        if isinstance(q, (list, tuple)):
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
        if isinstance(self.q, float):
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
        return not isinstance(self.q, float)


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
        u = r / self.c
        return 0.5 * self.c**2 * namespace(r).log1p(u * u)

    def psi(self, r: Array) -> Array:
        u = r / self.c
        return r / (1.0 + u * u)

    def psi_prime(self, r: Array) -> Array:
        u2 = (r / self.c) ** 2
        return (1.0 - u2) / ((1.0 + u2) * (1.0 + u2))


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
        u2 = (r / self.c) ** 2
        return 0.5 * self.c**2 * u2 / (1.0 + u2)

    def psi(self, r: Array) -> Array:
        d = 1.0 + (r / self.c) ** 2
        return r / (d * d)

    def psi_prime(self, r: Array) -> Array:
        u2 = (r / self.c) ** 2
        d = 1.0 + u2
        return (1.0 - 3.0 * u2) / (d * d * d)


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
        u2 = (r / self.c) ** 2
        return -0.5 * self.c**2 * namespace(r).expm1(-u2)

    def psi(self, r: Array) -> Array:
        return r * namespace(r).exp(-((r / self.c) ** 2))

    def psi_prime(self, r: Array) -> Array:
        u2 = (r / self.c) ** 2
        return (1.0 - 2.0 * u2) * namespace(r).exp(-u2)


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

    def _inside(self, r: Array) -> tuple[Any, Array]:
        xp = namespace(r)
        u2 = xp.clip((r / self.c) ** 2, None, 1.0)  # clamped: psi and rho are flat outside
        return xp, 1.0 - u2

    def rho(self, r: Array) -> Array:
        _, v = self._inside(r)
        return self.c**2 / 6.0 * (1.0 - v * v * v)

    def psi(self, r: Array) -> Array:
        _, v = self._inside(r)
        return r * v * v

    def psi_prime(self, r: Array) -> Array:
        _, v = self._inside(r)
        return v * (5.0 * v - 4.0)

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
        u = xp.abs(r) / self.c
        return self.c**2 * (u - xp.log1p(u))

    def psi(self, r: Array) -> Array:
        return r / (1.0 + namespace(r).abs(r) / self.c)

    def psi_prime(self, r: Array) -> Array:
        d = 1.0 + namespace(r).abs(r) / self.c
        return 1.0 / (d * d)

    def breakpoints(self) -> tuple[float, ...]:
        return (0.0,)
