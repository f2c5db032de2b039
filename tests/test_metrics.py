"""regloss.metrics: scikit-learn's regression metrics, streamed, merged and saved.

Every metric is checked against scikit-learn on the same data (weights and multioutput
included) whatever the batching and merge order, against exact rational arithmetic where
float64 cancellation would hide an error (R² of targets offset by 1e9), and every error
message is triggered."""

from __future__ import annotations

import itertools
import json
import math
import pickle
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st

import regloss
import regloss.numpy as rnp
from regloss import metrics as M

#: metric class -> (scikit-learn function, multioutput values it accepts)
SKLEARN: dict[type[M.Metric], tuple[Any, tuple[str, ...]]] = {
    M.MeanSquaredError: (skm.mean_squared_error, ("raw_values", "uniform_average")),
    M.RootMeanSquaredError: (skm.root_mean_squared_error, ("raw_values", "uniform_average")),
    M.MeanAbsoluteError: (skm.mean_absolute_error, ("raw_values", "uniform_average")),
    M.R2Score: (skm.r2_score, ("raw_values", "uniform_average", "variance_weighted")),
    M.ExplainedVariance: (
        skm.explained_variance_score,
        ("raw_values", "uniform_average", "variance_weighted"),
    ),
    M.MedianAbsoluteError: (skm.median_absolute_error, ("raw_values", "uniform_average")),
}


def _data(seed: int, n: int = 600, k: int = 3, offset: float = 0.0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, k)) * rng.uniform(0.5, 5, size=k) + offset
    p = t + rng.standard_t(3, size=(n, k))
    w = rng.uniform(0, 3, size=n)
    w[rng.random(n) < 0.1] = 0.0
    return p, t, w


def _streamed(metric: M.Metric, p: np.ndarray, t: np.ndarray, w: Any, cuts: list[int]) -> Any:
    bounds = [0, *sorted(set(cuts)), len(p)]
    for a, b in itertools.pairwise(bounds):
        if b > a:
            metric.update(p[a:b], t[a:b], None if w is None else w[a:b])
    return metric.compute()


def _close(got: Any, want: Any, rtol: float = 1e-12) -> None:
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=rtol, atol=1e-13)


@pytest.mark.parametrize("cls", list(SKLEARN))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("k", [1, 3])
def test_equal_to_scikit_learn_whatever_the_batching(
    cls: type[M.Metric], weighted: bool, k: int
) -> None:
    fn, multioutputs = SKLEARN[cls]
    p, t, w = _data(k, k=k)
    if k == 1:
        p, t = p[:, 0], t[:, 0]
    sw = w if weighted else None
    weights = (np.array([0.2, 0.5, 0.3]),) if k == 3 else ()  # sklearn: k > 1 only
    for mo in (*multioutputs, *weights):
        want = fn(t, p, sample_weight=sw, multioutput=mo)
        for cuts in ([], [1], [7, 8, 300], list(range(0, 600, 13))):
            _close(_streamed(cls(multioutput=mo), p, t, sw, cuts), want)


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(1, 399), max_size=12),
    order=st.randoms(use_true_random=False),
    cls=st.sampled_from([*SKLEARN, M.MaxError]),
)
def test_any_split_merged_in_any_order_gives_the_same_result(
    cuts: list[int], order: Any, cls: type[M.Metric]
) -> None:
    """Associative and commutative: parts of any sizes, each in its own metric (as on other
    processes), merged pairwise in a random tree, equal one metric fed everything."""
    p, t, w = _data(5, n=400, offset=1e6)
    whole = cls().update(p, t, w).compute()
    bounds = [0, *sorted(set(cuts)), 400]
    parts = [cls().update(p[a:b], t[a:b], w[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
    while len(parts) > 1:
        order.shuffle(parts)
        parts.append(parts.pop().merge(parts.pop()))
    _close(parts[0].compute(), whole, rtol=1e-13)


def test_r2_of_targets_offset_by_1e9_is_exact() -> None:
    """Chan's merge of two-pass (weight, mean, M2) with the mean kept as hi + lo: against
    exact rational arithmetic, whatever the batching (a plain merge of float64 means was
    3e-11 off here)."""
    rng = np.random.default_rng(0)
    t = rng.normal(size=1000) * 5 + 1e9
    p = t + rng.normal(size=1000)
    w = rng.uniform(0, 2, size=1000)
    tt, pp, ww = ([Fraction(float(x)) for x in a] for a in (t, p, w))
    total = sum(ww)
    mean = sum(a * b for a, b in zip(ww, tt, strict=True)) / total
    den = sum(a * (b - mean) ** 2 for a, b in zip(ww, tt, strict=True))
    num = sum(a * (b - c) ** 2 for a, b, c in zip(ww, tt, pp, strict=True))
    exact = float(1 - num / den)
    for parts in (1, 2, 7, 100, 1000):
        m = M.R2Score()
        for idx in np.array_split(np.arange(1000), parts):
            m.update(p[idx], t[idx], w[idx])
        assert abs(m.compute() - exact) <= 4e-16 * abs(exact)


def test_rmse_is_the_root_of_the_pooled_mean_never_a_mean_of_batch_rmses() -> None:
    p = np.array([0.0, 0.0, 0.0, 10.0])
    t = np.zeros(4)
    m = M.RootMeanSquaredError().update(p[:3], t[:3]).update(p[3:], t[3:])
    assert m.compute() == pytest.approx(math.sqrt(100 / 4), rel=1e-15)  # 5, not (0 + 10) / 2


@pytest.mark.parametrize("name", regloss.available_losses())
def test_mean_loss_of_every_registered_loss_equals_the_weighted_mean_loss(name: str) -> None:
    """Registry-wide: MeanLoss streamed equals the loss itself with reduction='mean' and the
    same weights, in float64."""
    p, t, w = _data(2, n=300, k=1)
    p, t = p[:, 0], t[:, 0]
    want = rnp.loss(name, p, t, weight=w, reduction="mean")
    _close(_streamed(M.MeanLoss(name), p, t, w, [50, 51, 200]), want)


@pytest.mark.parametrize("name", regloss.available_nll_losses())
@pytest.mark.parametrize("log_input", [False, True])
def test_mean_loss_of_the_nlls_takes_their_scale_input(name: str, log_input: bool) -> None:
    p, t, w = _data(3, n=200, k=2)
    rng = np.random.default_rng(1)
    s = rng.uniform(0.2, 3, size=200)  # one per row, as the losses read it
    if log_input:
        s = np.log(s)
    key = {"gaussian_nll": "log_var", "laplace_nll": "log_scale"}[name]
    params = {key: True} if log_input else {}
    want = rnp.nll(name, p, t, s, weight=w, **params)
    m = M.MeanLoss(name, **params)
    for idx in np.array_split(np.arange(200), 3):
        m.update(p[idx], t[idx], w[idx], scale=s[idx])
    # the loss averages over every element; the metric per output, then uniformly
    _close(m.compute(), want)


def test_pinball_loss_equals_scikit_learn_at_every_level() -> None:
    p, t, w = _data(4, k=2)
    for q in (0.05, 0.5, 0.9):
        want = skm.mean_pinball_loss(t, p, alpha=q, sample_weight=w)
        _close(_streamed(M.MeanPinballLoss(q), p, t, w, [100, 333]), want)


def test_max_error_equals_scikit_learn_per_output() -> None:
    p, t, _ = _data(6, k=2)
    m = M.MaxError(multioutput="raw_values")
    got = _streamed(m, p, t, None, [10, 500])
    _close(got, [skm.max_error(t[:, j], p[:, j]) for j in range(2)])


def test_integer_targets_are_computed_in_float64() -> None:
    t = np.array([3, 5, 2, 7])
    p = np.array([2.5, 5.0, 4.0, 8.0])
    _close(M.MeanSquaredError().update(p, t).compute(), skm.mean_squared_error(t, p))
    _close(M.R2Score().update(p, t).compute(), skm.r2_score(t, p))


def test_constant_targets_give_scikit_learns_finite_r2() -> None:
    t = np.ones(5)
    assert M.R2Score().update(t, t).compute() == 1.0
    assert M.R2Score().update(t + 0.1, t).compute() == 0.0
    assert M.ExplainedVariance().update(t + 0.1, t).compute() == 1.0  # a constant offset


# --- missing values, masks, weights ---------------------------------------------------


@pytest.mark.parametrize("cls", [*SKLEARN, M.MaxError])
def test_nan_policy_and_mask(cls: type[M.Metric]) -> None:
    p, t, w = _data(7, k=2)
    t_nan = t.copy()
    t_nan[[3, 50, 51], 0] = np.nan
    got = cls(multioutput="raw_values").update(p, t_nan, w).compute()
    assert np.isnan(got[0]) and not np.isnan(got[1])  # propagate: that output only
    omitted = cls(nan_policy="omit", multioutput="raw_values").update(p, t_nan, w).compute()
    keep = ~np.isnan(t_nan[:, 0])
    masked = cls(multioutput="raw_values").update(p, t, w, mask=~np.isnan(t_nan)).compute()
    ref = cls(multioutput="raw_values").update(p[keep], t[keep], w[keep]).compute()
    _close(omitted[0], ref[0])
    _close(masked, omitted)
    with pytest.raises(ValueError, match="target contains 3 NaN"):
        cls(nan_policy="raise").update(p, t_nan, w)


def test_zero_weight_everywhere_gives_nan_not_an_error() -> None:
    p, t, _ = _data(8, n=10, k=1)
    for cls in (M.MeanSquaredError, M.MedianAbsoluteError, M.MaxError):
        assert math.isnan(cls().update(p, t, np.zeros(10)).compute())


# --- the median's sketch ------------------------------------------------------------------


def test_median_is_exact_until_the_limit_then_within_its_bound() -> None:
    rng = np.random.default_rng(9)
    t = rng.normal(size=(20000, 2))
    p = t + rng.lognormal(size=(20000, 2)) * rng.choice([-1, 1], size=(20000, 2))
    w = rng.uniform(0.5, 2, size=20000)
    want = skm.median_absolute_error(t, p, sample_weight=w, multioutput="raw_values")
    exact = M.MedianAbsoluteError(multioutput="raw_values")
    _close(_streamed(exact, p, t, w, [5000, 12000]), want)
    assert exact.exact
    small = M.MedianAbsoluteError(multioutput="raw_values", exact_limit=3000)
    got = _streamed(small, p, t, w, [1000, 2500, 9000])
    assert not small.exact
    assert np.all(np.abs(got - want) <= M.MedianAbsoluteError.error_bound * want)
    # an exact state merged into a sketched one, and the reverse, keep the bound
    a = M.MedianAbsoluteError(multioutput="raw_values", exact_limit=3000)
    a.update(p[:2000], t[:2000], w[:2000])
    b = M.MedianAbsoluteError(multioutput="raw_values", exact_limit=3000)
    b.update(p[2000:], t[2000:], w[2000:])
    for merged in (a.merge(b), b.merge(a)):
        assert np.all(np.abs(merged.compute() - want) <= merged.error_bound * want)


# --- state -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        *(lambda c=c: c() for c in SKLEARN),
        lambda: M.MaxError(),
        lambda: M.MeanPinballLoss(0.3),
        lambda: M.MeanLoss("huber", delta=0.5),
        lambda: M.MedianAbsoluteError(exact_limit=50),
    ],
)
def test_state_dict_round_trips_through_json_and_pickle(make: Any) -> None:
    p, t, w = _data(10, n=200, k=2)
    m = make().update(p[:120], t[:120], w[:120])
    for blob in (json.loads(json.dumps(m.state_dict())), pickle.loads(pickle.dumps(m))):
        other = make()
        other = other.load_state_dict(blob) if isinstance(blob, dict) else blob
        other.update(p[120:], t[120:], w[120:])
        _close(other.compute(), make().update(p, t, w).compute(), rtol=1e-13)
    fresh = make()
    assert fresh.load_state_dict(fresh.state_dict()).state_dict() == make().state_dict()


def test_reset_forgets_the_data_and_keeps_the_configuration() -> None:
    m = M.R2Score(multioutput="raw_values").update(np.ones((3, 2)), np.zeros((3, 2)))
    m.reset()
    m.update(np.zeros(4), np.arange(4.0))  # now one output is fine
    assert m.compute().shape == (1,)


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: M.MeanSquaredError(multioutput="avg"), ValueError, "multioutput must be one"),
        (
            lambda: M.MeanSquaredError(multioutput="variance_weighted"),
            ValueError,
            "R2Score and ExplainedVariance only",
        ),
        (lambda: M.R2Score(multioutput=[0.5, -1]), ValueError, "finite values >= 0"),
        (lambda: M.R2Score(nan_policy="drop"), ValueError, "nan_policy"),
        (lambda: M.MeanLoss("l2"), ValueError, "unknown loss 'l2'"),
        (lambda: M.MeanLoss("huber", delta=-1), ValueError, "delta"),
        (lambda: M.MeanLoss("huber", alpha=1), TypeError, "unexpected parameter"),
        (lambda: M.MedianAbsoluteError(exact_limit=-1), ValueError, "exact_limit"),
        (lambda: M.MeanSquaredError().compute(), ValueError, "at least one update"),
        (
            lambda: (
                M.MeanSquaredError()
                .update(np.ones((2, 3)), np.ones((2, 3)))
                .update(np.ones(2), np.ones(2))
            ),
            ValueError,
            "1 output.*earlier updates had 3",
        ),
        (
            lambda: M.MeanSquaredError().update(np.ones((2, 2, 2)), np.ones((2, 2, 2))),
            ValueError,
            r"\(n, outputs\)",
        ),
        (
            lambda: M.MeanSquaredError().update(np.ones(3), np.ones(4)),
            ValueError,
            "target has shape",
        ),
        (
            lambda: M.MeanSquaredError().update(np.ones(3), np.ones(3), -np.ones(3)),
            ValueError,
            "weight",
        ),
        (
            lambda: M.MeanSquaredError().update(np.array([True]), np.ones(1)),
            TypeError,
            "dtype bool",
        ),
        (lambda: M.MeanSquaredError().merge(M.MeanAbsoluteError()), ValueError, "merge"),
        (
            lambda: M.MeanSquaredError().merge(M.MeanSquaredError(multioutput="raw_values")),
            ValueError,
            "configuration",
        ),
        (
            lambda: (
                M.MeanSquaredError()
                .update(np.ones(2), np.ones(2))
                .merge(M.MeanSquaredError().update(np.ones((2, 2)), np.ones((2, 2))))
            ),
            ValueError,
            "other has 2 output",
        ),
        (
            lambda: M.MeanSquaredError().load_state_dict(M.MeanAbsoluteError().state_dict()),
            ValueError,
            "load_state_dict",
        ),
        (
            lambda: M.MeanLoss("gaussian_nll").update(np.ones(2), np.ones(2)),
            ValueError,
            "needs scale=",
        ),
        (
            lambda: M.MeanLoss("mse").update(np.ones(2), np.ones(2), scale=np.ones(2)),
            ValueError,
            "takes no scale=",
        ),
        (
            lambda: (
                M.MeanSquaredError(multioutput=[1.0, 2.0])
                .update(np.ones((2, 3)), np.ones((2, 3)))
                .compute()
            ),
            ValueError,
            "2 weights but the targets have 3",
        ),
        (
            lambda: (
                M.MeanSquaredError(multioutput=[0.0, 0.0])
                .update(np.ones((2, 2)), np.ones((2, 2)))
                .compute()
            ),
            ValueError,
            "sum to 0",
        ),
    ],
)
def test_every_error_names_the_argument(call: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("cls", [*SKLEARN, M.MaxError])
def test_a_metric_merged_into_itself_counts_its_data_twice(cls: type[M.Metric]) -> None:
    p, t, w = _data(12, n=100)
    twice = cls().update(p, t, w).update(p, t, w).compute()
    m = cls().update(p, t, w)
    _close(m.merge(m).compute(), twice)
