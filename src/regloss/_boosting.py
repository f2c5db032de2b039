"""What the gradient-boosting front-ends share: gradient and Newton weight of a loss.

grad = w·ψ(ŷ − y) exactly, hess = w·:meth:`~regloss.losses.Loss.newton_weight` (ŷ − y)
(positive and finite; the IRLS weight, see its docstring), w the sample weight; and the
eval metric Σ w·ρ / Σ w. Computed in float64.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import numpy as _numpy
from .losses import Loss, resolve
from .metrics import _weighted_median

__all__ = ["base_score", "grad_hess", "mean_loss", "resolve_loss"]


def resolve_loss(name: str | Loss, params: dict[str, Any]) -> Loss:
    loss = resolve(name, params)
    if loss.depends_on_position():
        raise ValueError(
            f"{loss!r} has parameters per position (one per output); the boosting "
            "objectives take one loss for every output"
        )
    return loss


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, labels shaped like them) in float64."""
    p = np.asarray(y_pred, dtype=np.float64)
    t = np.asarray(y_true, dtype=np.float64)
    if t.size != p.size:
        raise ValueError(
            f"the labels have {t.size} values but the predictions {p.size}; one label per "
            "prediction (multi-output: an (n, outputs) label matrix)"
        )
    return p, t.reshape(p.shape)


def _residual(y_true: Any, y_pred: Any) -> np.ndarray:
    p, t = _pair(y_true, y_pred)
    out: np.ndarray = p - t
    return out


def _weights(weight: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    if weight is None:
        return None
    w = np.asarray(weight, dtype=np.float64)
    if w.size == 0:
        return None
    if w.shape[0] != shape[0]:
        raise ValueError(f"sample_weight has {w.shape[0]} values but there are {shape[0]} rows")
    return w.reshape((shape[0],) + (1,) * (len(shape) - 1))


HESSIANS = ("irls", "newton")


def check_hessian(hessian: str) -> str:
    if hessian not in HESSIANS:
        raise ValueError(
            f"hessian must be 'irls' (psi(r)/r, positive, never overshoots) or 'newton' "
            f"(psi'(r), floored where it is not positive), got {hessian!r}"
        )
    return hessian


#: for a kinked loss (weight 1/|r|), |r| is lifted to this fraction of the round's median
#: |r|: a residual of exactly 0 (a quantile start gives one) would otherwise weigh 1/eps
#: and pin its leaf. Friedman #1, quantile 0.2/0.8, test pinball loss against XGBoost's
#: reg:quantileerror: 2.24/1.86x with eps alone, 1.07/1.01x with 0.25 (diabetes 1.00/0.97)
KINK_FRACTION = 0.25


def kinked(loss: Loss) -> bool:
    """Whether the loss's IRLS weight is infinite at 0 (MAE, quantile, smooth L1 at β=0)."""
    return not math.isfinite(float(np.asarray(loss.weight(np.zeros(1)))[0]))


def grad_hess(
    loss: Loss,
    y_true: Any,
    y_pred: Any,
    weight: Any = None,
    eps: float = 1e-6,
    hessian: str = "irls",
) -> tuple[np.ndarray, np.ndarray]:
    """(gradient, Hessian) of Σ w·ρ(ŷ − y) with respect to ŷ, shaped like ``y_pred``.
    ``hessian='irls'``: :meth:`~regloss.losses.Loss.newton_weight` (for a kinked loss with
    |r| lifted to ``max(eps, KINK_FRACTION·median|r|)``); ``'newton'``: ψ′ where it exceeds
    that weight's floor, the floor elsewhere (the built-in objectives' choice for smooth
    losses, e.g. XGBoost's reg:pseudohubererror)."""
    r = _residual(y_true, y_pred)
    if kinked(loss) and r.size:
        finite = np.abs(r[np.isfinite(r)])
        if finite.size:
            eps = max(eps, KINK_FRACTION * float(np.median(finite)))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        grad = np.asarray(loss.psi(r), dtype=np.float64)
        hess = np.asarray(loss.newton_weight(r, eps=eps), dtype=np.float64)
        if hessian == "newton":
            floor = loss.newton_floor(float(np.finfo(np.float64).smallest_normal))
            hess = np.maximum(np.asarray(loss.psi_prime(r), dtype=np.float64), floor)
    w = _weights(weight, r.shape)
    if w is not None:
        grad, hess = grad * w, hess * w
    return grad, hess


def mean_loss(loss: Loss, y_true: Any, y_pred: Any, weight: Any = None) -> float:
    """Σ w·ρ(ŷ − y) / Σ w over every prediction (the NumPy front-end's weighted mean, in
    float64)."""
    p, t = _pair(y_true, y_pred)
    w = _weights(weight, p.shape)
    return float(_numpy.loss(loss, p, t, weight=None if w is None else w.reshape(-1)))


def base_score(loss: Loss, y: Any, weight: Any = None, iterations: int = 100) -> float:
    """The constant prediction minimising Σ w·ρ(c − y): the M-estimate of location, by
    IRLS from the weighted median (a custom objective's boosting starts from it; XGBoost
    cannot estimate it for one and starts from 0.5)."""
    t = np.asarray(y, dtype=np.float64).ravel()
    w = np.ones_like(t) if weight is None else np.asarray(weight, dtype=np.float64).ravel()
    c = _weighted_median(t, w)
    for _ in range(iterations):
        r = c - t
        g = float(np.sum(w * np.asarray(loss.psi(r))))
        h = float(np.sum(w * np.asarray(loss.newton_weight(r))))
        step = g / h
        c -= step
        if abs(step) <= 1e-12 * max(abs(c), 1e-300):
            break
    return c
