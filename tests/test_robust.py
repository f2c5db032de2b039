"""The robust family: IRLS weights, bounds, redescent, overflow safety, quantiles, and
differential tests against statsmodels' robust norms, optax and scikit-learn."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from sklearn.metrics import mean_pinball_loss
from statsmodels.robust import norms
from tests.settings import params as loss_settings

import regloss
from regloss import jax as rjax
from regloss import numpy as rnp
from regloss.losses import get_loss
from regloss.torch import functional as rtf

R = np.concatenate([-np.logspace(-3, 3, 200)[::-1], np.logspace(-3, 3, 200)])


@pytest.mark.parametrize(("name", "params"), loss_settings())
def test_irls_weight_is_psi_over_r(name: str, params: dict) -> None:
    loss = get_loss(name, **params)
    np.testing.assert_allclose(loss.weight(R), loss.psi(R) / R, rtol=1e-12)
    w0 = loss.weight(np.array([0.0]))[0]
    if name in ("mae", "quantile") or (name == "smooth_l1" and params.get("beta") == 0.0):
        assert w0 == np.inf  # psi jumps at 0
    else:  # the limit psi(r)/r -> psi'(0)
        small = loss.psi(np.array([1e-7]))[0] / 1e-7
        assert w0 == pytest.approx(small, rel=1e-6)


@pytest.mark.parametrize(("name", "params"), loss_settings())
def test_bounded_losses_stay_below_their_bound_and_redescenders_go_to_zero(
    name: str, params: dict
) -> None:
    loss = get_loss(name, **params)
    props = regloss.properties(loss)
    if props.bounded:
        assert props.bound is not None
        assert np.all(loss.rho(R * 1e3) <= props.bound * (1 + 1e-12))
    if props.redescending:
        assert abs(loss.psi(np.array([1e8]))[0]) < 1e-6
        assert props.breakdown_point == 0.5


EXPECTED = {
    # name: (convex, smoothness, bounded, redescending)
    "mse": (True, "C∞", False, False),
    "mae": (True, "C⁰", False, False),
    "huber": (True, "C¹", False, False),
    "smooth_l1": (True, "C¹", False, False),
    "pseudo_huber": (True, "C∞", False, False),
    "log_cosh": (True, "C∞", False, False),
    "quantile": (True, "C⁰", False, False),
    "cauchy": (False, "C∞", False, True),
    "geman_mcclure": (False, "C∞", True, True),
    "welsch": (False, "C∞", True, True),
    "tukey": (False, "C²", True, True),
    "fair": (True, "C²", False, False),
    "barron": (True, "C∞", False, False),  # alpha = 1: Charbonnier
}


@pytest.mark.parametrize("name", regloss.available_losses())
def test_generated_properties_are_the_known_ones(name: str) -> None:
    p = regloss.properties(name)
    assert (p.convex, p.smoothness, p.bounded, p.redescending) == EXPECTED[name]


@pytest.mark.parametrize(
    ("name", "efficiency", "published"),
    [
        ("huber", 0.95, 1.345),
        ("huber", 0.90, 0.982),
        ("huber", 0.98, 1.746),
        ("huber", 0.99, 2.010),
        ("tukey", 0.95, 4.685),
        ("tukey", 0.90, 3.883),
        ("tukey", 0.98, 5.921),
        ("tukey", 0.99, 7.041),
        ("cauchy", 0.95, 2.385),
        ("welsch", 0.95, 2.985),
    ],
)
def test_tuning_constants_reproduce_published_values(
    name: str, efficiency: float, published: float
) -> None:
    assert round(regloss.tuning_constant(name, efficiency=efficiency), 3) == published


def test_efficiency_and_breakdown_known_values() -> None:
    assert regloss.efficiency("mse") == pytest.approx(1.0, abs=1e-9)
    assert regloss.efficiency("mae") == pytest.approx(2 / np.pi, rel=1e-9)
    assert regloss.efficiency("huber", delta=1.345) == pytest.approx(0.95, abs=5e-4)
    assert regloss.breakdown_point("mse") == 0.0
    assert regloss.breakdown_point("huber") == 0.5
    assert regloss.breakdown_point("quantile", q=0.25) == 0.25
    assert regloss.breakdown_point("tukey") == 0.5


def test_tuning_constant_errors() -> None:
    with pytest.raises(ValueError, match="loss 'mse' has no tuning parameter"):
        regloss.tuning_constant("mse")
    with pytest.raises(ValueError, match=r"efficiency must be in \(0, 1\), got 1.5"):
        regloss.tuning_constant("huber", efficiency=1.5)
    with pytest.raises(ValueError, match="unknown loss 'hubber'"):
        regloss.tuning_constant("hubber")


@pytest.mark.parametrize("value", [1e4, -1e4, 1e30, -1e30])
def test_log_cosh_is_finite_in_float32(value: float) -> None:
    r = np.array([value], dtype=np.float32)
    out = get_loss("log_cosh").rho(r)
    assert out.dtype == np.float32 and np.isfinite(out[0])
    assert out[0] == pytest.approx(abs(value) - np.log(2), rel=1e-6)
    t = torch.tensor([value], dtype=torch.float32, requires_grad=True)
    loss = rtf.log_cosh_loss(t, torch.zeros(1), "sum")
    loss.backward()
    assert torch.isfinite(loss) and t.grad is not None and torch.isfinite(t.grad).all()


def test_log_cosh_matches_optax() -> None:
    rng = np.random.default_rng(0)
    p, t = rng.normal(scale=30, size=(6, 5)), rng.normal(size=(6, 5))
    np.testing.assert_allclose(
        rjax.log_cosh(jnp.asarray(p), jnp.asarray(t), reduction="none"),
        optax.losses.log_cosh(jnp.asarray(p), jnp.asarray(t)),
        rtol=1e-12,
    )
    g = jax.grad(lambda a: rjax.log_cosh(a, jnp.asarray(t), reduction="sum"))(jnp.asarray(p))
    go = jax.grad(lambda a: jnp.sum(optax.losses.log_cosh(a, jnp.asarray(t))))(jnp.asarray(p))
    np.testing.assert_allclose(g, go, rtol=1e-12)


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9])
def test_quantile_equals_sklearn_mean_pinball_loss(q: float) -> None:
    rng = np.random.default_rng(1)
    y, yhat = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    w = rng.uniform(0.1, 2, size=40)
    expected = mean_pinball_loss(y, yhat, alpha=q, sample_weight=w)
    assert rnp.quantile(yhat, y, q=q, weight=w) == pytest.approx(expected, rel=1e-12)


def test_quantile_minimiser_is_the_quantile() -> None:
    y = np.random.default_rng(2).normal(size=2001)
    grid = np.linspace(-3, 3, 6001)
    losses = [rnp.quantile(np.full_like(y, g), y, q=0.9) for g in grid]
    assert grid[int(np.argmin(losses))] == pytest.approx(np.quantile(y, 0.9), abs=2e-3)


def test_vector_quantiles_map_onto_the_last_dimension() -> None:
    levels = (0.1, 0.5, 0.9)
    rng = np.random.default_rng(3)
    yhat, y = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    per_level = [
        rnp.quantile(yhat[:, i], y[:, i], q=q, reduction="sum") for i, q in enumerate(levels)
    ]
    assert rnp.quantile(yhat, y, q=levels, reduction="sum") == pytest.approx(sum(per_level))
    # the same in torch (values and gradients) and jax
    p = torch.tensor(yhat, requires_grad=True)
    out = rtf.quantile_loss(p, torch.tensor(y), "sum", q=levels)
    out.backward()
    assert out.item() == pytest.approx(sum(per_level))
    _, grad = rnp.value_and_grad("quantile", yhat, y, q=levels, reduction="sum")
    assert p.grad is not None
    np.testing.assert_allclose(p.grad.numpy(), grad)
    assert float(rjax.quantile(jnp.asarray(yhat), jnp.asarray(y), q=levels, reduction="sum")) == (
        pytest.approx(sum(per_level))
    )
    with pytest.raises(
        ValueError,
        match=r"3 levels q=\(0.1, 0.5, 0.9\) need the prediction's "
        r"last dimension to be 3, got shape \(20, 2\)",
    ):
        rnp.quantile(yhat[:, :2], y[:, :2], q=levels)


def test_vector_quantiles_on_an_input_large_enough_to_be_blocked() -> None:
    from regloss import _eager

    levels = (0.1, 0.5, 0.9)
    rows = 4 * _eager.BLOCK // 3 + 1000  # more than 4 blocks of elements
    rng = np.random.default_rng(4)
    yhat, y = rng.normal(size=(rows, 3)), rng.normal(size=(rows, 3))
    per_level = [
        rnp.quantile(yhat[:, i], y[:, i], q=q, reduction="sum") for i, q in enumerate(levels)
    ]
    value, grad = rnp.value_and_grad("quantile", yhat, y, q=levels, reduction="sum")
    assert value == pytest.approx(sum(per_level), rel=1e-12)
    assert grad.shape == yhat.shape


@pytest.mark.parametrize("q", [0.0, 1.0, -0.2, 1.5])
def test_quantile_level_must_be_in_open_unit_interval(q: float) -> None:
    with pytest.raises(ValueError, match="quantile: parameter q must"):
        get_loss("quantile", q=q)


# statsmodels' norms share regloss's parametrizations: HuberT(t) = huber(delta=t),
# TukeyBiweight(c) = tukey(c), StudentT(c, df=1) = cauchy(c). Its psi_deriv is our
# psi_prime and its weights our IRLS weight.
STATSMODELS: list[Any] = [
    pytest.param(norms.HuberT(t=1.345), get_loss("huber", delta=1.345), id="huber"),
    pytest.param(norms.TukeyBiweight(c=4.685), get_loss("tukey", c=4.685), id="tukey"),
    pytest.param(norms.StudentT(c=2.385, df=1), get_loss("cauchy", c=2.385), id="cauchy"),
]


@pytest.mark.parametrize(("norm", "loss"), STATSMODELS)
def test_statsmodels_norms(norm: Any, loss: Any) -> None:
    z = np.linspace(-12, 12, 2401)
    z = z[np.min(np.abs(z[:, None] - np.array(loss.breakpoints() or (99.0,))), axis=1) > 1e-9]
    np.testing.assert_allclose(loss.rho(z), norm.rho(z), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(loss.psi(z), norm.psi(z), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(loss.psi_prime(z), norm.psi_deriv(z), rtol=1e-12, atol=1e-12)
    nz = z[z != 0]
    np.testing.assert_allclose(loss.weight(nz), norm.weights(nz), rtol=1e-12, atol=1e-12)


def test_tukey_is_constant_beyond_c_not_zero() -> None:
    loss = get_loss("tukey", c=2.0)
    np.testing.assert_allclose(loss.rho(np.array([2.0, 3.0, -50.0])), [4 / 6] * 3)


@pytest.mark.parametrize(
    ("name", "param", "value", "message"),
    [
        ("cauchy", "c", 0.0, "cauchy: parameter c must be finite and > 0, got 0.0"),
        ("tukey", "c", -1.0, "tukey: parameter c must be finite and > 0, got -1.0"),
        ("welsch", "c", float("inf"), "welsch: parameter c must be finite and > 0, got inf"),
        ("fair", "c", "2", r"fair: parameter c must be a real number, got '2' \(str\)"),
        ("geman_mcclure", "c", 0, "geman_mcclure: parameter c must be finite and > 0, got 0"),
        ("pseudo_huber", "delta", -2, "pseudo_huber: parameter delta must be finite and > 0"),
    ],
)
def test_robust_parameter_errors(name: str, param: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_loss(name, **{param: value})


def test_generated_torch_names() -> None:
    from regloss.torch import CauchyLoss, GemanMcClureLoss, LogCoshLoss, TukeyLoss, log_cosh_loss

    x, y = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    torch.testing.assert_close(LogCoshLoss()(x, y), log_cosh_loss(x, y))
    torch.testing.assert_close(TukeyLoss(c=1.0)(x, y), rtf.tukey_loss(x, y, c=1.0))
    assert "c=2.385" in repr(CauchyLoss())
    assert GemanMcClureLoss().loss == get_loss("geman_mcclure")


def test_readme_table_is_generated_from_the_code() -> None:
    from pathlib import Path

    from regloss.cli.losses import markdown_table

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    start = readme.index("<!-- BEGIN regloss losses --markdown -->\n") + len(
        "<!-- BEGIN regloss losses --markdown -->\n"
    )
    end = readme.index("\n<!-- END regloss losses --markdown -->")
    assert readme[start:end] == markdown_table(), "regenerate: regloss losses --markdown"
