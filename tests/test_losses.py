"""Registry-wide properties: every registered loss gets these by being registered."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tests.reference import RHO, reduce
from tests.settings import params as loss_settings

import regloss
from regloss import numpy as rnp
from regloss.losses import Loss, get_loss, register
from regloss.losses._base import _REGISTRY

SETTINGS = loss_settings()

residuals = hnp.arrays(
    np.float64,
    st.integers(1, 30),
    elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
)


def test_every_registered_loss_is_covered_here() -> None:
    covered = {p.values[0] for p in SETTINGS}
    assert covered == set(regloss.available_losses())


@pytest.mark.parametrize(("name", "params"), SETTINGS)
class TestProperties:
    def test_zero_at_zero(self, name: str, params: dict) -> None:
        loss = get_loss(name, **params)
        z = np.zeros(3)
        assert np.all(loss.rho(z) == 0)
        assert np.all(loss.psi(z) == 0)

    @given(r=residuals)
    def test_nonnegative_and_symmetric(self, name: str, params: dict, r: np.ndarray) -> None:
        loss = get_loss(name, **params)
        assert np.all(loss.rho(r) >= 0)
        if not loss.symmetric:  # quantile: rho(r) - rho(-r) = (1 - 2q) r
            q = params.get("q", 0.5)
            np.testing.assert_allclose(loss.rho(r) - loss.rho(-r), (1 - 2 * q) * r, atol=1e-9)
            return
        np.testing.assert_allclose(loss.rho(r), loss.rho(-r), rtol=0, atol=0)
        np.testing.assert_allclose(loss.psi(-r), -loss.psi(r), rtol=0, atol=0)
        np.testing.assert_allclose(loss.psi_prime(-r), loss.psi_prime(r), rtol=0, atol=0)

    @given(r=residuals)
    def test_matches_reference_formula(self, name: str, params: dict, r: np.ndarray) -> None:
        loss = get_loss(name, **params)
        if name == "log_cosh":
            r = r[np.abs(r) < 300]  # the naive reference overflows beyond
        np.testing.assert_allclose(loss.rho(r), RHO[name](r, params), rtol=1e-12, atol=1e-12)

    @given(r=residuals)
    def test_psi_and_psi_prime_are_derivatives(
        self, name: str, params: dict, r: np.ndarray
    ) -> None:
        loss = get_loss(name, **params)
        h = 1e-6 * np.maximum(1.0, np.abs(r))
        kinks = np.asarray(loss.breakpoints())
        if kinks.size:
            r = r[np.min(np.abs(r[:, None] - kinks[None, :]), axis=1) > 1e-3]
            h = 1e-6 * np.maximum(1.0, np.abs(r))
        fd1 = (loss.rho(r + h) - loss.rho(r - h)) / (2 * h)
        fd2 = (loss.psi(r + h) - loss.psi(r - h)) / (2 * h)
        np.testing.assert_allclose(loss.psi(r), fd1, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(loss.psi_prime(r), fd2, rtol=1e-6, atol=1e-6)

    @given(
        r=hnp.arrays(
            np.float64,
            hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
            elements=st.floats(-50, 50, allow_nan=False),
        ),
        reduction=st.sampled_from(["none", "sum", "mean", "batchmean"]),
    )
    def test_reductions_consistent_with_none(
        self, name: str, params: dict, r: np.ndarray, reduction: str
    ) -> None:
        target = np.zeros_like(r)
        elementwise = rnp.loss(name, r, target, reduction="none", **params)
        expected = reduce(elementwise, reduction)
        got = rnp.loss(name, r, target, reduction=reduction, **params)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)

    def test_fused_forms_equal_the_definition(self, name: str, params: dict) -> None:
        loss = get_loss(name, **params)
        r = np.random.default_rng(1).normal(scale=3.0, size=1000)
        total, psi = loss.rho_sum_and_psi(r)
        np.testing.assert_allclose(total, np.sum(loss.rho(r)), rtol=1e-12)
        np.testing.assert_allclose(loss.rho_sum(r), np.sum(loss.rho(r)), rtol=1e-12)
        np.testing.assert_array_equal(psi, loss.psi(r))
        scratch = r.copy()  # overwrite=True may reuse the residual's memory
        total2, psi2 = loss.rho_sum_and_psi(scratch, overwrite=True)
        np.testing.assert_allclose(total2, total, rtol=1e-12)
        np.testing.assert_array_equal(psi2, loss.psi(r))
        np.testing.assert_allclose(loss.rho_sum(r.copy(), overwrite=True), total, rtol=1e-12)
        if loss.psi_slope is not None:
            np.testing.assert_allclose(loss.psi(r), loss.psi_slope * r, rtol=0)


def test_smooth_l1_is_huber_over_beta() -> None:
    r = np.linspace(-5, 5, 101)
    for beta in (0.2, 1.0, 3.0):
        np.testing.assert_allclose(
            get_loss("smooth_l1", beta=beta).rho(r),
            get_loss("huber", delta=beta).rho(r) / beta,
            rtol=1e-12,
        )


def test_smooth_l1_beta_zero_is_exactly_l1_without_nan() -> None:
    loss = get_loss("smooth_l1", beta=0.0)
    r = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(loss.rho(r), np.abs(r))
    np.testing.assert_array_equal(loss.psi(r), np.sign(r))
    np.testing.assert_array_equal(loss.psi_prime(r), np.zeros(3))


def test_mae_psi_at_zero_is_zero() -> None:
    assert get_loss("mae").psi(np.array(0.0)) == 0.0


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("huber", {"delta": 0.0}, r"huber: parameter delta must be finite and > 0, got 0.0"),
        ("huber", {"delta": -1}, r"parameter delta must be finite and > 0, got -1"),
        ("huber", {"delta": float("inf")}, r"parameter delta must be finite and > 0, got inf"),
        ("huber", {"delta": "1"}, r"parameter delta must be a real number, got '1' \(str\)"),
        ("huber", {"delta": True}, r"parameter delta must be a real number, got True"),
        ("smooth_l1", {"beta": -0.5}, r"parameter beta must be finite and >= 0, got -0.5"),
        ("smooth_l1", {"beta": float("nan")}, r"parameter beta must be finite and >= 0, got nan"),
        (
            "cauchy",
            {"c": 1e200},
            r"cauchy: parameter c must be in \[1e-18, 1e\+18\], got 1e\+200; outside that range "
            r"its square is not a normal float32 number: rescale the residuals",
        ),
        ("tukey", {"c": 1e160}, r"tukey: parameter c must be in \[1e-18, 1e\+18\], got 1e\+160"),
        (
            "smooth_l1",
            {"beta": 1e-46},
            r"beta must be in \[1e-18, 1e\+18\] or exactly 0, got 1e-46",
        ),
        ("barron", {"scale": 1e-30}, r"barron: parameter scale must be in \[1e-18, 1e\+18\]"),
        (
            "barron",
            {"alpha": 3.4e38},
            r"barron: parameter alpha must be ±inf or finite with \|alpha\| <= 1e\+18, got "
            r"3\.4e\+38; pass alpha=float\('inf'\) \(or -inf\) for the limit",
        ),
    ],
)
def test_bad_parameter_is_a_value_error_naming_it(name: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_loss(name, **params)


def test_parameters_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        regloss.losses.Huber(2.0)  # type: ignore[misc]


def test_unknown_loss_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown loss 'msee'; choose one of \['mse', 'mae'"):
        get_loss("msee")


def test_unknown_parameter_names_the_accepted_ones() -> None:
    with pytest.raises(
        TypeError,
        match=r"loss 'huber' got unexpected parameter\(s\) \['beta'\]; "
        r"it accepts \['delta'\]",
    ):
        get_loss("huber", beta=1.0)
    with pytest.raises(TypeError, match="it accepts no parameters"):
        get_loss("mse", delta=1.0)


def test_loss_name_must_be_a_string() -> None:
    with pytest.raises(
        TypeError, match="loss must be a registered name or a regloss Loss, got int"
    ):
        get_loss(3)  # type: ignore[arg-type]


def test_params_with_a_loss_object_are_refused() -> None:
    with pytest.raises(TypeError, match="were given with a Loss object"):
        rnp.loss(get_loss("huber"), np.ones(2), np.zeros(2), delta=2.0)


def test_registering_a_loss_serves_it_everywhere() -> None:
    @register("test_quartic")
    @dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
    class Quartic(Loss):
        def rho(self, r):  # type: ignore[no-untyped-def]
            return r**4

        def psi(self, r):  # type: ignore[no-untyped-def]
            return 4 * r**3

        def psi_prime(self, r):  # type: ignore[no-untyped-def]
            return 12 * r**2

    try:
        assert "test_quartic" in regloss.available_losses()
        assert rnp.test_quartic(np.array([2.0]), np.array([0.0])) == 16.0
        import torch

        from regloss.torch import TestQuarticLoss, test_quartic_loss

        x = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
        test_quartic_loss(x, torch.zeros(1, dtype=torch.float64)).backward()
        assert x.grad is not None and x.grad.item() == 32.0
        assert TestQuarticLoss()(x, torch.zeros(1, dtype=torch.float64)).item() == 16.0
        assert regloss.check_gradients("test_quartic").ok
        with pytest.raises(RuntimeError, match="already registered"):
            register("test_quartic")(Quartic)
    finally:
        _REGISTRY.pop("test_quartic")
