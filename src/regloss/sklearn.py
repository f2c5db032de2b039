"""scikit-learn: every loss as a metric and a scorer, and a robust linear model.

* :func:`mean_loss` in scikit-learn's argument order and names, and one shortcut per loss,
  ``mean_<name>_error`` (``mean_huber_error(y_true, y_pred, delta=1.345)``);
* :func:`make_scorer` for ``GridSearchCV`` / ``cross_val_score`` (greater is better: the
  negated mean loss, as scikit-learn's ``neg_*`` scorers);
* :class:`RobustLinearRegression`: a linear model fitted by iteratively reweighted least
  squares with the loss's weights ψ(u)/u of the standardised residuals u = r/s and a
  robust scale s re-estimated every iteration (statsmodels' RLM algorithm: equal
  coefficients to 1e-6 for Huber's T and Tukey's biweight).

Needs ``pip install 'regloss[sklearn]'``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ._optional import require
from .losses import Loss, available_losses, resolve
from .metrics import MeanLoss, _weighted_median

__all__ = ["RobustLinearRegression", "make_scorer", "mean_loss"]

#: Φ⁻¹(3/4): the MAD of a standard normal
_MAD_NORMAL = 0.6744897501960817


def mean_loss(
    y_true: Any,
    y_pred: Any,
    *,
    loss: str,
    sample_weight: Any = None,
    multioutput: Any = "uniform_average",
    **params: Any,
) -> Any:
    """The weighted mean of ``loss``'s ρ(y_pred − y_true), per output and reduced by
    ``multioutput`` as scikit-learn's regression metrics are
    (:class:`regloss.metrics.MeanLoss`)."""
    metric = MeanLoss(loss, multioutput=multioutput, **params)
    return metric.update(y_pred, y_true, sample_weight).compute()


def _shortcut(name: str) -> Any:
    def metric(
        y_true: Any,
        y_pred: Any,
        *,
        sample_weight: Any = None,
        multioutput: Any = "uniform_average",
        **params: Any,
    ) -> Any:
        return mean_loss(
            y_true,
            y_pred,
            loss=name,
            sample_weight=sample_weight,
            multioutput=multioutput,
            **params,
        )

    metric.__name__ = metric.__qualname__ = f"mean_{name}_error"
    metric.__doc__ = f"The mean {name} loss (:func:`mean_loss` with loss={name!r})."
    return metric


_SHORTCUTS = {f"mean_{name}_error": name for name in available_losses()}

if not TYPE_CHECKING:

    def __getattr__(attr: str) -> Any:
        if attr in _SHORTCUTS:
            return _shortcut(_SHORTCUTS[attr])
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, *_SHORTCUTS])


def make_scorer(loss: str, **params: Any) -> Any:
    """A scorer for model selection: the negated mean ``loss`` (greater is better), as
    in ``cross_val_score(model, X, y, scoring=make_scorer("huber", delta=2.0))``."""
    metrics = require("sklearn.metrics", "regloss.sklearn")
    resolve(loss, dict(params))  # the parameters are checked now
    return metrics.make_scorer(mean_loss, greater_is_better=False, loss=loss, **params)


def _mad(r: np.ndarray, w: np.ndarray | None) -> float:
    """median(|r|)/Φ⁻¹(3/4), about 0 as statsmodels' RLM takes it; weighted as the
    averaged inverted CDF (so integer weights equal repeated rows)."""
    a = np.abs(r)
    if w is None:
        return float(np.median(a)) / _MAD_NORMAL
    return _weighted_median(a, w) / _MAD_NORMAL


def _huber_scale(r: np.ndarray, df_resid: float, d: float = 2.5) -> float:
    """Huber's proposal 2 exactly as statsmodels' ``HuberScale(d=2.5, tol=1e-8,
    maxiter=30)`` computes it: from the MAD about the median, at most 29 fixed-point steps
    (it may stop short of the fixed point; this follows it step for step)."""
    n = r.size
    cdf = 0.5 * (1.0 + math.erf(d / math.sqrt(2.0)))
    tail = d / math.sqrt(2 * math.pi) * math.exp(-0.5 * d**2)
    h = df_resid / n * (d**2 + (1 - d**2) * cdf - 0.5 - tail)
    hist = [math.inf, float(np.median(np.abs(r - np.median(r)))) / _MAD_NORMAL]
    while abs(hist[-2] - hist[-1]) > 1e-8 and len(hist) - 1 < 30:
        s = hist[-1]
        if s == 0.0:
            break
        chi = np.where(np.abs(r / s) < d, (r / s) ** 2 / 2, d**2 / 2)
        hist.append(math.sqrt(float(np.sum(chi)) / (n * h) * s**2))
    return hist[-1]


def _base() -> tuple[Any, Any]:
    base = require("sklearn.base", "RobustLinearRegression")
    return base.BaseEstimator, base.RegressorMixin


class _NoRegressorMixin:
    """Stands in for scikit-learn's bases where it is not installed: the class can be
    made, and ``fit`` names the extra to install."""


class _NoBaseEstimator:
    pass


try:  # the class needs scikit-learn's bases; without them it names its extra
    _Estimator, _Regressor = _base()
except ImportError:  # exercised in scripts/check_wheel.py's bare environment
    _Estimator, _Regressor = _NoBaseEstimator, _NoRegressorMixin


class RobustLinearRegression(_Regressor, _Estimator):  # type: ignore[misc,valid-type]
    """A linear model fitted by iteratively reweighted least squares with a robust loss.

    Each iteration solves a weighted least-squares problem (plus ``alpha``·‖coef‖², the
    intercept unpenalised) with weights ``sample_weight × ψ(u)/u`` of the standardised
    residuals u = r/s, then re-estimates the scale s from the residuals: statsmodels'
    ``RLM`` algorithm, from the least-squares fit. Converged when the coefficients and the
    scale change by less than ``tol`` (relative).

    Parameters
    ----------
    loss : str or Loss, default 'huber'
        A registered loss (its parameters in ``loss_params``) or a loss object; its
        parameters are in units of the scale s (Huber δ = 1.345 and Tukey c = 4.685 give
        95% Gaussian efficiency).
    loss_params : dict, optional
        The loss's parameters, e.g. ``{"delta": 1.345}``.
    scale : 'mad', 'huber' or float, default 'mad'
        'mad': median |r| / 0.6745 (statsmodels' default); 'huber': Huber's proposal 2
        (statsmodels' ``HuberScale()``); a float: fixed.
    fit_intercept : bool, default True
    alpha : float, default 0.0
        Ridge penalty on the coefficients.
    max_iter : int, default 200
    tol : float, default 1e-10

    Attributes
    ----------
    coef_, intercept_, scale_, n_iter_, weights_ (the final IRLS weights, without the
    sample weights)

    Notes
    -----
    scikit-learn's ``HuberRegressor`` minimises a different objective: Owen's concomitant
    Huber loss, which estimates the scale jointly with the coefficients (σ + H_ε(r/σ)σ),
    with an L2 penalty 1e-4 by default and ε = 1.35 in units of that σ. Its coefficients are
    close to these, not equal (``tests/test_sklearn.py`` measures how close).
    """

    def __init__(
        self,
        loss: str | Loss = "huber",
        loss_params: dict[str, Any] | None = None,
        scale: str | float = "mad",
        fit_intercept: bool = True,
        alpha: float = 0.0,
        max_iter: int = 200,
        tol: float = 1e-10,
    ) -> None:
        self.loss = loss
        self.loss_params = loss_params
        self.scale = scale
        self.fit_intercept = fit_intercept
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol

    def _checked(self) -> Loss:
        if isinstance(self.scale, str):
            if self.scale not in ("mad", "huber"):
                raise ValueError(
                    f"scale must be 'mad', 'huber' or a positive float, got {self.scale!r}"
                )
        elif isinstance(self.scale, bool) or not (
            isinstance(self.scale, (int, float)) and self.scale > 0 and math.isfinite(self.scale)
        ):
            raise ValueError(
                f"scale must be 'mad', 'huber' or a positive float, got {self.scale!r}"
            )
        if not (isinstance(self.alpha, (int, float)) and self.alpha >= 0):
            raise ValueError(f"alpha must be a number >= 0, got {self.alpha!r}")
        if (
            isinstance(self.max_iter, bool)
            or not isinstance(self.max_iter, int)
            or self.max_iter < 1
        ):
            raise ValueError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
        if not (isinstance(self.tol, (int, float)) and self.tol > 0):
            raise ValueError(f"tol must be a number > 0, got {self.tol!r}")
        loss = resolve(self.loss, dict(self.loss_params or {}))
        if loss.depends_on_position():
            raise ValueError(f"loss {loss!r} has parameters per position; pass one loss")
        return loss

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> RobustLinearRegression:
        validation = require("sklearn.utils.validation", "RobustLinearRegression")
        loss = self._checked()
        X, y = validation.validate_data(self, X, y, y_numeric=True)
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        sw = validation._check_sample_weight(sample_weight, X, dtype=np.float64)
        n = X.shape[0]
        A = np.column_stack([np.ones(n), X]) if self.fit_intercept else X
        penalty = np.full(A.shape[1], math.sqrt(float(self.alpha)))
        if self.fit_intercept:
            penalty[0] = 0.0
        weighted = sample_weight is not None
        df_resid = max(float(n - A.shape[1]), 1.0)

        def solve(w: np.ndarray) -> np.ndarray:
            root = np.sqrt(w)
            lhs = np.vstack([A * root[:, None], np.diag(penalty)])
            rhs = np.concatenate([y * root, np.zeros(A.shape[1])])
            beta: np.ndarray = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
            return beta

        def scale_of(r: np.ndarray) -> float:
            if not isinstance(self.scale, str):
                return float(self.scale)
            if self.scale == "huber":
                return _huber_scale(r, df_resid)
            return _mad(r, sw if weighted else None)

        beta = solve(sw)
        r = y - A @ beta
        s = scale_of(r)
        weights = np.ones(n)
        self.n_iter_ = 0
        for it in range(1, self.max_iter + 1):
            self.n_iter_ = it
            if s == 0.0:  # an exact fit of (most of) the data
                break
            u = r / s
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                weights = np.asarray(loss.weight(u), dtype=np.float64)
            bad = ~np.isfinite(weights)
            if bad.any():  # a kinked loss's weight at u = 0
                weights[bad] = np.asarray(loss.newton_weight(u[bad]), dtype=np.float64)
            new_beta = solve(sw * weights)
            r = y - A @ new_beta
            new_s = scale_of(r)
            change = np.max(np.abs(new_beta - beta)) / max(1.0, float(np.max(np.abs(beta))))
            beta, s_old, s = new_beta, s, new_s
            if change <= self.tol and abs(s - s_old) <= self.tol * max(s_old, 1e-300):
                break
        self.intercept_ = float(beta[0]) if self.fit_intercept else 0.0
        self.coef_ = beta[1:] if self.fit_intercept else beta
        self.scale_ = s
        self.weights_ = weights
        return self

    def predict(self, X: Any) -> np.ndarray:
        validation = require("sklearn.utils.validation", "RobustLinearRegression")
        validation.check_is_fitted(self, "coef_")
        X = validation.validate_data(self, X, reset=False)
        out: np.ndarray = np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_
        return out
