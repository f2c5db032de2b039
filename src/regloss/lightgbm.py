"""Every regloss loss as a LightGBM objective and eval metric.

One callable serves both of LightGBM's APIs::

    lightgbm.train({"objective": regloss.lightgbm.objective("tukey"), ...}, train_set,
                   feval=regloss.lightgbm.metric("tukey"))
    LGBMRegressor(objective=regloss.lightgbm.objective("huber", delta=2.0))

grad = w·ψ(ŷ − y) and hess = w·``newton_weight`` (ŷ − y), as in :mod:`regloss.xgboost`.
LightGBM starts a custom objective from 0 (``init_score``/``boost_from_average`` do not
apply): :func:`init_score` gives the loss's best constant. LightGBM has no multi-output
regression. Needs ``pip install 'regloss[lightgbm]'``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _boosting
from ._optional import require
from .losses import Loss

__all__ = ["init_score", "metric", "objective"]


def _lgb() -> Any:
    return require("lightgbm", "regloss.lightgbm")


def _is_dataset(x: Any) -> bool:
    return type(x).__name__ == "Dataset" and hasattr(x, "get_label")


class _Objective:
    """``f(preds, train_set)`` (train API) or ``f(y_true, y_pred, weight)`` (scikit-learn
    API: LightGBM counts three parameters and passes the weights)."""

    def __init__(self, loss: Loss, eps: float, hessian: str) -> None:
        self.loss, self.eps, self.hessian = loss, eps, _boosting.check_hessian(hessian)

    def __call__(self, a: Any, b: Any, weight: Any = None) -> tuple[np.ndarray, np.ndarray]:
        if _is_dataset(b):
            preds, labels, weight = a, b.get_label(), b.get_weight()
        else:
            labels, preds = a, b
        return _boosting.grad_hess(self.loss, labels, preds, weight, self.eps, self.hessian)

    def __repr__(self) -> str:
        return f"regloss.lightgbm.objective({self.loss!r})"


class _Metric:
    """``feval(preds, eval_set)`` or ``eval_metric(y_true, y_pred, weight)`` returning
    ``(name, weighted mean loss, False)``."""

    def __init__(self, loss: Loss) -> None:
        self.loss = loss

    def __call__(self, a: Any, b: Any, weight: Any = None) -> tuple[str, float, bool]:
        if _is_dataset(b):
            preds, labels, weight = a, b.get_label(), b.get_weight()
        else:
            labels, preds = a, b
        return self.loss.name, _boosting.mean_loss(self.loss, labels, preds, weight), False


def objective(name: str | Loss, *, eps: float = 1e-6, hessian: str = "irls", **params: Any) -> Any:
    """A custom objective for ``lightgbm.train`` (``params['objective']``) and
    ``LGBMRegressor(objective=...)``; the dataset's weights multiply grad and hess.
    ``eps`` and ``hessian`` as in :func:`regloss.xgboost.objective`."""
    _lgb()
    return _Objective(_boosting.resolve_loss(name, params), eps, hessian)


def metric(name: str | Loss, **params: Any) -> Any:
    """An eval metric for ``lightgbm.train(feval=...)`` and ``LGBMRegressor.fit(
    eval_metric=...)``: the weighted mean loss (lower is better)."""
    _lgb()
    return _Metric(_boosting.resolve_loss(name, params))


def init_score(name: str | Loss, y: Any, weight: Any = None, **params: Any) -> float:
    """The loss's best constant prediction for labels ``y``: pass it as the datasets'
    ``init_score`` (repeated per row), or add it to the labels' offset."""
    return _boosting.base_score(_boosting.resolve_loss(name, params), y, weight)
