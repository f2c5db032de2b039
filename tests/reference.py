"""Naive float64 references, written out by hand from the formulas (no regloss code)."""

from __future__ import annotations

import numpy as np


def _c(p: dict, name: str, default: float) -> float:
    return float(p.get(name, default))


RHO = {
    "mse": lambda r, p: r**2,
    "mae": lambda r, p: np.abs(r),
    "huber": lambda r, p: np.where(
        np.abs(r) <= p.get("delta", 1.0),
        0.5 * r**2,
        p.get("delta", 1.0) * (np.abs(r) - 0.5 * p.get("delta", 1.0)),
    ),
    "smooth_l1": lambda r, p: (
        np.abs(r)
        if p.get("beta", 1.0) == 0
        else np.where(
            np.abs(r) < p.get("beta", 1.0),
            0.5 * r**2 / p.get("beta", 1.0),
            np.abs(r) - 0.5 * p.get("beta", 1.0),
        )
    ),
    "pseudo_huber": lambda r, p: (
        _c(p, "delta", 1) ** 2 * (np.sqrt(1 + (r / _c(p, "delta", 1)) ** 2) - 1)
    ),
    "log_cosh": lambda r, p: np.log(np.cosh(r)),
    "quantile": lambda r, p: np.where(r < 0, -_c(p, "q", 0.5) * r, (1 - _c(p, "q", 0.5)) * r),
    "cauchy": lambda r, p: _c(p, "c", 2.385) ** 2 / 2 * np.log(1 + (r / _c(p, "c", 2.385)) ** 2),
    "geman_mcclure": lambda r, p: (
        _c(p, "c", 3.787) ** 2
        / 2
        * (r / _c(p, "c", 3.787)) ** 2
        / (1 + (r / _c(p, "c", 3.787)) ** 2)
    ),
    "welsch": lambda r, p: (
        _c(p, "c", 2.985) ** 2 / 2 * (1 - np.exp(-((r / _c(p, "c", 2.985)) ** 2)))
    ),
    "tukey": lambda r, p: np.where(
        np.abs(r) <= _c(p, "c", 4.685),
        _c(p, "c", 4.685) ** 2 / 6 * (1 - (1 - (r / _c(p, "c", 4.685)) ** 2) ** 3),
        _c(p, "c", 4.685) ** 2 / 6,
    ),
    "fair": lambda r, p: (
        _c(p, "c", 1.3998) ** 2
        * (np.abs(r) / _c(p, "c", 1.3998) - np.log(1 + np.abs(r) / _c(p, "c", 1.3998)))
    ),
    "barron": lambda r, p: _barron(r / _c(p, "scale", 1.0), _c(p, "alpha", 1.0)),
}


def _barron(x: np.ndarray, a: float) -> np.ndarray:
    """Barron's closed forms, in 50-digit arithmetic (mpmath) so the reference itself
    does not cancel near alpha = 0 and 2."""
    import mpmath

    mpmath.mp.dps = 50

    def one(v: float) -> float:
        xv = mpmath.mpf(v)
        if a == 2:
            return float(xv**2 / 2)
        if a == 0:
            return float(mpmath.log(xv**2 / 2 + 1))
        if a == -np.inf:
            return float(1 - mpmath.exp(-(xv**2) / 2))
        av = mpmath.mpf(a)
        b = abs(av - 2)
        return float(b / av * ((xv**2 / b + 1) ** (av / 2) - 1))

    return np.vectorize(one, otypes=[np.float64])(np.asarray(x, dtype=np.float64))


def reduce(
    values: np.ndarray,
    reduction: str,
    weight: np.ndarray | None = None,
    keep: np.ndarray | None = None,
) -> np.ndarray | float:
    """Weighted, masked reduction spelled out in float64."""
    v = np.asarray(values, dtype=np.float64)
    f = np.ones_like(v)
    if weight is not None:
        w = np.asarray(weight, dtype=np.float64)
        f = f * (w.reshape((-1,) + (1,) * (v.ndim - 1)) if w.shape != v.shape else w)
    if keep is not None:
        k = np.asarray(keep)
        k = k.reshape((-1,) + (1,) * (v.ndim - 1)) if k.shape != v.shape else k
        v = np.where(k, v, 0.0)
        f = f * k
    if reduction == "none":
        return v * f
    total = float(np.sum(v * f))
    if reduction == "sum":
        return total
    den = float(np.sum(f))
    mean = total / den if den > 0 else 0.0
    if reduction == "mean":
        return mean
    per_sample = v.size // v.shape[0]
    return mean * per_sample
