"""The statistics each loss carries, computed from its definition (never hand-written).

* :func:`properties`: convexity, smoothness class, bounded rho, redescending psi (all read
  off rho/psi/psi_prime numerically), the noise model the loss is the maximum-likelihood
  loss of (declared by the loss), Gaussian efficiency and breakdown point;
* :func:`efficiency`: asymptotic efficiency, relative to the mean, of the location
  M-estimator with this loss under standard Gaussian noise (known scale):
  :math:`\\mathrm{eff} = (E[Z\\psi(Z)])^2 / E[\\psi(Z)^2]` (Stein's identity
  :math:`E[Z\\psi(Z)] = E[\\psi'(Z)]`, which also holds for psi with jumps, e.g. MAE);
* :func:`tuning_constant`: the value of the loss's scale parameter that reaches a target
  efficiency (Huber 1.345, Tukey 4.685, Cauchy 2.385, Welsch 2.985 at 95%, in regloss's
  parametrizations — see each loss's docstring);
* :func:`breakdown_point`: asymptotic breakdown point of that location estimator.

Integrals use :mod:`scipy.integrate` (install ``regloss[stats]``); everything else needs
only NumPy.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ._optional import MissingExtra, require
from .losses import Loss, registered, resolve

__all__ = ["LossProperties", "breakdown_point", "efficiency", "properties", "tuning_constant"]

_GRID = np.concatenate([-np.logspace(-4, 4, 801)[::-1], [0.0], np.logspace(-4, 4, 801)])
_FAR, _FARTHER = 1e6, 1e12


@dataclasses.dataclass(frozen=True)
class LossProperties:
    """What :func:`properties` finds about one loss with its parameters."""

    loss: str
    formula: str
    convex: bool
    smoothness: str
    bounded: bool
    #: sup of rho when bounded, else None.
    bound: float | None
    redescending: bool
    noise_model: str | None
    #: Gaussian efficiency of the location M-estimator (None without SciPy or for vector q).
    efficiency: float | None
    breakdown_point: float


def _f64(loss: Loss, method: str, r: Any) -> np.ndarray:
    out: np.ndarray = np.asarray(getattr(loss, method)(np.asarray(r, dtype=np.float64)))
    return out


def _jumps(loss: Loss, method: str, at: float) -> bool:
    eps = 1e-7 * max(1.0, abs(at))
    lo, hi = _f64(loss, method, [at - eps, at + eps])
    scale = max(1.0, float(np.max(np.abs(_f64(loss, method, _GRID)))))
    return bool(abs(hi - lo) > 1e-4 * scale)


def _smoothness(loss: Loss) -> str:
    points = loss.breakpoints()
    if not points:
        return "C∞"
    if any(_jumps(loss, "psi", b) for b in points):
        return "C⁰"
    if any(_jumps(loss, "psi_prime", b) for b in points):
        return "C¹"
    return "C²"


def _psi_limits(loss: Loss) -> tuple[float, float, float]:
    """(psi at +far, psi at -far, max |psi| on the grid)."""
    hi, lo = _f64(loss, "psi", [_FARTHER, -_FARTHER])
    return float(hi), float(lo), float(np.max(np.abs(_f64(loss, "psi", _GRID))))


def _is_redescending(loss: Loss) -> bool:
    far = np.abs(_f64(loss, "psi", [_FAR, -_FAR]))
    peak = float(np.max(np.abs(_f64(loss, "psi", _GRID))))
    return bool(np.max(far) < 1e-3 * peak)


def breakdown_point(loss: str | Loss, **params: Any) -> float:
    """Asymptotic breakdown point of the location M-estimator (known scale).

    0 for unbounded psi (MSE: one outlier moves the estimate arbitrarily far), 0.5 for
    redescending psi, and ``min(a, b) / (a + b)`` for a monotone psi bounded by ``a`` above
    and ``-b`` below (0.5 for symmetric losses such as Huber and MAE; ``min(q, 1-q)`` for
    the q-quantile).

    Examples
    --------
    >>> breakdown_point("mse"), breakdown_point("huber"), breakdown_point("quantile", q=0.9)
    (0.0, 0.5, 0.1)
    """
    spec = resolve(loss, params)
    if _is_redescending(spec):
        return 0.5
    hi, lo, peak = _psi_limits(spec)
    if abs(hi) > 10 * peak or abs(lo) > 10 * peak or not (math.isfinite(hi) and math.isfinite(lo)):
        return 0.0
    a, b = abs(hi), abs(lo)
    return round(min(a, b) / (a + b), 12)


def efficiency(loss: str | Loss, **params: Any) -> float:
    """Asymptotic Gaussian efficiency of the location M-estimator with this loss.

    Examples
    --------
    >>> round(efficiency("huber", delta=1.345), 3), round(efficiency("mae"), 4)
    (0.95, 0.6366)
    """
    return _gaussian_efficiency(resolve(loss, params))


def _gaussian_efficiency(spec: Loss) -> float:
    integrate = require("scipy.integrate", "the Gaussian efficiency")

    if isinstance(getattr(spec, "q", None), tuple):
        raise ValueError("efficiency is defined for a single quantile level; pass a scalar q")
    span = 40.0
    points = sorted({b for b in spec.breakpoints() if -span < b < span} | {0.0})

    def gauss(z: float) -> float:
        return math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)

    def psi(z: float) -> float:
        return float(spec.psi(np.float64(z)))

    opts = {"points": points, "limit": 400, "epsabs": 1e-13, "epsrel": 1e-11}
    e_zpsi = integrate.quad(lambda z: z * psi(z) * gauss(z), -span, span, **opts)[0]
    e_psi2 = integrate.quad(lambda z: psi(z) ** 2 * gauss(z), -span, span, **opts)[0]
    return float(e_zpsi**2 / e_psi2)


def tuning_constant(name: str, efficiency: float = 0.95) -> float:
    """The loss's scale parameter that gives ``efficiency`` under Gaussian noise.

    Parameters
    ----------
    name : str
        A registered loss with a tuning parameter (``huber``, ``tukey``, ``cauchy``,
        ``welsch``, ``fair``, ``pseudo_huber``, ...).
    efficiency : float, default 0.95
        Target asymptotic efficiency in (0, 1).

    Examples
    --------
    >>> round(tuning_constant("huber"), 3), round(tuning_constant("tukey", 0.99), 3)
    (1.345, 7.041)
    """
    optimize = require("scipy.optimize", "tuning_constant()")

    cls = type(resolve(name))  # raises the registry's error listing the choices
    param = cls.tuning_parameter
    if param is None:
        raise ValueError(
            f"loss {name!r} has no tuning parameter; losses that do: "
            f"{[n for n, c in registered().items() if getattr(c, 'tuning_parameter', None)]}"
        )
    if not (isinstance(efficiency, float | int) and 0.0 < efficiency < 1.0):
        raise ValueError(f"efficiency must be in (0, 1), got {efficiency!r}")

    def gap(c: float) -> float:
        return _gaussian_efficiency(cls(**{param: c})) - efficiency

    lo, hi = 1e-2, 1e2
    if gap(lo) * gap(hi) > 0:
        raise ValueError(
            f"{name} does not reach efficiency {efficiency} for {param} in [{lo}, {hi}]"
        )
    return float(optimize.brentq(gap, lo, hi, xtol=1e-10))


def properties(loss: str | Loss, **params: Any) -> LossProperties:
    """Everything regloss knows about a loss, computed from its definition.

    Examples
    --------
    >>> p = properties("tukey")
    >>> p.convex, p.smoothness, p.bounded, p.redescending, round(p.efficiency, 3)
    (False, 'C²', True, True, 0.95)
    """
    spec = resolve(loss, params)
    psi = _f64(spec, "psi", _GRID)
    convex = bool(np.all(np.diff(psi) >= -1e-12 * np.max(np.abs(psi))))
    far = _f64(spec, "rho", [_FAR, -_FAR, _FARTHER, -_FARTHER])
    bounded = bool(np.all(np.abs(far[2:] - far[:2]) <= 1e-6 * np.abs(far[2:])))
    try:
        eff: float | None = _gaussian_efficiency(spec)
    except (MissingExtra, ValueError):
        eff = None
    return LossProperties(
        loss=repr(spec),
        formula=type(spec).formula,
        convex=convex,
        smoothness=_smoothness(spec),
        bounded=bounded,
        bound=float(np.max(far)) if bounded else None,
        redescending=_is_redescending(spec),
        noise_model=type(spec).noise_model,
        efficiency=eff,
        breakdown_point=breakdown_point(spec),
    )
