"""NumPy front-end: loss values and analytic gradients.

Every registered loss is a function here under its registry name, with the signature
``name(prediction, target, *, <loss parameters>, reduction='mean', weight=None,
mask=None, nan_policy='propagate', broadcast=False)``.

Which way a call runs (the generated C kernel, eager in blocks, eager) is chosen by one
route table (``regloss/_numpy_routes.py``); :func:`explain` names the route a call would
take and why the rows above it declined, and :func:`use_route` forces one.

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

from ._dispatch import Explanation
from ._frontend import OPTION_DOC, loss_signature_params
from ._numpy_routes import TABLE, evaluate, explain_call, prepare_arrays
from ._reduction import Options, get_reduction
from ._typing import Array, ArrayLike, NanPolicy, QuantileLevels, Reduction
from .losses import (
    Loss,
    PairLoss,
    available_losses,
    available_nll_losses,
    form_of,
    registered,
    registered_nll,
    resolve_definition,
    resolve_nll,
)

__all__ = [
    "explain",
    "loss",
    "nll",
    "nll_value_and_grads",
    "use_route",
    "value_and_grad",
    *available_losses(),
    *available_nll_losses(),
]


def _options(reduction: Any, weight: Any, mask: Any, nan_policy: Any, broadcast: Any) -> Options:
    return Options(get_reduction(reduction), weight, mask, nan_policy, bool(broadcast))


def _run(
    name_or_loss: str | Loss | PairLoss,
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
    form = form_of(resolve_definition(name_or_loss, params))
    options = _options(reduction, weight, mask, nan_policy, broadcast)
    prep = prepare_arrays(prediction, target, options, form)
    if out is not None:
        _check_out(out, prep)
    value, grads = evaluate(form, prep, need_grad, out)
    return value, (grads[0] if need_grad else None)


def _check_out(out: Any, prep: Any) -> None:
    """``out=``: a writeable ndarray of the prediction's shape and dtype, not overlapping an
    input (it is written while they are read)."""
    p = prep.prediction
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


def loss(
    name_or_loss: str | Loss | PairLoss, prediction: Array, target: Array, **kwargs: Any
) -> Any:
    """The loss ``name_or_loss`` (a registry name or a Loss) of ``(prediction, target)``.

    ``kwargs`` are the loss's parameters and the shared options below. Returns a NumPy
    scalar (or an array for ``reduction='none'``) in the inputs' float dtype (float32 for
    float16 inputs).
    """
    return _run(name_or_loss, prediction, target, False, **kwargs)[0]


def value_and_grad(
    name_or_loss: str | Loss | PairLoss,
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


def explain(
    name_or_loss: str | Loss | PairLoss,
    prediction: Array,
    target: Array,
    *,
    grad: bool = True,
    out: np.ndarray | None = None,
    **kwargs: Any,
) -> Explanation:
    """The route a call with these arguments takes (``value_and_grad`` with ``grad=True``,
    ``loss`` with False), and why each row above it declined; ``str()`` of it reads as a
    list. The inputs are checked as the call would check them; nothing is computed.

    Examples
    --------
    >>> import numpy as np
    >>> from regloss import numpy as rnp
    >>> x = np.linspace(-3, 3, 8)
    >>> print(rnp.explain("cauchy", x, np.zeros(8), mask=x > 0))  # doctest: +ELLIPSIS
    numpy: route 'eager' (the first row that applies)
      c_kernel_into: declined: no out= that the kernel can write ...
      eager_into: declined: no out= that can be written blockwise ...
      c_kernel: declined: a mask or nan_policy='omit' (the kernel has no mask)
      eager_blocked: declined: 8 elements, not more than 1048576 (eager_blocks)
    """
    params = {k: v for k, v in kwargs.items() if k not in _OPTION_NAMES}
    form = form_of(resolve_definition(name_or_loss, params))
    options = _options(
        kwargs.get("reduction", "mean"),
        kwargs.get("weight"),
        kwargs.get("mask"),
        kwargs.get("nan_policy", "propagate"),
        kwargs.get("broadcast", False),
    )
    prep = prepare_arrays(prediction, target, options, form)
    return explain_call(form, prep, grad, out)


_OPTION_NAMES = frozenset(("reduction", "weight", "mask", "nan_policy", "broadcast"))


def use_route(name: str) -> Any:
    """A context manager forcing route ``name`` (a row of the NumPy route table:
    'c_kernel_into', 'eager_into', 'c_kernel', 'eager_blocked', 'eager') for the NumPy
    calls inside it; a call the route does not apply to raises
    :class:`regloss.RouteError` with the reason.

    Examples
    --------
    >>> import numpy as np
    >>> from regloss import numpy as rnp
    >>> with rnp.use_route("eager"):
    ...     float(rnp.cauchy(np.array([1.0, 2.0]), np.zeros(2)))
    0.9876
    """
    return TABLE.use(name)


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
    cls = registered()[name]

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
    form = form_of(spec, log_input)
    options = _options(reduction, weight, mask, nan_policy, broadcast)
    prep = prepare_arrays(prediction, target, options, form, scale)
    value, grads = evaluate(form, prep, need_grad, wanted=(0, 2))
    if not need_grad:
        return value, None, None
    return value, grads[0], grads[1]


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
        if name in registered():
            return _function(name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(registered()) | set(registered_nll()))


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
