"""Gaussian and Laplace NLLs: torch peer, analytic derivatives, floors, beta-NLL, MLE links."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jax.test_util import check_grads

from regloss import jax as rjax
from regloss import numpy as rnp
from regloss.gradcheck import check_nll_gradients
from regloss.torch import GaussianNLLLoss, LaplaceNLLLoss, gaussian_nll_loss, laplace_nll_loss

RNG = np.random.default_rng(7)
P = RNG.normal(size=(6, 3))
T = RNG.normal(size=(6, 3))


def _t(x: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, requires_grad=grad)


@pytest.mark.parametrize("var_shape", [(6, 3), (6, 1)], ids=["full", "per-sample"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("full", [False, True])
def test_equals_torch_gaussian_nll_loss(
    var_shape: tuple[int, ...], reduction: str, full: bool
) -> None:
    var = RNG.uniform(0.1, 3.0, var_shape)
    var[0, 0] = 1e-9  # below eps: floored by both
    out = []
    for f in (gaussian_nll_loss, F.gaussian_nll_loss):
        p, t, v = _t(P, True), _t(T, True), _t(var, True)
        val = f(p, t, v, full=full, eps=1e-6, reduction=reduction)
        out.append((val.detach(), *torch.autograd.grad(val.sum(), (p, t, v))))
    for a, b in zip(*out):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_modules_are_drop_in() -> None:
    var = _t(RNG.uniform(0.1, 3.0, (6, 3)))
    torch.testing.assert_close(
        GaussianNLLLoss(full=True)(_t(P), _t(T), var),
        torch.nn.GaussianNLLLoss(full=True)(_t(P), _t(T), var),
    )
    b = _t(RNG.uniform(0.5, 2.0, (6, 3)))
    expected = torch.mean(torch.log(2 * b) + (_t(P) - _t(T)).abs() / b)
    torch.testing.assert_close(LaplaceNLLLoss()(_t(P), _t(T), b), expected)
    assert "log_var=False" in repr(GaussianNLLLoss())


@pytest.mark.parametrize("name", ["gaussian_nll", "laplace_nll"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@pytest.mark.parametrize("log_input", [False, True])
def test_torch_gradcheck_and_gradgradcheck(name: str, reduction: str, log_input: bool) -> None:
    fn: Any = gaussian_nll_loss if name == "gaussian_nll" else laplace_nll_loss
    flag = "log_var" if name == "gaussian_nll" else "log_scale"
    raw = RNG.uniform(0.3, 2.0, (6, 1))
    s = _t(np.log(raw) if log_input else raw, True)
    w = _t(RNG.uniform(0.2, 2.0, 6))
    mask = torch.tensor(RNG.random((6, 3)) > 0.3)

    def f(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return fn(a, b, c, reduction=reduction, weight=w, mask=mask, **{flag: log_input})

    inputs = (_t(P, True), _t(T + 0.05, True), s)
    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


@pytest.mark.parametrize("name", ["gaussian_nll", "laplace_nll"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
def test_jax_check_grads_order_2_and_agreement(name: str, reduction: str) -> None:
    flag = "log_var" if name == "gaussian_nll" else "log_scale"
    ls = jnp.asarray(RNG.normal(size=(6, 1)))
    mask = jnp.asarray(RNG.random((6, 3)) > 0.3)

    def f(a: Any, c: Any) -> Any:
        return rjax.nll(name, a, jnp.asarray(T), c, reduction=reduction, mask=mask, **{flag: True})

    check_grads(f, (jnp.asarray(P), ls), order=2, modes=["fwd", "rev"])
    value, gp, gs = rnp.nll_value_and_grads(
        name, P, T, np.asarray(ls), reduction=reduction, mask=np.asarray(mask), **{flag: True}
    )
    np.testing.assert_allclose(f(jnp.asarray(P), ls), value, rtol=1e-12)
    jg = jax.grad(lambda a, c: jnp.sum(f(a, c)), argnums=(0, 1))(jnp.asarray(P), ls)
    np.testing.assert_allclose(jg[0], gp, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(jg[1], gs, rtol=1e-12, atol=1e-14)


def test_variance_at_the_floor_keeps_finite_nonzero_gradients() -> None:
    v = _t(np.full((6, 3), 1e-12), True)
    p = _t(P, True)
    gaussian_nll_loss(p, _t(T), v).backward()
    assert v.grad is not None and p.grad is not None
    assert torch.isfinite(v.grad).all() and torch.isfinite(p.grad).all()
    assert (v.grad != 0).all()  # the floor passes the gradient through


def test_log_variance_is_the_same_loss_with_the_chain_rule() -> None:
    lv = RNG.normal(size=(6, 3))
    a, gp_a, gs_a = rnp.nll_value_and_grads("gaussian_nll", P, T, lv, log_var=True)
    b, gp_b, gs_b = rnp.nll_value_and_grads("gaussian_nll", P, T, np.exp(lv))
    assert a == pytest.approx(b, rel=1e-13)
    np.testing.assert_allclose(gp_a, gp_b, rtol=1e-13)
    np.testing.assert_allclose(gs_a, gs_b * np.exp(lv), rtol=1e-12)


def test_beta_nll_weights_by_stop_gradient_variance() -> None:
    var = RNG.uniform(0.2, 3.0, (6, 3))
    p = _t(P, True)
    v = _t(var, True)
    out = gaussian_nll_loss(p, _t(T), v, beta=1.0)
    gp, gv = torch.autograd.grad(out, (p, v))
    # beta = 1: the mean gets the gradient of MSE/2, independent of the variance
    np.testing.assert_allclose(gp.numpy(), (P - T) / P.size, rtol=1e-12)
    plain = (0.5 * (1 - (P - T) ** 2 / var) / var) * var / P.size
    np.testing.assert_allclose(gv.numpy(), plain, rtol=1e-12)
    assert out.item() == pytest.approx(np.mean(var * 0.5 * (np.log(var) + (P - T) ** 2 / var)))


def test_masked_nan_variance_and_target_give_zero_gradient() -> None:
    t = T.copy()
    t[0, 0] = np.nan
    var = RNG.uniform(0.5, 1.0, (6, 3))
    var[0, 0] = np.nan
    mask = np.ones((6, 3), bool)
    mask[0, 0] = False
    value, gp, gs = rnp.nll_value_and_grads("gaussian_nll", P, t, var, mask=mask)
    assert np.isfinite(value)
    assert gp[0, 0] == 0.0 and gs[0, 0] == 0.0
    assert np.all(np.isfinite(gp)) and np.all(np.isfinite(gs))


@pytest.mark.parametrize("sigma", [0.5, 2.0])
def test_gaussian_nll_with_fixed_sigma_is_mse_over_two_sigma_squared(sigma: float) -> None:
    nll = rnp.gaussian_nll(P, T, np.full_like(P, sigma**2))
    mse = rnp.mse(P, T)
    assert nll == pytest.approx(mse / (2 * sigma**2) + 0.5 * np.log(sigma**2), rel=1e-13)
    # the same minimiser: the best constant prediction is the mean for both
    grid = np.linspace(-1, 1, 2001)
    y = T[:, 0]
    best_nll = grid[
        np.argmin(
            [rnp.gaussian_nll(np.full_like(y, g), y, np.full_like(y, sigma**2)) for g in grid]
        )
    ]
    best_mse = grid[np.argmin([rnp.mse(np.full_like(y, g), y) for g in grid])]
    assert best_nll == best_mse == pytest.approx(y.mean(), abs=1e-3)


@pytest.mark.parametrize("b", [0.5, 2.0])
def test_laplace_nll_with_fixed_b_is_mae_over_b(b: float) -> None:
    nll = rnp.laplace_nll(P, T, np.full_like(P, b))
    assert nll == pytest.approx(rnp.mae(P, T) / b + np.log(2 * b), rel=1e-13)
    grid = np.linspace(-1.5, 1.5, 3001)
    y = T[:5, 1]  # odd count: the median is the unique minimiser
    best = grid[
        np.argmin([rnp.laplace_nll(np.full_like(y, g), y, np.full_like(y, b)) for g in grid])
    ]
    assert best == pytest.approx(np.median(y), abs=1e-3)


@pytest.mark.parametrize("name", ["gaussian_nll", "laplace_nll"])
def test_check_nll_gradients_passes(name: str) -> None:
    report = check_nll_gradients(name)
    assert report.ok, str(report)
    assert any("double backward" in c.what for c in report.checks)


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    [
        (
            lambda: rnp.gaussian_nll(P, T, -np.ones_like(P)),
            ValueError,
            r"var has negative entry/entries \(18 below 0\); it must be >= 0 .* or pass its "
            r"logarithm with log_var=True",
        ),
        (  # a NaN makes the minimum NaN: the negative entry behind it still counts
            lambda: rnp.gaussian_nll(P, T, np.where(np.arange(18).reshape(6, 3) < 2, -1.0, np.nan)),
            ValueError,
            r"var has negative entry/entries \(2 below 0\)",
        ),
        (
            lambda: gaussian_nll_loss(
                torch.from_numpy(P), torch.from_numpy(T), torch.tensor([np.nan, -1.0, 1.0])
            ),
            ValueError,
            r"var has negative entry/entries \(1 below 0\)",
        ),
        (
            lambda: rnp.gaussian_nll(P, T, np.ones(4)),
            ValueError,
            r"var has shape \(4,\), which does not broadcast to the prediction's shape \(6, 3\); "
            r"give it the prediction's shape, one dimension less \(one value per row\)",
        ),
        (
            lambda: rnp.gaussian_nll(P, T, np.ones((6, 3)), beta=2.0),
            ValueError,
            r"gaussian_nll: parameter beta must be in \[0, 1\], got 2.0",
        ),
        (
            lambda: rnp.gaussian_nll(P, T, np.ones((6, 3)), eps=0.0),
            ValueError,
            r"gaussian_nll: parameter eps must be finite and > 0, got 0.0",
        ),
        (
            lambda: rnp.laplace_nll(P, T, np.ones((6, 3), dtype=np.int64)),
            TypeError,
            r"scale has dtype int64; losses need floating-point inputs",
        ),
        (
            lambda: rnp.nll("poisson_nll", P, T, np.ones((6, 3))),
            ValueError,
            r"unknown loss 'poisson_nll'; choose one of \['gaussian_nll', 'laplace_nll'\]",
        ),
        (
            lambda: rnp.gaussian_nll(P, T, np.ones((6, 3)), delta=1.0),  # typed signature
            TypeError,
            r"gaussian_nll\(\) got an unexpected keyword argument 'delta'",
        ),
        (
            lambda: rnp.nll("gaussian_nll", P, T, np.ones((6, 3)), delta=1.0),  # by name
            TypeError,
            r"loss 'gaussian_nll' got unexpected parameter\(s\) \['delta'\]",
        ),
    ],
)
def test_nll_error_messages(call: Any, exc: type[Exception], message: str) -> None:
    with pytest.raises(exc, match=message):
        call()
