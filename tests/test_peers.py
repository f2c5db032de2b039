"""Differential tests against scikit-learn's weighted, multi-output regression metrics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import mean_absolute_error, mean_squared_error

from regloss import numpy as rnp


@pytest.mark.parametrize(
    ("name", "peer"), [("mse", mean_squared_error), ("mae", mean_absolute_error)]
)
@given(data=st.data())
def test_weighted_mean_equals_sklearn(name: str, peer: object, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 20))
    outputs = data.draw(st.sampled_from([None, 1, 2, 4]))
    shape = (n,) if outputs is None else (n, outputs)
    floats = st.floats(-1e3, 1e3, allow_nan=False)
    p = data.draw(hnp.arrays(np.float64, shape, elements=floats))
    t = data.draw(hnp.arrays(np.float64, shape, elements=floats))
    w = data.draw(hnp.arrays(np.float64, (n,), elements=st.floats(0.01, 10)))
    # sklearn: uniform average over outputs of per-output weighted means == regloss 'mean'
    expected = peer(t, p, sample_weight=w)  # type: ignore[operator]
    got = rnp.loss(name, p, t, weight=w)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-9)


def test_batchmean_is_sklearn_mean_times_outputs() -> None:
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    assert rnp.mse(p, t, reduction="batchmean") == pytest.approx(3 * mean_squared_error(t, p))
