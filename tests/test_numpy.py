"""NumPy front-end: the seed example, shared semantics, dtypes and the blocked path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tests.reference import RHO, reduce

import regloss
from regloss import _reduce
from regloss import numpy as rnp

PRED = np.array([1.5, 2.0, 4.0])
TARGET = np.array([1.0, 2.0, 3.0])


def test_seed_example() -> None:
    value, grad = rnp.value_and_grad("mse", PRED, TARGET)
    assert value == pytest.approx(0.4166666666666667, rel=1e-15)
    np.testing.assert_allclose(grad, [1 / 3, 0.0, 2 / 3], rtol=1e-15)
    np.testing.assert_allclose(rnp.mse(PRED, TARGET, reduction="none"), [0.25, 0.0, 1.0])
    assert rnp.mse(PRED, TARGET, reduction="sum") == pytest.approx(1.25)


def test_batchmean_is_mean_over_samples_of_squared_norms() -> None:
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=(5, 3, 2)), rng.normal(size=(5, 3, 2))
    expected = np.mean(np.sum((p - t) ** 2, axis=(1, 2)))
    assert rnp.mse(p, t, reduction="batchmean") == pytest.approx(expected, rel=1e-13)
    _, grad = rnp.value_and_grad("mse", p, t, reduction="batchmean")
    np.testing.assert_allclose(grad, 2 * (p - t) / 5, rtol=1e-13)


@pytest.mark.parametrize("name", ["mse", "mae", "huber", "smooth_l1"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@given(data=st.data())
def test_weights_and_masks_match_reference(name: str, reduction: str, data: st.DataObject) -> None:
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=6))
    floats = st.floats(-20, 20, allow_nan=False)
    p = data.draw(hnp.arrays(np.float64, shape, elements=floats))
    t = data.draw(hnp.arrays(np.float64, shape, elements=floats))
    per_sample = data.draw(st.booleans())
    wshape = (shape[0],) if per_sample else shape
    weights = st.one_of(st.just(0.0), st.floats(1e-3, 5))  # subnormals: see the test below
    w = data.draw(hnp.arrays(np.float64, wshape, elements=weights))
    keep = data.draw(hnp.arrays(np.bool_, wshape))
    t_nan = np.where(
        np.broadcast_to(keep.reshape(keep.shape + (1,) * (len(shape) - len(wshape))), shape),
        t,
        np.nan,
    )
    got = rnp.loss(name, p, t_nan, reduction=reduction, weight=w, mask=keep)
    expected = reduce(RHO[name](p - t, {}), reduction, weight=w, keep=keep)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    _, grad = rnp.value_and_grad(name, p, t_nan, reduction=reduction, weight=w, mask=keep)
    assert np.all(np.isfinite(grad))


def test_weighted_mean_divides_by_the_weights() -> None:
    w = np.array([1.0, 2.0, 3.0])
    expected = np.sum(w * (PRED - TARGET) ** 2) / np.sum(w)
    assert rnp.mse(PRED, TARGET, weight=w) == pytest.approx(expected)


@pytest.mark.parametrize("scale", [5e-324, 1e-300, 1e300])
def test_weighted_mean_is_scale_invariant_even_at_extreme_weights(scale: float) -> None:
    w = np.array([1.0, 2.0, 3.0])
    expected = rnp.mse(PRED, TARGET, weight=w)
    value, grad = rnp.value_and_grad(
        "mse", PRED, TARGET, weight=w * scale if scale > 1e-300 else np.array([0.0, 0.0, scale])
    )
    if scale > 1e-300:
        assert value == pytest.approx(expected, rel=1e-12)
    else:  # only the last element carries weight
        assert value == pytest.approx(1.0)
    assert np.all(np.isfinite(grad))


def test_per_sample_weight_on_multi_output() -> None:
    p, t = np.arange(6.0).reshape(3, 2), np.zeros((3, 2))
    w = np.array([1.0, 0.0, 2.0])
    expected = np.sum(w[:, None] * p**2) / (2 * np.sum(w))
    assert rnp.mse(p, t, weight=w) == pytest.approx(expected)


def test_masked_nan_and_inf_targets_have_zero_gradient() -> None:
    t = np.array([1.0, np.nan, np.inf, 3.0])
    mask = np.array([True, False, False, True])
    for name in regloss.available_losses():
        value, grad = rnp.value_and_grad(name, np.full(4, 2.0), t, mask=mask)
        assert np.isfinite(value)
        assert grad[1] == 0.0 and grad[2] == 0.0
        assert np.all(np.isfinite(grad))


def test_everything_masked_gives_zero_loss_and_gradient() -> None:
    value, grad = rnp.value_and_grad("mse", PRED, TARGET, mask=np.zeros(3, bool))
    assert value == 0.0
    np.testing.assert_array_equal(grad, np.zeros(3))


def test_nan_policy_omit_treats_nan_targets_as_missing() -> None:
    t = np.array([1.0, np.nan, 3.0])
    assert rnp.mse(PRED, t, nan_policy="omit") == pytest.approx((0.25 + 1.0) / 2)
    assert np.isnan(rnp.mse(PRED, t))  # 'propagate' is the default, as in the frameworks


def test_float16_is_computed_in_float32_without_overflow() -> None:
    p = np.array([300.0], dtype=np.float16)
    t = np.array([0.0], dtype=np.float16)
    value, grad = rnp.value_and_grad("mse", p, t)
    assert value.dtype == np.float32 and value == 90000.0
    assert grad.dtype == np.float16 and grad[0] == 600.0


def test_float32_stays_float32() -> None:
    value, grad = rnp.value_and_grad("huber", PRED.astype(np.float32), TARGET.astype(np.float32))
    assert value.dtype == np.float32 and grad.dtype == np.float32


def test_broadcast_opt_in_sums_gradient_to_prediction_shape() -> None:
    p = np.arange(4.0).reshape(4, 1)
    t = np.zeros(3)
    value, grad = rnp.value_and_grad("mse", p, t, broadcast=True)
    assert value == pytest.approx(np.mean((p - t) ** 2))
    np.testing.assert_allclose(grad, np.sum(2 * (p - t) / 12, axis=1, keepdims=True))


def test_lists_are_accepted() -> None:
    assert rnp.mse([1.5, 2.0, 4.0], [1.0, 2.0, 3.0]) == pytest.approx(0.41666666)


@pytest.mark.parametrize("name", ["mse", "mae", "huber", "smooth_l1"])
def test_blocked_path_equals_single_pass(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    p, t = rng.normal(size=(100, 37)), rng.normal(size=(100, 37))
    v1, g1 = rnp.value_and_grad(name, p, t)
    monkeypatch.setattr(_reduce, "BLOCK", 64)  # 3700 elements -> 58 blocks
    v2, g2 = rnp.value_and_grad(name, p, t)
    assert v2 == pytest.approx(v1, rel=1e-12)
    np.testing.assert_allclose(g2, g1, rtol=1e-12)


def test_generated_functions_have_signatures_and_docs() -> None:
    import inspect

    sig = inspect.signature(rnp.huber)
    assert list(sig.parameters)[:3] == ["prediction", "target", "delta"]
    assert sig.parameters["delta"].default == 1.0
    assert "Huber" in (rnp.huber.__doc__ or "")
    assert "huber" in dir(rnp)
    with pytest.raises(AttributeError):
        rnp.not_a_loss  # noqa: B018
