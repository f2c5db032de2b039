"""JAX front-end: custom_jvp derivatives under grad, jit and vmap; agreement with optax."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads
from tests.settings import params as loss_settings

import regloss
from regloss import jax as rjax
from regloss import numpy as rnp

LOSSES = loss_settings()


def _inputs(seed: int = 0, avoid: tuple[float, ...] = ()) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(4, 3))
    r = rng.uniform(0.05, 3, size=(4, 3)) * rng.choice([-1, 1], size=(4, 3))
    for b in avoid:  # clear of breakpoints, where derivatives jump
        r = np.where(np.abs(r - b) < 0.02, r + 0.05, r)
    return jnp.asarray(t + r), jnp.asarray(t)


@pytest.mark.parametrize(("name", "params"), LOSSES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@pytest.mark.parametrize("option", ["plain", "weight", "mask"])
def test_check_grads_order_2(name: str, params: dict, reduction: str, option: str) -> None:
    p, t = _inputs(avoid=regloss.get_loss(name, **params).breakpoints())
    kw: dict[str, Any] = dict(params, reduction=reduction)
    if option == "weight":
        kw["weight"] = jnp.linspace(0.1, 2.0, 4)
    if option == "mask":
        kw["mask"] = jnp.array([[True, False, True]] * 4)
        t = t.at[:, 1].set(jnp.nan)

    def f(a: Any) -> Any:
        return rjax.loss(name, a, t, **kw)

    check_grads(f, (p,), order=2, modes=["fwd", "rev"])
    assert bool(jnp.all(jnp.isfinite(jax.grad(lambda a: jnp.sum(f(a)))(p))))


@pytest.mark.parametrize(("name", "params"), LOSSES)
def test_grad_and_hessian_are_the_analytic_ones(name: str, params: dict) -> None:
    p, t = _inputs(1, avoid=regloss.get_loss(name, **params).breakpoints())
    spec = regloss.get_loss(name, **params)
    g = jax.grad(lambda a: rjax.loss(name, a, t, reduction="sum", **params))(p)
    np.testing.assert_allclose(g, spec.psi(np.asarray(p - t)), rtol=1e-13)
    hvp = jax.jvp(
        jax.grad(lambda a: rjax.loss(name, a, t, reduction="sum", **params)),
        (p,),
        (jnp.ones_like(p),),
    )[1]
    np.testing.assert_allclose(hvp, spec.psi_prime(np.asarray(p - t)), rtol=1e-13)


@pytest.mark.parametrize(("name", "params"), LOSSES)
def test_same_numbers_as_numpy_under_jit_and_vmap(name: str, params: dict) -> None:
    p, t = _inputs(2, avoid=regloss.get_loss(name, **params).breakpoints())
    expected, grad = rnp.value_and_grad(name, np.asarray(p), np.asarray(t), **params)
    f = jax.jit(lambda a, b: rjax.loss(name, a, b, **params))
    np.testing.assert_allclose(f(p, t), expected, rtol=1e-13)
    np.testing.assert_allclose(jax.grad(f)(p, t), grad, rtol=1e-13)
    per_row = jax.vmap(lambda a, b: rjax.loss(name, a, b, **params))(p, t)
    rows = [rnp.loss(name, np.asarray(p[i]), np.asarray(t[i]), **params) for i in range(4)]
    np.testing.assert_allclose(per_row, rows, rtol=1e-13)


def test_masked_nan_target_gives_zero_gradient() -> None:
    p = jnp.array([1.0, 2.0, 3.0])
    t = jnp.array([1.5, jnp.nan, jnp.inf])
    for name in regloss.available_losses():
        g = jax.grad(
            lambda a, n=name: rjax.loss(
                n, a, t, nan_policy="omit", mask=jnp.array([True, True, False])
            )
        )(p)
        np.testing.assert_array_equal(np.asarray(g[1:]), [0.0, 0.0])


def test_float16_is_accumulated_in_float32() -> None:
    out = rjax.mse(jnp.array([300.0], jnp.float16), jnp.array([0.0], jnp.float16))
    assert out.dtype == jnp.float32 and float(out) == 90000.0


@pytest.mark.parametrize("delta", [1.0, 0.25, 3.0])
def test_reduction_none_equals_optax(delta: float) -> None:
    p, t = _inputs(3)
    p32, t32 = p.astype(jnp.float32), t.astype(jnp.float32)
    np.testing.assert_allclose(
        rjax.mse(p32, t32, reduction="none"), optax.losses.squared_error(p32, t32), rtol=1e-6
    )
    np.testing.assert_allclose(
        rjax.huber(p, t, reduction="none", delta=delta),
        optax.losses.huber_loss(p, t, delta=delta),
        rtol=1e-13,
    )
    g_ours = jax.grad(lambda a: jnp.sum(rjax.huber(a, t, reduction="none", delta=delta)))(p)
    g_optax = jax.grad(lambda a: jnp.sum(optax.losses.huber_loss(a, t, delta=delta)))(p)
    np.testing.assert_allclose(g_ours, g_optax, rtol=1e-13)


def test_rho_and_psi_helpers() -> None:
    r = jnp.array([-2.0, 0.5])
    np.testing.assert_allclose(rjax.rho("huber", r), [1.5, 0.125])
    np.testing.assert_allclose(jax.vmap(jax.grad(lambda x: rjax.psi("huber", x)))(r), [0.0, 1.0])
