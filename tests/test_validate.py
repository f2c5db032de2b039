"""Every input error has a message that names the argument, what was received and the fix.

Each case runs through the NumPy, PyTorch and JAX front-ends: the checks live in one place
and every front-end must reach them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from regloss import jax as rjax
from regloss import numpy as rnp
from regloss.torch import functional as rtf


def _np(x: Any) -> Any:
    return np.asarray(x)


def _torch(x: Any) -> Any:
    return torch.as_tensor(np.asarray(x))


def _jax(x: Any) -> Any:
    return jnp.asarray(np.asarray(x))


FRONTENDS: list[Any] = [
    pytest.param(lambda p, t, **kw: rnp.loss("mse", p, t, **kw), _np, id="numpy"),
    pytest.param(lambda p, t, **kw: rtf.loss("mse", p, t, **kw), _torch, id="torch"),
    pytest.param(lambda p, t, **kw: rjax.loss("mse", p, t, **kw), _jax, id="jax"),
]

F64 = np.float64
CASES: list[Any] = [
    pytest.param(
        np.zeros((8, 1), F64),
        np.zeros(8, F64),
        {},
        ValueError,
        r"target has shape \(8,\) but prediction has shape \(8, 1\); reshape one "
        r"\(e\.g\. target\.view_as\(prediction\) or target\.reshape\(prediction\.shape\)\) "
        r"or pass broadcast=True",
        id="shape-mismatch",
    ),
    pytest.param(
        np.zeros(3, F64),
        np.zeros(4, F64),
        {"broadcast": True},
        ValueError,
        r"prediction shape \(3,\) and target shape \(4,\) cannot be broadcast together",
        id="broadcast-impossible",
    ),
    pytest.param(
        np.zeros(3, np.int64),
        np.zeros(3, F64),
        {},
        TypeError,
        r"prediction has dtype int64; losses need floating-point inputs: cast first",
        id="int-prediction",
    ),
    pytest.param(
        np.zeros(3, F64),
        np.zeros(3, bool),
        {},
        TypeError,
        r"target has dtype bool; losses need floating-point inputs",
        id="bool-target",
    ),
    pytest.param(
        np.zeros((0, 3), F64),
        np.zeros((0, 3), F64),
        {},
        ValueError,
        r"prediction is empty \(shape \(0, 3\)\); a loss needs at least one element",
        id="empty",
    ),
    pytest.param(
        np.zeros(3, F64),
        np.zeros(3, F64),
        {"reduction": "avg"},
        ValueError,
        r"reduction must be one of 'none', 'sum', 'mean', 'batchmean'(, 'global_mean')?, got 'avg'",
        id="reduction",
    ),
    pytest.param(
        np.zeros(3, F64),
        np.zeros(3, F64),
        {"nan_policy": "drop"},
        ValueError,
        r"nan_policy must be one of 'propagate', 'omit', 'raise', got 'drop'",
        id="nan-policy",
    ),
    pytest.param(
        np.zeros((4, 2), F64),
        np.array([[0, 1], [2, np.nan], [np.nan, 0], [1, 1]], F64),
        {"nan_policy": "raise"},
        ValueError,
        r"target contains 2 NaN value\(s\), the first at index \(1, 1\); drop or impute them, "
        r"mask them out with mask=, or pass nan_policy='omit'",
        id="nan-raise-target",
    ),
    pytest.param(
        np.array([0.0, np.nan]),
        np.zeros(2, F64),
        {"nan_policy": "raise"},
        ValueError,
        r"prediction contains 1 NaN value\(s\), the first at index \(1,\)",
        id="nan-raise-prediction",
    ),
    pytest.param(
        np.zeros((4, 2), F64),
        np.zeros((4, 2), F64),
        {"weight": np.ones(3)},
        ValueError,
        r"weight has shape \(3,\) but must have the prediction's shape \(4, 2\) or \(4,\) "
        r"for one weight per sample along dimension 0",
        id="weight-shape",
    ),
    pytest.param(
        np.zeros(3, F64),
        np.zeros(3, F64),
        {"weight": np.array([1.0, -2.0, 0.5])},
        ValueError,
        r"weight has 1 negative value\(s\) \(smallest -2\); weights must be finite and >= 0",
        id="weight-negative",
    ),
    pytest.param(
        np.zeros(3, F64),
        np.zeros(3, F64),
        {"weight": np.array([1.0, np.inf, np.nan])},
        ValueError,
        r"weight has 2 non-finite value\(s\) \(NaN or inf\)",
        id="weight-nonfinite",
    ),
    pytest.param(
        np.zeros(3, F64),
        np.zeros(3, F64),
        {"weight": np.array([True, False, True])},
        TypeError,
        r"weight has dtype bool; pass real-valued weights \(for a boolean selection "
        r"use mask=\)",
        id="weight-bool",
    ),
    pytest.param(
        np.zeros(3, F64),
        np.zeros(3, F64),
        {"mask": np.array([1, 0, 1])},
        TypeError,
        r"mask has dtype int64; it must be boolean with True = use this element",
        id="mask-dtype",
    ),
    pytest.param(
        np.zeros((4, 2), F64),
        np.zeros((4, 2), F64),
        {"mask": np.ones(2, bool)},
        ValueError,
        r"mask has shape \(2,\) but must have the prediction's shape \(4, 2\) or \(4,\)",
        id="mask-shape",
    ),
    pytest.param(
        np.zeros((), F64),
        np.zeros((), F64),
        {"reduction": "batchmean"},
        ValueError,
        r"reduction='batchmean' averages over dimension 0, but the inputs are 0-d",
        id="batchmean-0d",
    ),
    pytest.param(
        np.zeros(3, np.float32),
        np.zeros(3, np.float32),
        {"weight": np.full(3, 1e39), "reduction": "sum"},
        ValueError,
        r"weight has values up to 1e\+39, beyond the largest float32 \(3\.40282e\+38\), the dtype "
        r"this loss is computed in; rescale the weights or compute in float64",
        id="weight-beyond-compute-dtype",
    ),
]


@pytest.mark.parametrize(("run", "conv"), FRONTENDS)
@pytest.mark.parametrize(("pred", "target", "kw", "exc", "message"), CASES)
def test_error_message(
    run: Callable[..., Any],
    conv: Callable[[Any], Any],
    pred: Any,
    target: Any,
    kw: dict[str, Any],
    exc: type[Exception],
    message: str,
) -> None:
    kw = {k: conv(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    with pytest.raises(exc, match=message):
        run(conv(pred), conv(target), **kw)


def test_mixed_libraries_are_refused() -> None:
    with pytest.raises(TypeError, match=r"target must be a torch\.Tensor, got ndarray; convert"):
        rtf.loss("mse", torch.zeros(2), np.zeros(2))  # type: ignore[arg-type]
    from regloss._reduction import MEAN, Options
    from regloss._validate import prepare

    with pytest.raises(TypeError, match="prediction is a torch array but target is a numpy array"):
        prepare(np, torch.zeros(2), np.zeros(2), Options(MEAN))


def test_nan_raise_ignores_masked_positions() -> None:
    target = np.array([1.0, np.nan, 3.0])
    value = rnp.mse(np.ones(3), target, nan_policy="raise", mask=np.array([True, False, True]))
    assert value == pytest.approx(2.0)


def test_nan_raise_refused_under_jit() -> None:
    import jax

    f = jax.jit(lambda p, t: rjax.mse(p, t, nan_policy="raise"))
    with pytest.raises(
        ValueError, match=r"nan_policy='raise' cannot inspect values while tracing \(jax"
    ):
        f(jnp.ones(3), jnp.ones(3))


def test_module_constructor_validates() -> None:
    from regloss.torch import MSELoss

    with pytest.raises(ValueError, match="reduction must be one of"):
        MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="nan_policy must be one of"):
        MSELoss(nan_policy="skip")
