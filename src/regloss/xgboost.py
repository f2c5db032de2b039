"""Every regloss loss as an XGBoost objective and eval metric.

::

    import regloss.xgboost as rx
    booster = xgboost.train(params, dtrain, obj=rx.objective("tukey"),
                            custom_metric=rx.metric("tukey"))
    XGBRegressor(objective=rx.sklearn_objective("huber", delta=2.0))

grad = w·ψ(ŷ − y) and hess = w·``newton_weight`` (ŷ − y): the IRLS weight ψ(r)/r, which
is ψ′ where the loss is quadratic and a positive majorising curvature elsewhere (XGBoost's
own reg:absoluteerror and reg:quantileerror use hess = 1 and refit the leaves with
quantiles, which a custom objective cannot). Multi-output models (``multi_strategy``) get an
(n, outputs) gradient. XGBoost starts a custom objective from ``base_score`` = 0.5 unless
told otherwise: :func:`base_score` gives the loss's own best constant.

Needs ``pip install 'regloss[xgboost]'``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _boosting
from ._optional import require
from .losses import Loss

__all__ = ["base_score", "metric", "objective", "sklearn_metric", "sklearn_objective"]


def _xgb() -> Any:
    return require("xgboost", "regloss.xgboost")


class _Objective:
    """``obj(preds, dtrain) -> (grad, hess)`` for ``xgboost.train``."""

    def __init__(self, loss: Loss, eps: float, hessian: str) -> None:
        self.loss, self.eps, self.hessian = loss, eps, _boosting.check_hessian(hessian)

    def __call__(self, preds: np.ndarray, dtrain: Any) -> tuple[np.ndarray, np.ndarray]:
        labels = dtrain.get_label()
        weight = dtrain.get_weight()
        return _boosting.grad_hess(self.loss, labels, preds, weight, self.eps, self.hessian)

    def __repr__(self) -> str:
        return f"regloss.xgboost.objective({self.loss!r})"


def objective(name: str | Loss, *, eps: float = 1e-6, hessian: str = "irls", **params: Any) -> Any:
    """A custom objective for ``xgboost.train(params, dtrain, obj=...)``; the DMatrix's
    weights multiply the gradient and Hessian. ``eps``: the smallest |r| a kinked loss's
    Newton weight 1/|r| sees (:meth:`~regloss.losses.Loss.newton_weight`); ``hessian``:
    'irls' (that weight) or 'newton' (ψ′, floored; as reg:pseudohubererror)."""
    _xgb()
    return _Objective(_boosting.resolve_loss(name, params), eps, hessian)


def sklearn_objective(
    name: str | Loss, *, eps: float = 1e-6, hessian: str = "irls", **params: Any
) -> Any:
    """A custom objective for ``XGBRegressor(objective=...)`` (``sample_weight`` in
    ``fit`` is honoured); ``eps`` and ``hessian`` as in :func:`objective`."""
    _xgb()
    loss = _boosting.resolve_loss(name, params)
    _boosting.check_hessian(hessian)

    def regloss_objective(
        y_true: np.ndarray, y_pred: np.ndarray, *, sample_weight: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return _boosting.grad_hess(loss, y_true, y_pred, sample_weight, eps, hessian)

    regloss_objective.__qualname__ = f"sklearn_objective({loss!r})"
    return regloss_objective


def metric(name: str | Loss, **params: Any) -> Any:
    """``custom_metric`` for ``xgboost.train``: the weighted mean loss, named after it."""
    _xgb()
    loss = _boosting.resolve_loss(name, params)

    def regloss_metric(preds: np.ndarray, dmatrix: Any) -> tuple[str, float]:
        value = _boosting.mean_loss(loss, dmatrix.get_label(), preds, dmatrix.get_weight())
        return loss.name, value

    return regloss_metric


def sklearn_metric(name: str | Loss, **params: Any) -> Any:
    """``eval_metric`` for ``XGBRegressor``: ``f(y_true, y_pred, sample_weight=None)``."""
    _xgb()
    loss = _boosting.resolve_loss(name, params)

    def regloss_metric(y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        return _boosting.mean_loss(loss, y_true, y_pred, sample_weight)

    regloss_metric.__name__ = loss.name
    return regloss_metric


def base_score(name: str | Loss, y: Any, weight: Any = None, **params: Any) -> float:
    """The loss's best constant prediction for labels ``y`` (pass it as XGBoost's
    ``base_score``; the built-in objectives estimate theirs, custom ones cannot)."""
    return _boosting.base_score(_boosting.resolve_loss(name, params), y, weight)
