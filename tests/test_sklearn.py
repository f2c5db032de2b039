"""regloss.sklearn: the metrics in scikit-learn's conventions, scorers in model selection,
and RobustLinearRegression against statsmodels' RLM, scikit-learn's HuberRegressor and
scikit-learn's own estimator checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
from sklearn.linear_model import HuberRegressor, LinearRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.utils.estimator_checks import check_estimator

import regloss
import regloss.numpy as rnp
from regloss import sklearn as rs


def _data(seed: int = 0, outliers: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 3))
    y = X @ np.array([1.5, -2.0, 0.5]) + 3.0 + rng.normal(size=300)
    hit = rng.random(300) < outliers
    y[hit] += rng.choice([-1, 1], hit.sum()) * rng.uniform(10, 30, hit.sum())
    return X, y


@pytest.mark.parametrize("name", regloss.available_losses())
def test_mean_loss_and_its_shortcut_are_the_weighted_mean_loss(name: str) -> None:
    _, y = _data()
    p = y + np.random.default_rng(1).normal(size=y.size)
    w = np.random.default_rng(2).uniform(0, 2, size=y.size)
    want = rnp.loss(name, p, y, weight=w)
    assert rs.mean_loss(y, p, loss=name, sample_weight=w) == pytest.approx(float(want), rel=1e-12)
    shortcut = getattr(rs, f"mean_{name}_error")
    assert shortcut(y, p, sample_weight=w) == pytest.approx(float(want), rel=1e-12)
    assert f"mean_{name}_error" in dir(rs)


def test_scorer_in_cross_validation_and_grid_search() -> None:
    X, y = _data()
    scorer = rs.make_scorer("huber", delta=2.0)
    scores = cross_val_score(LinearRegression(), X, y, cv=3, scoring=scorer)
    assert scores.shape == (3,) and np.all(scores < 0)  # negated losses: greater is better
    grid = GridSearchCV(
        rs.RobustLinearRegression(), {"loss": ["huber", "tukey"]}, cv=3, scoring=scorer
    ).fit(X, y)
    assert grid.best_params_["loss"] in ("huber", "tukey")


@pytest.mark.parametrize(
    ("loss", "params", "norm"),
    [
        ("huber", {"delta": 1.345}, sm.robust.norms.HuberT(t=1.345)),
        ("tukey", {"c": 4.685}, sm.robust.norms.TukeyBiweight(c=4.685)),
    ],
)
@pytest.mark.parametrize("scale", ["mad", "huber"])
def test_coefficients_equal_statsmodels_rlm(
    loss: str, params: dict[str, Any], norm: Any, scale: str
) -> None:
    for seed in range(3):
        X, y = _data(seed, outliers=0.15)
        est = sm.robust.scale.HuberScale() if scale == "huber" else "mad"
        theirs = sm.RLM(y, sm.add_constant(X), M=norm).fit(
            scale_est=est, conv="coefs", tol=1e-13, maxiter=1000
        )
        ours = rs.RobustLinearRegression(loss, loss_params=params, scale=scale).fit(X, y)
        got = np.concatenate([[ours.intercept_], ours.coef_])
        np.testing.assert_allclose(got, theirs.params, rtol=1e-6, atol=1e-6)
        assert ours.scale_ == pytest.approx(theirs.scale, rel=1e-6)


def test_close_to_huber_regressor_and_far_from_least_squares_on_outliers() -> None:
    """HuberRegressor estimates its scale jointly (Owen's concomitant objective); the
    coefficients differ from the MAD-scale IRLS fit by a few percent, and both are far
    closer to the truth than least squares."""
    X, y = _data(4, outliers=0.2)
    truth = np.array([1.5, -2.0, 0.5])
    ours = rs.RobustLinearRegression("huber", loss_params={"delta": 1.345}).fit(X, y)
    theirs = HuberRegressor(epsilon=1.345, alpha=0.0, max_iter=1000).fit(X, y)
    ols = LinearRegression().fit(X, y)
    assert np.max(np.abs(ours.coef_ - theirs.coef_)) < 0.1
    assert np.max(np.abs(ours.coef_ - truth)) < 0.5 * np.max(np.abs(ols.coef_ - truth))


def test_passes_scikit_learns_estimator_checks() -> None:
    check_estimator(rs.RobustLinearRegression())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": "iqr"}, "scale must be"),
        ({"scale": -1.0}, "scale must be"),
        ({"alpha": -1}, "alpha must be"),
        ({"max_iter": 0}, "max_iter must be"),
        ({"tol": 0}, "tol must be"),
        ({"loss": "l2"}, "unknown loss"),
        ({"loss": "quantile", "loss_params": {"q": [0.1, 0.9]}}, "per position"),
    ],
)
def test_bad_parameters_are_named_at_fit(kwargs: dict[str, Any], match: str) -> None:
    X, y = _data()
    with pytest.raises(ValueError, match=match):
        rs.RobustLinearRegression(**kwargs).fit(X, y)


def test_ridge_penalty_shrinks_and_fixed_scale_is_kept() -> None:
    X, y = _data()
    free = rs.RobustLinearRegression().fit(X, y)
    ridge = rs.RobustLinearRegression(alpha=100.0).fit(X, y)
    assert np.linalg.norm(ridge.coef_) < np.linalg.norm(free.coef_)
    fixed = rs.RobustLinearRegression(scale=2.0).fit(X, y)
    assert fixed.scale_ == 2.0


def test_without_scikit_learn_the_model_names_its_extra() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['sklearn'] = None; sys.modules['sklearn.base'] = None\n"
        "from regloss.sklearn import RobustLinearRegression, mean_huber_error\n"
        "print(mean_huber_error([1.0, 2.0], [1.5, 2.0]))\n"
        "RobustLinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "0.0625"  # the metrics need NumPy only
    assert "MissingExtra: RobustLinearRegression needs sklearn: pip install 'regloss[sklearn]'" in (
        proc.stderr
    )
