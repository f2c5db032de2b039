"""Barron's general loss, its partition function and the adaptive module."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from scipy import integrate

from regloss._kernels.c import source
from regloss.losses import form_of, get_loss
from regloss.losses._barron import CLOSED, general_rho, log_partition
from regloss.torch import AdaptiveRobustLoss
from regloss.torch import functional as rtf

X = np.linspace(-8, 8, 161)


@pytest.mark.parametrize(
    ("alpha", "closed_form"),
    [
        (2.0, lambda x: 0.5 * x**2),
        (1.0, lambda x: np.sqrt(x**2 + 1) - 1),
        (0.0, lambda x: np.log(0.5 * x**2 + 1)),
        (-2.0, lambda x: 2 * x**2 / (x**2 + 4)),
        (-math.inf, lambda x: 1 - np.exp(-0.5 * x**2)),
        (math.inf, lambda x: np.exp(0.5 * x**2) - 1),
    ],
)
def test_special_cases_equal_their_closed_forms(alpha: float, closed_form: object) -> None:
    x = X / 4 if alpha == math.inf else X
    np.testing.assert_allclose(
        get_loss("barron", alpha=alpha).rho(x),
        closed_form(x),  # type: ignore[operator]
        rtol=1e-12,
        atol=1e-14,
    )


def test_special_cases_match_the_other_registered_losses() -> None:
    c = 1.7
    np.testing.assert_allclose(
        get_loss("barron", alpha=1.0, scale=c).rho(X),
        get_loss("pseudo_huber", delta=c).rho(X) / c**2,
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        get_loss("barron", alpha=0.0, scale=c).rho(X),
        get_loss("cauchy", c=math.sqrt(2) * c).rho(X) * 2 / (2 * c**2),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        get_loss("barron", alpha=-math.inf, scale=c).rho(X),
        get_loss("welsch", c=math.sqrt(2) * c).rho(X) / c**2,
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        get_loss("barron", alpha=-2.0, scale=c).rho(X),
        get_loss("geman_mcclure", c=2 * c).rho(X) / c**2,
        rtol=1e-12,
    )


@pytest.mark.parametrize("special", sorted({2.0, *CLOSED}))
@pytest.mark.parametrize("method", ["rho", "psi", "psi_prime"])
def test_continuous_through_the_special_values(special: float, method: str) -> None:
    """Each closed form (its own code, at most one transcendental call) meets the general
    formula of the alphas around it."""
    exact = getattr(get_loss("barron", alpha=special), method)(X)
    for eps in (1e-3, 1e-5, 1e-7):
        for a in (special - eps, special + eps):
            near = getattr(get_loss("barron", alpha=a), method)(X)
            np.testing.assert_allclose(near, exact, rtol=20 * eps, atol=20 * eps)


@pytest.mark.parametrize(
    "alpha", [2.0, 2 - 1e-6, 2 + 1e-6, 1.0, 0.0, 1e-6, -1e-6, -2.0, -math.inf, 8.0]
)
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_gradcheck_and_gradgradcheck_near_special_alphas(alpha: float, reduction: str) -> None:
    g = torch.Generator().manual_seed(0)
    p = torch.randn(6, 2, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(6, 2, generator=g, dtype=torch.float64, requires_grad=True)

    def f(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return rtf.barron_loss(a, b, reduction, alpha=alpha, scale=0.8)

    assert torch.autograd.gradcheck(f, (p, t))
    assert torch.autograd.gradgradcheck(f, (p, t))


@pytest.mark.parametrize("alpha", [0.0, 1e-12, 1e-7, 1.0, 2 - 1e-12, 2.0, 2 + 1e-9, -2.0, -50.0])
def test_general_formula_has_finite_gradients_in_x_alpha_and_scale(alpha: float) -> None:
    x = torch.linspace(-20, 20, 81, dtype=torch.float64)
    a = torch.tensor(alpha, dtype=torch.float64, requires_grad=True)
    c = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    r = x.clone().requires_grad_()
    out = general_rho(torch, r / c, a)
    assert torch.isfinite(out).all()
    gr, ga, gc = torch.autograd.grad(out.sum(), (r, a, c))
    assert torch.isfinite(gr).all() and torch.isfinite(ga) and torch.isfinite(gc)
    special = get_loss("barron", alpha=alpha, scale=1.3).rho(x.numpy())
    np.testing.assert_allclose(out.detach().numpy(), special, rtol=1e-6, atol=1e-9)


def _fresh_log_z(alpha: float) -> float:
    loss = get_loss("barron", alpha=alpha)
    z = (
        2
        * integrate.quad(
            lambda x: math.exp(-float(loss.rho(np.float64(x)))),
            0,
            math.inf,
            epsabs=1e-13,
            epsrel=1e-11,
            limit=500,
        )[0]
    )
    return math.log(z)


def test_log_partition_matches_fresh_integration_at_random_alphas() -> None:
    rng = np.random.default_rng(20261127)
    for alpha in [0.0, 2.0, *rng.uniform(0, 4, 12)]:
        got = float(log_partition(np.array(alpha)))
        assert got == pytest.approx(_fresh_log_z(float(alpha)), abs=2e-7), alpha
    assert float(log_partition(np.array(0.0))) == pytest.approx(math.log(math.pi * math.sqrt(2)))
    assert float(log_partition(np.array(2.0))) == pytest.approx(0.5 * math.log(2 * math.pi))


def test_log_partition_is_differentiable_in_alpha() -> None:
    a = torch.tensor([0.3, 1.1, 1.9], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(log_partition(a).sum(), a)
    h = 1e-5
    fd = [(_fresh_log_z(v + h) - _fresh_log_z(v - h)) / (2 * h) for v in (0.3, 1.1, 1.9)]
    np.testing.assert_allclose(g.numpy(), fd, atol=1e-4)


def _fit(mode: str, steps: int = 400) -> tuple[float, float, float]:
    torch.manual_seed(0)
    y = 3.0 + 0.5 * torch.randn(2000, 1, dtype=torch.float64)
    crit = AdaptiveRobustLoss(1)
    mu = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([mu, *crit.parameters()], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        pred = mu.expand_as(y)
        loss = crit(pred, y) if mode == "nll" else crit.rho(pred, y).mean()
        loss.backward()
        opt.step()
    return crit.scale().item(), crit.alpha().item(), loss.item()


def test_plain_rho_lets_the_scale_inflate_but_the_nll_does_not() -> None:
    scale_plain, _, loss_plain = _fit("plain")
    scale_nll, alpha_nll, _ = _fit("nll")
    assert scale_plain > 2.5 and loss_plain < 0.05  # the cheat: scale up, loss towards 0
    assert scale_nll == pytest.approx(0.5, rel=0.15)  # the noise's true scale
    assert alpha_nll > 1.5  # Gaussian noise pulls alpha towards 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_dims": 0}, "num_dims must be a positive int, got 0"),
        ({"num_dims": 1, "alpha_hi": 5.0}, r"need 0 <= alpha_lo < alpha_hi <= 4"),
        ({"num_dims": 1, "alpha_init": 3.0}, r"alpha_init must lie in \(0.001, 1.999\)"),
        ({"num_dims": 1, "scale_init": 0.0}, "need 0 < scale_lo < scale_init"),
        (
            {"num_dims": 1, "reduction": "batchmean"},
            "reduction must be 'mean', 'sum', 'global_mean' or 'none'",
        ),
    ],
)
def test_adaptive_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AdaptiveRobustLoss(**kwargs)


def test_adaptive_checks_shapes() -> None:
    crit = AdaptiveRobustLoss(3)
    with pytest.raises(ValueError, match=r"last dimension must be num_dims=3"):
        crit(torch.zeros(4, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"target has shape \(4,\) but prediction has shape"):
        crit(torch.zeros(4, 3), torch.zeros(4))


def test_barron_alpha_must_be_real() -> None:
    with pytest.raises(ValueError, match="barron: parameter alpha must be a real number or ±inf"):
        get_loss("barron", alpha=float("nan"))
    with pytest.raises(ValueError, match="barron: parameter scale must be finite and > 0"):
        get_loss("barron", scale=0.0)


@pytest.mark.parametrize("alpha", CLOSED)
def test_closed_forms_make_at_most_one_transcendental_call(alpha: float) -> None:
    """Barron's named shapes cost what the matching registered losses do: the generated
    kernel of a closed form calls at most one libm function per element (the general formula
    calls three: log1p, expm1 and exp)."""
    calls = re.compile(r"\b(exp|expm1|log|log1p|sinh|tanh|pow)\(")
    for a, most in ((alpha, 1), (0.5, 3)):
        src = source(form_of(get_loss("barron", alpha=a)), "float64")
        fwd = src[src.index("double rl_fwd") : src.index("double rl_val")]
        found = set(calls.findall(fwd))
        assert len(found) <= most, (a, found)
    assert len(found) == 3  # the general formula, for contrast: the test can tell them apart
