"""NumPy front-end: the seed example, shared semantics, dtypes and the blocked path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tests.reference import RHO, reduce
from tests.settings import params

import regloss
from regloss import _eager
from regloss import numpy as rnp
from regloss._thresholds import THRESHOLDS

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


@pytest.mark.parametrize("name", ["mse", "mae", "huber", "smooth_l1", "cauchy"])
def test_blocked_path_equals_single_pass(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    p, t = rng.normal(size=(100, 37)), rng.normal(size=(100, 37))
    with rnp.use_route("eager"):
        v1, g1 = rnp.value_and_grad(name, p, t)
    block = THRESHOLDS["eager_block"]._replace(value=64)  # 3700 elements -> 58 blocks
    monkeypatch.setitem(THRESHOLDS, "eager_block", block)
    small = THRESHOLDS["eager_blocks"]._replace(value=256)
    monkeypatch.setitem(THRESHOLDS, "eager_blocks", small)
    if name == "mse":  # a linear gradient keeps the residual: nothing to block
        assert rnp.explain(name, p, t).route == "eager"
        return
    with rnp.use_route("eager_blocked"):
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


# --- value_and_grad(out=) -------------------------------------------------------------------

_LONG = 3 * _eager.INTO_BLOCK + 5  # several blocks and a ragged last one


def _out_case(kind: str, n: int) -> tuple[np.ndarray, np.ndarray, dict]:
    rng = np.random.default_rng(n)
    p = rng.normal(size=(n, 2)) * 3
    t = rng.normal(size=(n, 2))
    kw: dict = {
        "plain": {},
        "float32": {},
        "sum": {"reduction": "sum"},
        "batchmean": {"reduction": "batchmean"},
        "none": {"reduction": "none"},
        "weight": {"weight": rng.random((n, 2))},
        "mask": {"mask": rng.random((n, 2)) > 0.3},
        "omit": {"nan_policy": "omit"},
        "broadcast": {"broadcast": True},
    }[kind]
    if kind == "float32":
        p, t = p.astype(np.float32), t.astype(np.float32)
    if kind == "omit":
        t[::7, 0] = np.nan
    if kind == "broadcast":
        t = t[:1]
    return p, t, kw


_KINDS = ["plain", "float32", "sum", "batchmean", "none", "weight", "mask", "omit", "broadcast"]


@pytest.mark.parametrize("kind", _KINDS)
@pytest.mark.parametrize(("name", "p"), params())
def test_value_and_grad_out_equals_the_returned_gradient(name: str, p: dict, kind: str) -> None:
    """out= writes exactly the gradient value_and_grad returns, for every loss and option
    (the blockwise path where no option is set, a copy otherwise), and returns out."""
    _compare_out(name, p, kind, 5)


@pytest.mark.parametrize("kind", ["plain", "float32"])
@pytest.mark.parametrize("name", regloss.available_losses())
def test_value_and_grad_out_over_several_blocks(name: str, kind: str) -> None:
    _compare_out(name, {}, kind, _LONG)


def _compare_out(name: str, p: dict, kind: str, n: int) -> None:
    pred, target, kw = _out_case(kind, n)
    value, grad = rnp.value_and_grad(name, pred, target, **p, **kw)
    out = np.full_like(pred, np.nan)
    value_out, got = rnp.value_and_grad(name, pred, target, out=out, **p, **kw)
    assert got is out
    np.testing.assert_array_equal(out, grad)
    rtol = 1e-6 if pred.dtype == np.float32 else 1e-13
    np.testing.assert_allclose(value_out, value, rtol=rtol, atol=0)
    assert np.asarray(value_out).dtype == np.asarray(value).dtype


def test_value_and_grad_out_into_a_non_contiguous_buffer() -> None:
    pred, target = np.arange(6.0).reshape(2, 3), np.ones((2, 3))
    buf = np.zeros((3, 2)).T  # F-ordered view: written through np.copyto
    _, got = rnp.value_and_grad("huber", pred, target, out=buf)
    assert got is buf
    np.testing.assert_array_equal(buf, rnp.value_and_grad("huber", pred, target)[1])


@pytest.mark.parametrize(
    ("out", "error", "message"),
    [
        ([0.0, 0.0, 0.0], TypeError, "out must be a numpy.ndarray, got list"),
        (np.zeros(4), ValueError, r"out has shape \(4,\) and dtype float64, but the gradient"),
        (np.zeros(3, np.float32), ValueError, "dtype float32, but the gradient has the"),
        ("readonly", ValueError, "out is read-only"),
        ("prediction", ValueError, "out shares memory with prediction"),
        ("target", ValueError, "out shares memory with target"),
    ],
)
def test_value_and_grad_out_errors(out: object, error: type, message: str) -> None:
    pred, target = np.array([1.5, 2.0, 4.0]), np.array([1.0, 2.0, 3.0])
    if isinstance(out, str):
        out = {"readonly": np.zeros(3), "prediction": pred, "target": target}[out]
        if isinstance(out, np.ndarray) and out is not pred and out is not target:
            out.flags.writeable = False
    with pytest.raises(error, match=message):
        rnp.value_and_grad("mse", pred, target, out=out)
