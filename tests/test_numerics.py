"""Numerical contract through every front-end: sums whose error does not grow with N,
weights checked and used in the compute dtype, NLL log-inputs beyond e^88.7, adaptive
Barron on gross outliers. (Elementwise accuracy over the whole range: test_range.py.)"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import regloss
from regloss import jax as rjax
from regloss import numpy as rnp
from regloss.losses import get_loss
from regloss.torch import functional as rtf

N_BIG = 30_000_000


@pytest.fixture(scope="module")
def big_residuals() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    p = (rng.standard_normal(N_BIG) * 2.0 + 0.3).astype(np.float32)
    return p, np.zeros(N_BIG, np.float32)


_EXACT: dict[str, float] = {}


def _exact_sum(name: str, p: np.ndarray) -> float:
    # The definition in float64 (accurate to 1e-12 elementwise, test_range.py), summed
    # pairwise in float64: exact far beyond float32's 1e-6. Once per loss for both front-ends.
    if name not in _EXACT:
        with np.errstate(all="ignore"):
            _EXACT[name] = float(np.sum(get_loss(name).rho(p.astype(np.float64))))
    return _EXACT[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", regloss.available_losses())
@pytest.mark.parametrize("frontend", ["numpy", "torch"])
def test_float32_sum_of_3e7_elements_is_exact_to_1e6(
    name: str, frontend: str, big_residuals: tuple[np.ndarray, np.ndarray]
) -> None:
    p, t = big_residuals
    exact = _exact_sum(name, p)
    reduction = "mean" if name == "mse" else "sum"  # 'mean' is the same sum, scaled
    if frontend == "numpy":
        got = float(rnp.loss(name, p, t, reduction=reduction))
    else:
        pt = torch.from_numpy(p).requires_grad_()  # the training path (psi kept)
        got = float(rtf.loss(name, pt, torch.from_numpy(t), reduction=reduction).detach())
    if reduction == "mean":
        exact /= N_BIG
    assert abs(got - exact) <= 1e-6 * abs(exact), (got, exact, abs(got - exact) / exact)


def test_weights_are_rescaled_before_the_cast_to_float32() -> None:
    """float64 weights of 1e39 or 1e-50 on float32 inputs: a weighted mean does not depend
    on the weights' scale, so neither overflows nor underflows."""
    p, t = np.array([1.0, 3.0], np.float32), np.zeros(2, np.float32)
    for w in (np.array([1e39, 3e39]), np.array([1e-50, 3e-50])):
        assert float(rnp.mse(p, t, weight=w)) == pytest.approx(7.0)
        tw = torch.from_numpy(w)
        assert float(rtf.mse_loss(torch.from_numpy(p), torch.from_numpy(t), weight=tw)) == (
            pytest.approx(7.0)
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    ("fn", "flag"), [("gaussian_nll_loss", "log_var"), ("laplace_nll_loss", "log_scale")]
)
def test_nll_log_input_beyond_exp_overflow_torch(fn: str, flag: str, dtype: Any) -> None:
    import regloss.torch as rt

    t = torch.tensor([100.0, 800.0, -3.0], dtype=dtype, requires_grad=True)
    p = torch.tensor([1.0, 1e30, 2.0], dtype=dtype, requires_grad=True)
    loss = getattr(rt, fn)(p, torch.zeros(3, dtype=dtype), t, **{flag: True})
    (gp, gt) = torch.autograd.grad(loss, (p, t), create_graph=True)
    assert torch.isfinite(loss) and torch.isfinite(gp).all() and torch.isfinite(gt).all()
    (hess,) = torch.autograd.grad(gt.sum(), t)  # double backward through the log form
    assert torch.isfinite(hess).all()


@pytest.mark.parametrize(
    ("name", "flag"), [("gaussian_nll", "log_var"), ("laplace_nll", "log_scale")]
)
def test_nll_log_input_beyond_exp_overflow_jax(name: str, flag: str) -> None:
    t = jnp.array([100.0, 800.0, -3.0], dtype=jnp.float32)
    p = jnp.array([1.0, 1e30, 2.0], dtype=jnp.float32)

    def f(p: Any, t: Any) -> Any:
        return rjax.nll(name, p, jnp.zeros(3, jnp.float32), t, **{flag: True})

    value, grads = jax.value_and_grad(f, argnums=(0, 1))(p, t)
    hess = jax.hessian(f, argnums=1)(p, t)
    assert np.isfinite(value) and all(np.isfinite(g).all() for g in grads)
    assert np.isfinite(hess).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_adaptive_barron_on_gross_outliers(dtype: Any) -> None:
    """|r/c| far beyond sqrt(finfo.max): loss, gradients in the prediction, alpha and
    scale finite (they overflowed to NaN before the log-form of log1p(x²/b))."""
    from regloss.torch import AdaptiveRobustLoss

    big = 1e30 if dtype == torch.float32 else 1e200
    crit = AdaptiveRobustLoss(num_dims=1)
    p = torch.tensor([[0.5], [big], [-big]], dtype=dtype, requires_grad=True)
    loss = crit(p, torch.zeros_like(p))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(p.grad).all()
    for param in crit.parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all()


_MP = pytest.importorskip("mpmath")


def _mp_reference(fn: Any, a: float, k: float) -> float:
    with _MP.workdps(60):
        return float(fn(_MP.mpf(a) / _MP.mpf(k)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("k", [1e-18, 0.3, 1.0, 2.385, 1e18])
def test_one_call_log1p_forms_hold_over_the_whole_range(dtype: Any, k: float) -> None:
    """log1p_square and log1p_quotient (one log1p call each, so a fused kernel evaluates
    one function for both sides of a loss's where) against 60-digit mpmath, from 0 and
    subnormals to finfo.max, for scales below and above 1."""
    from regloss._numerics import log1p_quotient, log1p_square

    fi = np.finfo(dtype)
    grid = np.geomspace(float(fi.smallest_subnormal), float(fi.max), 400).astype(dtype)
    edges = [0.0, 2.0**64, 2.0**64 * 1.001, 2.0**60 * k, 2.0**60 * k * 1.01, k, float(fi.max)]
    a = np.unique(np.concatenate([grid, np.asarray(edges, dtype=np.float64).astype(dtype)]))
    a = a[np.isfinite(a)]
    kd = float(dtype(k))  # the scale as the dtype computes with it
    want_sq = np.array([_mp_reference(lambda q: _MP.log1p(q * q), float(x), kd) for x in a])
    want_q = np.array([_mp_reference(_MP.log1p, float(x), kd) for x in a])
    tiny = float(fi.smallest_normal)
    k_array = np.asarray(kd, dtype=dtype)  # a traced or per-element scale takes this form
    with np.errstate(over="ignore", divide="ignore"):
        pairs = [
            (log1p_square(np, a, kd)[0], want_sq),
            (log1p_quotient(np, a, kd), want_q),
            (log1p_square(np, a, k_array)[0], want_sq),
            (log1p_quotient(np, a, k_array), want_q),
        ]
    for got, want in pairs:
        assert np.all(np.isfinite(got)), a[~np.isfinite(got)]
        diff = np.abs(got.astype(np.float64) - want)
        # relative to the value, or absolute where the value is subnormal
        err = np.where(diff <= tiny * float(fi.eps), 0.0, diff / np.maximum(np.abs(want), tiny))
        assert float(err.max()) <= 8 * float(fi.eps), (float(err.max()), a[np.argmax(err)])
