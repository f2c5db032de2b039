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
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _reduce
from ._frontend import OPTION_DOC, loss_signature_params
from ._typing import Array, ArrayLike, NanPolicy, QuantileLevels, Reduction
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


def _as_array(x: Any, name: str = "input") -> Any:
    if type(x) is np.ndarray:
        return x
    if isinstance(x, np.matrix):
        raise TypeError(
            f"{name} is an np.matrix, whose * is a matrix product; pass np.asarray({name})"
        )
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a masked array only where masked arrays are not accepted; pass "
            f"np.ma.getdata({name}) and its mask as mask="
        )
    return np.asarray(x)


def _unmask(prediction: Any, target: Any, mask: Any) -> tuple[Any, Any, Any]:
    """Masked arrays (np.ma) honoured: their masked entries are left out through ``mask=``
    exactly as a user mask would leave them out (weighted counts, zero gradient)."""
    if not (isinstance(prediction, np.ma.MaskedArray) or isinstance(target, np.ma.MaskedArray)):
        return prediction, target, mask
    hidden = np.ma.getmaskarray(prediction) | np.ma.getmaskarray(target)
    keep = ~hidden if mask is None else np.logical_and(_as_array(mask, "mask"), ~hidden)
    return np.ma.getdata(prediction), np.ma.getdata(target), keep


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
    prediction, target, mask = _unmask(prediction, target, mask)
    p = _as_array(prediction, "prediction")
    prep = prepare(
        np,
        p,
        _as_array(target, "target"),
        reduction=reduction,
        weight=None if weight is None else _as_array(weight, "weight"),
        mask=None if mask is None else _as_array(mask, "mask"),
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
    out: Any = None,
    **params: Any,
) -> tuple[Any, Any]:
    fn = resolve(name_or_loss, params)
    p, prep = _prepare(prediction, target, reduction, weight, mask, nan_policy, broadcast)
    if out is not None:
        _check_out(out, p, prep)
        if _into_ok(fn, prep, out):
            with np.errstate(invalid="ignore", over="ignore"):
                total = _reduce.forward_into(fn, prep, out)
            return out.dtype.type(total), out
    with np.errstate(invalid="ignore", over="ignore"):
        fw = _reduce.forward(fn, np, prep, need_psi=need_grad)
    value = fw.value
    value = value[()] if np.ndim(value) == 0 else value
    if not need_grad:
        return value, None
    assert fw.psi_f is not None
    psi_f = fw.psi_f
    if not (isinstance(fw.grad_scale, float) and fw.grad_scale == 1.0):
        psi_f = psi_f * fw.grad_scale  # (the generated kernel folds it in: no pass then)
    grad = _reduce.sum_to_shape(np, psi_f, tuple(p.shape))
    if out is not None:
        np.copyto(out, grad, casting="same_kind")
        return value, out
    return value, np.asarray(grad).astype(p.dtype, copy=False)


def _check_out(out: Any, p: Any, prep: Any) -> None:
    """``out=``: a writeable ndarray of the prediction's shape and dtype, not overlapping an
    input (it is written while they are read)."""
    if not isinstance(out, np.ndarray) or isinstance(out, np.matrix):
        raise TypeError(
            f"out must be a numpy.ndarray, got {type(out).__name__}; pass np.empty_like(prediction)"
        )
    if out.shape != p.shape or out.dtype != p.dtype:
        raise ValueError(
            f"out has shape {out.shape} and dtype {out.dtype}, but the gradient has the "
            f"prediction's shape {p.shape} and dtype {p.dtype}; pass np.empty_like(prediction)"
        )
    if not out.flags.writeable:
        raise ValueError("out is read-only; pass a writeable array (np.empty_like(prediction))")
    for name, x in (("prediction", p), ("target", prep.target), ("weight", prep.weight)):
        if x is not None and np.may_share_memory(out, x):
            raise ValueError(
                f"out shares memory with {name}; pass a separate buffer (np.empty_like)"
            )


def _into_ok(fn: Loss, prep: Any, out: Any) -> bool:
    """Whether ``_reduce.forward_into`` serves this call (the hot path; see there)."""
    return (
        prep.weight is None
        and prep.keep is None
        and prep.reduction != "none"
        and not prep.upcast
        and out.flags.c_contiguous
        and prep.prediction.shape == prep.target.shape
        and prep.target.dtype == out.dtype
        and not fn.depends_on_position()
    )


def loss(name_or_loss: str | Loss, prediction: Array, target: Array, **kwargs: Any) -> Any:
    """The loss ``name_or_loss`` (a registry name or a Loss) of ``(prediction, target)``.

    ``kwargs`` are the loss's parameters and the shared options below. Returns a NumPy
    scalar (or an array for ``reduction='none'``) in the inputs' float dtype (float32 for
    float16 inputs).
    """
    return _run(name_or_loss, prediction, target, False, **kwargs)[0]


def value_and_grad(
    name_or_loss: str | Loss,
    prediction: Array,
    target: Array,
    *,
    out: np.ndarray | None = None,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """``(loss, d loss / d prediction)``; the gradient has the prediction's shape and dtype.

    With ``reduction='none'`` the gradient is that of ``loss.sum()``. With ``out=`` (a
    writeable array of the prediction's shape and dtype, sharing no memory with an input)
    the gradient is written there and ``out`` itself is returned; with no option set this
    runs blockwise in cache, reading the inputs once and writing ``out`` once.
    """
    return _run(name_or_loss, prediction, target, True, out=out, **kwargs)


loss.__doc__ = (loss.__doc__ or "") + OPTION_DOC
value_and_grad.__doc__ = (value_and_grad.__doc__ or "") + OPTION_DOC


def _value(
    name: str,
    prediction: Array,
    target: Array,
    reduction: str,
    weight: Array | None,
    mask: Array | None,
    nan_policy: str,
    broadcast: bool,
    **params: Any,
) -> Any:
    return _run(
        name, prediction, target, False, reduction, weight, mask, nan_policy, broadcast, **params
    )[0]


@functools.cache
def _function(name: str) -> Callable[..., Any]:
    """A function for a loss registered after this module was generated."""
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


def _nll_value(
    name: str,
    prediction: Array,
    target: Array,
    scale: Array,
    reduction: str,
    weight: Array | None,
    mask: Array | None,
    nan_policy: str,
    broadcast: bool,
    **params: Any,
) -> Any:
    return _run_nll(
        name,
        prediction,
        target,
        scale,
        False,
        reduction,
        weight,
        mask,
        nan_policy,
        broadcast,
        **params,
    )[0]


if not TYPE_CHECKING:  # type checkers see only the generated functions below

    def __getattr__(name: str) -> Callable[..., Any]:
        if name in _REGISTRY:
            return _function(name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_REGISTRY) | set(_NLL_REGISTRY))


# --- generated by scripts/make_frontends.py from the registry: do not edit ---


def mse(
    prediction: ArrayLike,
    target: ArrayLike,
    *,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Any:
    r"""The mse loss of ``(prediction, target)``: Squared error, :math:`\rho(r) = r^2`,
    :math:`\psi(r) = 2r`, :math:`\psi'(r) = 2`.

    See :class:`regloss.losses.SquaredError`.
    """
    return _value(
        "mse",
        prediction,
        target,
        reduction,
        weight,
        mask,
        nan_policy,
        broadcast,
    )


def mae(
    prediction: ArrayLike,
    target: ArrayLike,
    *,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Any:
    r"""The mae loss of ``(prediction, target)``: Absolute error, :math:`\rho(r) = |r|`,
    :math:`\psi(r) = \operatorname{sign}(r)`.

    See :class:`regloss.losses.AbsoluteError`.
    """
    return _value(
        "mae",
        prediction,
        target,
        reduction,
        weight,
        mask,
        nan_policy,
        broadcast,
    )


def huber(
    prediction: ArrayLike,
    target: ArrayLike,
    *,
    delta: float = 1.0,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Any:
    r"""The huber loss of ``(prediction, target)``: Huber loss in PyTorch's convention.

    See :class:`regloss.losses.Huber`.
    """
    return _value(
        "huber", prediction, target, reduction, weight, mask, nan_policy, broadcast, delta=delta
    )


def smooth_l1(
    prediction: ArrayLike,
    target: ArrayLike,
    *,
    beta: float = 1.0,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Any:
    r"""The smooth_l1 loss of ``(prediction, target)``: SmoothL1 in PyTorch's convention:
    ``huber(beta) / beta``.

    See :class:`regloss.losses.SmoothL1`.
    """
    return _value(
        "smooth_l1", prediction, target, reduction, weight, mask, nan_policy, broadcast, beta=beta
    )


def pseudo_huber(
    prediction: ArrayLike,
    target: ArrayLike,
    *,
    delta: float = 1.0,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Any:
    r"""The pseudo_huber loss of ``(prediction, target)``: Pseudo-Huber (Charbonnier):
    :math:`\rho(r) = \delta^2(\sqrt{1 + (r/\delta)^2} - 1)`.

    See :class:`regloss.losses.PseudoHuber`.
    """
    return _value(
        "pseudo_huber",
        prediction,
        target,
        reduction,
        weight,
        mask,
        nan_policy,
        broadcast,
        delta=delta,
    )


def log_cosh(
    prediction: ArrayLike,
    target: ArrayLike,
    *,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Any:
    r"""The log_cosh loss of ``(prediction, target)``: Log-cosh: :math:`\rho(r) = \log\cosh r`,
    :math:`\psi = \tanh r`,     :math:`\psi' = 1 - \tanh^2 r`.

    See :class:`regloss.losses.LogCosh`.
    """
    return _value(
        "log_cosh",
        prediction,
        target,
        reduction,
        weight,
        mask,
        nan_policy,
        broadcast,
    )


def quantile(
    prediction: ArrayLike,
    target: ArrayLike,
    *,
    q: QuantileLevels = 0.5,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Any:
    r"""The quantile loss of ``(prediction, target)``: Quantile (pinball) loss at level q, on r =
    prediction − target.

    See :class:`regloss.losses.Quantile`.
    """
    return _value(
        "quantile", prediction, target, reduction, weight, mask, nan_policy, broadcast, q=q
    )


def cauchy(
    prediction: ArrayLike,
    target: ArrayLike,
    *,
    c: float = 2.385,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Any:
    r"""The cauchy loss of ``(prediction, target)``: Cauchy (Lorentzian): :math:`\rho(r) =
    \tfrac{c^2}{2}\log(1 + (r/c)^2)`.

    See :class:`regloss.losses.Cauchy`.
    """
    return _value("cauchy", prediction, target, reduction, weight, mask, nan_policy, broadcast, c=c)


def geman_mcclure(
    prediction: ArrayLike,
    target: ArrayLike,
    *,
    c: float = 3.787,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Any:
    r"""The geman_mcclure loss of ``(prediction, target)``: Geman-McClure: :math:`\rho(r) =
    \tfrac{c^2}{2}\,\frac{(r/c)^2}{1 + (r/c)^2}`.

    See :class:`regloss.losses.GemanMcClure`.
    """
    return _value(
        "geman_mcclure", prediction, target, reduction, weight, mask, nan_policy, broadcast, c=c
    )


def welsch(
    prediction: ArrayLike,
    target: ArrayLike,
    *,
    c: float = 2.985,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Any:
    r"""The welsch loss of ``(prediction, target)``: Welsch (Leclerc): :math:`\rho(r) =
    \tfrac{c^2}{2}(1 - e^{-(r/c)^2})`.

    See :class:`regloss.losses.Welsch`.
    """
    return _value("welsch", prediction, target, reduction, weight, mask, nan_policy, broadcast, c=c)


def tukey(
    prediction: ArrayLike,
    target: ArrayLike,
    *,
    c: float = 4.685,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Any:
    r"""The tukey loss of ``(prediction, target)``: Tukey's biweight (bisquare).

    See :class:`regloss.losses.Tukey`.
    """
    return _value("tukey", prediction, target, reduction, weight, mask, nan_policy, broadcast, c=c)


def fair(
    prediction: ArrayLike,
    target: ArrayLike,
    *,
    c: float = 1.3998,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Any:
    r"""The fair loss of ``(prediction, target)``: Fair: :math:`\rho(r) = c^2\left(|r|/c - \log(1 +
    |r|/c)\right)`.

    See :class:`regloss.losses.Fair`.
    """
    return _value("fair", prediction, target, reduction, weight, mask, nan_policy, broadcast, c=c)


def barron(
    prediction: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float = 1.0,
    scale: float = 1.0,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Any:
    r"""The barron loss of ``(prediction, target)``: Barron's general robust loss :math:`\rho(r;
    \alpha, c)`.

    See :class:`regloss.losses.Barron`.
    """
    return _value(
        "barron",
        prediction,
        target,
        reduction,
        weight,
        mask,
        nan_policy,
        broadcast,
        alpha=alpha,
        scale=scale,
    )


def gaussian_nll(
    prediction: ArrayLike,
    target: ArrayLike,
    var: ArrayLike,
    *,
    log_var: bool = False,
    eps: float = 1e-06,
    full: bool = False,
    beta: float = 0.0,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Any:
    r"""The gaussian_nll loss of ``(prediction, target, var)``: Gaussian negative log-likelihood
    with predicted variance :math:`v = \sigma^2`.

    See :class:`regloss.losses.GaussianNLL`.
    """
    return _nll_value(
        "gaussian_nll",
        prediction,
        target,
        var,
        reduction,
        weight,
        mask,
        nan_policy,
        broadcast,
        log_var=log_var,
        eps=eps,
        full=full,
        beta=beta,
    )


def laplace_nll(
    prediction: ArrayLike,
    target: ArrayLike,
    scale: ArrayLike,
    *,
    log_scale: bool = False,
    eps: float = 1e-06,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Any:
    r"""The laplace_nll loss of ``(prediction, target, scale)``: Laplace negative log-likelihood
    with predicted scale b:     :math:`\ell(r, b) = \log(2b) + |r|/b`.

    See :class:`regloss.losses.LaplaceNLL`.
    """
    return _nll_value(
        "laplace_nll",
        prediction,
        target,
        scale,
        reduction,
        weight,
        mask,
        nan_policy,
        broadcast,
        log_scale=log_scale,
        eps=eps,
    )


# --- end of generated code ---
