"""NumPy front-end: loss values and analytic gradients.

Every registered loss is a function here under its registry name, with the signature
``name(prediction, target, *, <loss parameters>, reduction='mean', weight=None,
mask=None, nan_policy='propagate', broadcast=False)``.

Examples
--------
>>> import numpy as np
>>> from regloss import numpy as rnp
>>> pred, target = np.array([1.5, 2.0, 4.0]), np.array([1.0, 2.0, 3.0])
>>> float(rnp.mse(pred, target))
0.4167
>>> value, grad = rnp.value_and_grad("mse", pred, target)
>>> grad
array([0.33333333, 0.        , 0.66666667])
>>> float(rnp.huber(pred, target, delta=0.5))
0.1667
>>> float(rnp.mse(pred, np.array([1.0, np.nan, 3.0]), nan_policy="omit"))
0.625
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _reduce
from ._frontend import OPTION_DOC, log_flag, loss_signature_params
from ._typing import Array
from ._validate import check_scale_input, prepare
from .losses import Loss, available_losses, resolve
from .losses._base import _REGISTRY
from .losses._nll import _NLL_REGISTRY, available_nll_losses, resolve_nll

__all__ = [
    "loss",
    "nll",
    "nll_value_and_grads",
    "value_and_grad",
    *available_losses(),
    *available_nll_losses(),
]


def _as_array(x: Any) -> Any:
    return x if isinstance(x, np.ndarray) else np.asarray(x)


def _prepare(
    prediction: Array,
    target: Array,
    reduction: str,
    weight: Array | None,
    mask: Array | None,
    nan_policy: str,
    broadcast: bool,
) -> tuple[Any, Any]:
    """(prediction as an array, the checked inputs) for NumPy arrays or array-likes."""
    p = _as_array(prediction)
    prep = prepare(
        np,
        p,
        _as_array(target),
        reduction=reduction,
        weight=None if weight is None else _as_array(weight),
        mask=None if mask is None else _as_array(mask),
        nan_policy=nan_policy,
        broadcast=broadcast,
    )
    return p, prep


def _run(
    name_or_loss: str | Loss,
    prediction: Array,
    target: Array,
    need_grad: bool,
    reduction: str = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: str = "propagate",
    broadcast: bool = False,
    **params: Any,
) -> tuple[Any, Any]:
    fn = resolve(name_or_loss, params)
    p, prep = _prepare(prediction, target, reduction, weight, mask, nan_policy, broadcast)
    with np.errstate(invalid="ignore", over="ignore"):
        fw = _reduce.forward(fn, np, prep, need_psi=need_grad)
    value = fw.value
    value = value[()] if np.ndim(value) == 0 else value
    if not need_grad:
        return value, None
    assert fw.psi_f is not None
    grad = _reduce.sum_to_shape(np, fw.psi_f * fw.grad_scale, tuple(p.shape))
    return value, np.asarray(grad).astype(p.dtype, copy=False)


def loss(name_or_loss: str | Loss, prediction: Array, target: Array, **kwargs: Any) -> Any:
    """The loss ``name_or_loss`` (a registry name or a Loss) of ``(prediction, target)``.

    ``kwargs`` are the loss's parameters and the shared options below. Returns a NumPy
    scalar (or an array for ``reduction='none'``) in the inputs' float dtype (float32 for
    float16 inputs).
    """
    return _run(name_or_loss, prediction, target, False, **kwargs)[0]


def value_and_grad(
    name_or_loss: str | Loss, prediction: Array, target: Array, **kwargs: Any
) -> tuple[Any, Any]:
    """``(loss, d loss / d prediction)``; the gradient has the prediction's shape and dtype.

    With ``reduction='none'`` the gradient is that of ``loss.sum()``.
    """
    return _run(name_or_loss, prediction, target, True, **kwargs)


loss.__doc__ = (loss.__doc__ or "") + OPTION_DOC
value_and_grad.__doc__ = (value_and_grad.__doc__ or "") + OPTION_DOC


@functools.cache
def _function(name: str) -> Callable[..., Any]:
    cls = _REGISTRY[name]

    def fn(prediction: Array, target: Array, **kwargs: Any) -> Any:
        return _run(name, prediction, target, False, **kwargs)[0]

    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = __name__
    fn.__doc__ = f"The {name} loss of ``(prediction, target)``.\n\n{cls.__doc__}\n{OPTION_DOC}"
    pos = [
        inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for n in ("prediction", "target")
    ]
    fn.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        pos + loss_signature_params(cls) + _OPTION_PARAMS
    )
    return fn


_OPTION_PARAMS = [
    inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d)
    for n, d in [
        ("reduction", "mean"),
        ("weight", None),
        ("mask", None),
        ("nan_policy", "propagate"),
        ("broadcast", False),
    ]
]


def _run_nll(
    name: str,
    prediction: Array,
    target: Array,
    scale: Array,
    need_grad: bool,
    reduction: str = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: str = "propagate",
    broadcast: bool = False,
    **params: Any,
) -> tuple[Any, Any, Any]:
    spec, log_input = resolve_nll(name, params)
    p, prep = _prepare(prediction, target, reduction, weight, mask, nan_policy, broadcast)
    sc = check_scale_input(np, spec.scale_input, _as_array(scale), prep.shape, log_input=log_input)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        fw = _reduce.nll_forward(np, spec, prep, sc, log_input=log_input, need_grad=need_grad)
    value = fw.total * fw.value_scale
    value = value[()] if np.ndim(value) == 0 else value
    if not need_grad:
        return value, None, None
    assert fw.d_pred is not None and fw.d_scale is not None
    gp = _reduce.sum_to_shape(np, fw.d_pred * fw.value_scale, tuple(p.shape))
    gs = _reduce.sum_to_shape(
        np, np.broadcast_to(fw.d_scale * fw.value_scale, prep.shape), tuple(sc.shape)
    )
    return value, np.asarray(gp).astype(p.dtype, copy=False), np.asarray(gs)


def nll(name: str, prediction: Array, target: Array, scale: Array, **kwargs: Any) -> Any:
    """A negative log-likelihood loss (``gaussian_nll``, ``laplace_nll``) of
    ``(prediction, target)`` with the predicted variance or scale as third input."""
    return _run_nll(name, prediction, target, scale, False, **kwargs)[0]


def nll_value_and_grads(
    name: str, prediction: Array, target: Array, scale: Array, **kwargs: Any
) -> tuple[Any, Any, Any]:
    """``(loss, d loss / d prediction, d loss / d scale input)``."""
    return _run_nll(name, prediction, target, scale, True, **kwargs)


@functools.cache
def _nll_function(name: str) -> Callable[..., Any]:
    cls = _NLL_REGISTRY[name]

    def fn(prediction: Array, target: Array, scale: Array, **kwargs: Any) -> Any:
        return _run_nll(name, prediction, target, scale, False, **kwargs)[0]

    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = __name__
    fn.__doc__ = (
        f"The {name} loss of ``(prediction, target, {cls.scale_input})``; pass "
        f"``{log_flag(name)}=True`` when the third input is its logarithm.\n\n"
        f"{cls.__doc__}\n{OPTION_DOC}"
    )
    return fn


def __getattr__(name: str) -> Callable[..., Any]:
    if name in _NLL_REGISTRY:
        return _nll_function(name)
    if name in _REGISTRY:
        return _function(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_REGISTRY) | set(_NLL_REGISTRY))
