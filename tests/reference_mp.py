"""High-precision references: rho, psi and psi' of every loss in 60-digit mpmath.

Written from the textbook formulas (no regloss code, no numerically rearranged forms), so
they are the truth the float32/float64 implementations are measured against over the whole
floating-point range. Each function takes an mpf residual and the loss parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import mpmath
from mpmath import mpf

mpmath.mp.dps = 60

Fn = Callable[[Any, dict[str, Any]], Any]


def _p(p: dict[str, Any], name: str, default: float) -> Any:
    return mpf(p.get(name, default))


def _sign(r: Any) -> int:
    return (r > 0) - (r < 0)


def _huber(r: Any, p: dict[str, Any]) -> tuple[Any, Any, Any]:
    d, a = _p(p, "delta", 1.0), abs(r)
    if a <= d:
        return r * r / 2, r, mpf(1)
    return d * (a - d / 2), d * _sign(r), mpf(0)


def _smooth_l1(r: Any, p: dict[str, Any]) -> tuple[Any, Any, Any]:
    b, a = _p(p, "beta", 1.0), abs(r)
    if b == 0:
        return a, mpf(_sign(r)), mpf(0)
    if a <= b:
        return r * r / (2 * b), r / b, 1 / b
    return a - b / 2, mpf(_sign(r)), mpf(0)


def _pseudo_huber(r: Any, p: dict[str, Any]) -> tuple[Any, Any, Any]:
    d = _p(p, "delta", 1.0)
    s = mpmath.sqrt(1 + (r / d) ** 2)
    return d * d * (s - 1), r / s, 1 / s**3


def _log_cosh(r: Any, p: dict[str, Any]) -> tuple[Any, Any, Any]:
    return mpmath.log(mpmath.cosh(r)), mpmath.tanh(r), mpmath.sech(r) ** 2


def _quantile(r: Any, p: dict[str, Any]) -> tuple[Any, Any, Any]:
    q = _p(p, "q", 0.5)
    if r < 0:
        return -q * r, -q, mpf(0)
    return (1 - q) * r, (1 - q) * (r > 0), mpf(0)


def _cauchy(r: Any, p: dict[str, Any]) -> tuple[Any, Any, Any]:
    c = _p(p, "c", 2.385)
    u2 = (r / c) ** 2
    return c * c / 2 * mpmath.log1p(u2), r / (1 + u2), (1 - u2) / (1 + u2) ** 2


def _geman_mcclure(r: Any, p: dict[str, Any]) -> tuple[Any, Any, Any]:
    c = _p(p, "c", 3.787)
    u2 = (r / c) ** 2
    return c * c / 2 * u2 / (1 + u2), r / (1 + u2) ** 2, (1 - 3 * u2) / (1 + u2) ** 3


def _welsch(r: Any, p: dict[str, Any]) -> tuple[Any, Any, Any]:
    c = _p(p, "c", 2.985)
    u2 = (r / c) ** 2
    e = mpmath.exp(-u2)
    return c * c / 2 * (1 - e), r * e, (1 - 2 * u2) * e


def _tukey(r: Any, p: dict[str, Any]) -> tuple[Any, Any, Any]:
    c = _p(p, "c", 4.685)
    if abs(r) >= c:
        return c * c / 6, mpf(0), mpf(0)
    w = 1 - (r / c) ** 2
    return c * c / 6 * (1 - w**3), r * w * w, w * (5 * w - 4)


def _fair(r: Any, p: dict[str, Any]) -> tuple[Any, Any, Any]:
    c = _p(p, "c", 1.3998)
    u = abs(r) / c
    return c * c * (u - mpmath.log1p(u)), r / (1 + u), 1 / (1 + u) ** 2


def _barron(r: Any, p: dict[str, Any]) -> tuple[Any, Any, Any]:
    alpha, c = float(p.get("alpha", 1.0)), _p(p, "scale", 1.0)
    x = r / c
    x2 = x * x
    if alpha == 2:
        return x2 / 2, x / c, 1 / (c * c)
    if alpha == -math.inf:
        e = mpmath.exp(-x2 / 2)
        return 1 - e, x / c * e, (1 - x2) * e / (c * c)
    if alpha == math.inf:
        e = mpmath.exp(x2 / 2)
        return e - 1, x / c * e, (1 + x2) * e / (c * c)
    a = mpf(alpha)
    b = max(abs(a - 2), mpf(1e-9))  # the floor that is part of the definition
    base = x2 / b + 1
    log_base = mpmath.log1p(x2 / b)
    # b/a (base^(a/2) - 1), via expm1 so that tiny |a| keeps its digits; a = 0 is the limit.
    rho = log_base * b / 2 if a == 0 else b / a * mpmath.expm1(a / 2 * log_base)
    psi = x / c * base ** (a / 2 - 1)
    psi_prime = base ** (a / 2 - 2) * (base + (a - 2) * x2 / b) / (c * c)
    return rho, psi, psi_prime


REFERENCE: dict[str, Callable[[Any, dict[str, Any]], tuple[Any, Any, Any]]] = {
    "mse": lambda r, p: (r * r, 2 * r, mpf(2)),
    "mae": lambda r, p: (abs(r), mpf(_sign(r)), mpf(0)),
    "huber": _huber,
    "smooth_l1": _smooth_l1,
    "pseudo_huber": _pseudo_huber,
    "log_cosh": _log_cosh,
    "quantile": _quantile,
    "cauchy": _cauchy,
    "geman_mcclure": _geman_mcclure,
    "welsch": _welsch,
    "tukey": _tukey,
    "fair": _fair,
    "barron": _barron,
}
