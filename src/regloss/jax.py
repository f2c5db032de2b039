"""JAX front-end: every registered loss as a function with analytic derivatives.

Each loss's elementwise value is wrapped in :func:`jax.custom_jvp` whose tangent is the
form's gradient, itself a ``custom_jvp`` whose tangent is the Hessian; reductions, weights
and masks are the shared eager code on ``jax.numpy``. So ``jax.grad`` gives the analytic
gradient, ``jax.hessian`` the analytic second derivative, and everything works under
``jit`` and ``vmap``. The route table (:data:`TABLE`) has two rows: ``autodiff`` where a
parameter is traced (JAX differentiates the overflow-safe formula, in the parameter too),
``custom_jvp`` otherwise; :func:`explain` names the one a call takes.

Under tracing (``jit``, ``grad``, ``vmap``) the value checks that need concrete data
(negative or non-finite weights, ``nan_policy='raise'``) cannot run: weights are then
trusted and ``nan_policy='raise'`` is refused with an explanation. Shape and dtype checks
always run.

Examples
--------
>>> import jax, jax.numpy as jnp
>>> from regloss import jax as rjax
>>> pred, target = jnp.array([1.5, 2.0, 4.0]), jnp.array([1.0, 2.0, 3.0])
>>> round(float(rjax.mse(pred, target)), 4)
0.4167
>>> [round(float(g), 4) for g in jax.grad(rjax.mse)(pred, target)]
[0.3333, 0.0, 0.6667]
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from ._optional import missing

try:
    import jax
    import jax.numpy as jnp
except ImportError:
    raise missing("jax", "regloss.jax") from None  # one line naming the extra

from . import _eager
from ._backend import compute_dtype, factor
from ._dispatch import Explanation, Route, Table
from ._frontend import OPTION_DOC, loss_signature_params
from ._reduction import Options, get_reduction
from ._typing import Array, NanPolicy, QuantileLevels, Reduction
from ._validate import Prepared, check_scale_input, prepare
from .losses import (
    AutodiffForm,
    Form,
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
    "psi",
    "rho",
    "use_route",
    *available_losses(),
    *available_nll_losses(),
]


@functools.lru_cache(maxsize=128)  # bounded: an annealed parameter makes a new form per value
def _elementwise(form: Form) -> tuple[Callable[..., Array], Callable[..., Any]]:
    """``(value, grad)`` of ``form`` with analytic JVPs (the gradient, then the Hessian)."""

    @jax.custom_jvp
    def grad_fn(*args: Array) -> tuple[Array, ...]:
        return tuple(form.grad(*args))

    @grad_fn.defjvp
    def _grad_jvp(primals: tuple[Array, ...], tangents: tuple[Array, ...]) -> Any:
        h = form.hess(*primals)
        if len(primals) == 1:
            hv: tuple[Array, ...] = (h[0] * tangents[0],)
        else:
            d0, d1 = tangents
            hv = (h[0] * d0 + h[1] * d1, h[1] * d0 + h[2] * d1)
        return grad_fn(*primals), hv

    @jax.custom_jvp
    def value_fn(*args: Array) -> Array:
        return form.value(*args)

    @value_fn.defjvp
    def _value_jvp(primals: tuple[Array, ...], tangents: tuple[Array, ...]) -> Any:
        grads = grad_fn(*primals)
        out = grads[0] * tangents[0]
        for g, t in zip(grads[1:], tangents[1:], strict=True):
            out = out + g * t
        return value_fn(*primals), out

    return value_fn, grad_fn


class Facts(NamedTuple):
    """What a JAX call is: the route table's input."""

    form: Form
    #: a parameter is a JAX array or tracer
    traced_params: bool


def _when_autodiff(f: Facts) -> str | None:
    return None if f.traced_params else "no parameter is a JAX array or tracer"


def _when_custom_jvp(f: Facts) -> str | None:
    return "a traced parameter (autodiff differentiates it)" if f.traced_params else None


def _run_autodiff(form: Form, prep: Prepared) -> Array:
    return _eager.forward(AutodiffForm(form), jnp, prep, False).value


def _run_custom_jvp(form: Form, prep: Prepared) -> Array:
    dtype = compute_dtype(jnp, prep)
    args = _eager.arguments(form, jnp, prep, dtype, differentiable=True)
    if len(args) > 1 and any(tuple(a.shape) != prep.shape for a in args):
        args = tuple(jnp.broadcast_to(a, prep.shape) for a in args)
    value = _elementwise(form)[0](*args)
    f = factor(jnp, prep, dtype)
    if f is not None:
        value = value * f
    red = prep.reduction
    if red.elementwise:
        return jnp.broadcast_to(value, prep.shape)
    scale = red.scale(jnp, prep.shape, f)
    total = jnp.sum(value)
    return total if isinstance(scale, float) and scale == 1.0 else total * scale


TABLE = Table(
    "jax",
    [
        Route(
            "autodiff",
            _when_autodiff,
            _run_autodiff,
            "traced parameters: JAX differentiates the overflow-safe formula",
        ),
        Route(
            "custom_jvp",
            _when_custom_jvp,
            _run_custom_jvp,
            "custom_jvp: analytic gradient and Hessian, reduced by jax.numpy",
        ),
    ],
)


def _prepare(
    form: Form,
    prediction: Array,
    target: Array,
    reduction: str,
    weight: Array | None,
    mask: Array | None,
    nan_policy: str,
    broadcast: bool,
    scale: Any = None,
) -> Prepared:
    """The checked inputs, as JAX arrays (an NLL's scale input appended)."""
    options = Options(
        get_reduction(reduction),
        None if weight is None else jnp.asarray(weight),
        None if mask is None else jnp.asarray(mask),
        nan_policy,
        broadcast,
    )
    prep = prepare(jnp, jnp.asarray(prediction), jnp.asarray(target), options)
    if form.n_inputs == 3:
        name = form.definition.scale_input
        s = check_scale_input(jnp, name, jnp.asarray(scale), prep.shape, log_input=form.log_input)  # type: ignore[attr-defined]
        prep = prep._replace(inputs=(*prep.inputs, s))
    return prep


def _form(name_or_loss: str | Loss | PairLoss, params: dict[str, Any]) -> tuple[Form, bool]:
    """The form of a call, and whether a parameter is traced (then its concrete
    parameters are checked as usual and the traced ones set as they are)."""
    traced = {k: v for k, v in params.items() if isinstance(v, (jax.Array, jax.core.Tracer))}
    if not traced or not isinstance(name_or_loss, str):
        return form_of(resolve_definition(name_or_loss, params)), False
    return form_of(_with_traced(name_or_loss, params, traced)), True


def _with_traced(name: str, params: dict[str, Any], traced: dict[str, Any]) -> Any:
    concrete = {k: v for k, v in params.items() if k not in traced}
    spec = resolve_definition(name, concrete)
    for key in traced:
        if key not in spec.params:
            resolve_definition(name, {key: 1.0})  # raises the usual unknown-parameter TypeError
    out = object.__new__(type(spec))
    for key, value in {**spec.params, **traced}.items():
        object.__setattr__(out, key, value)
    return out


def rho(name_or_loss: str | Loss, r: Array, **params: Any) -> Array:
    """Elementwise loss of residuals ``r`` with the analytic custom JVP (parameters may be
    traced: then JAX differentiates the overflow-safe formula)."""
    form, traced = _form(name_or_loss, params)
    _residual_only(form)
    if traced:
        return form.value(r)
    return _elementwise(form)[0](r)


def psi(name_or_loss: str | Loss, r: Array, **params: Any) -> Array:
    """Elementwise derivative of the loss, itself with the analytic custom JVP (with traced
    parameters: the JVP of rho's formula)."""
    form, traced = _form(name_or_loss, params)
    _residual_only(form)
    if traced:
        r = jnp.asarray(r)
        return jax.jvp(form.value, (r,), (jnp.ones_like(r),))[1]
    return _elementwise(form)[1](r)[0]


def _residual_only(form: Form) -> None:
    if form.kind != "residual":
        raise TypeError(
            f"{form.key} is a loss of (prediction, target), not of the residual: use "
            "regloss.jax.loss(name, prediction, target)"
        )


def loss(
    name_or_loss: str | Loss | PairLoss,
    prediction: Array,
    target: Array,
    *,
    reduction: str = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: str = "propagate",
    broadcast: bool = False,
    **params: Any,
) -> Array:
    """The loss ``name_or_loss`` of ``(prediction, target)`` as a JAX array.

    Parameters may be traced (``jax.jit(rjax.huber)(p, t, delta=d)``, an annealed alpha):
    they are then differentiated by JAX itself through rho's overflow-safe formula (so
    gradients in the parameters exist too) and cannot be range-checked.
    """
    form, traced = _form(name_or_loss, params)
    prep = _prepare(form, prediction, target, reduction, weight, mask, nan_policy, broadcast)
    route = TABLE.choose(Facts(form, traced))
    out: Array = route.run(form, prep)
    return out


loss.__doc__ = (loss.__doc__ or "") + OPTION_DOC


def explain(name_or_loss: str | Loss | PairLoss, **params: Any) -> Explanation:
    """The route a call of ``name_or_loss`` with these parameters takes.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from regloss import jax as rjax
    >>> print(rjax.explain("huber", delta=jnp.asarray(2.0)))
    jax: route 'autodiff' (the first row that applies)
    """
    form, traced = _form(name_or_loss, params)
    return TABLE.explain(Facts(form, traced))


def use_route(name: str) -> Any:
    """A context manager forcing route ``name`` ('autodiff' or 'custom_jvp') for the JAX
    calls inside it."""
    return TABLE.use(name)


@functools.cache
def _function(name: str) -> Callable[..., Array]:
    """A function for a loss registered after this module was generated."""
    cls = registered()[name]

    def fn(prediction: Array, target: Array, **kwargs: Any) -> Array:
        return loss(name, prediction, target, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = __name__
    fn.__doc__ = f"The {name} loss of ``(prediction, target)``.\n\n{cls.__doc__}\n{OPTION_DOC}"
    base = inspect.signature(loss)
    opts = [p for p in base.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    pos = [
        inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for n in ("prediction", "target")
    ]
    fn.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        pos + loss_signature_params(cls) + opts
    )
    return fn


def nll(
    name: str,
    prediction: Array,
    target: Array,
    scale: Array,
    *,
    reduction: str = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: str = "propagate",
    broadcast: bool = False,
    **params: Any,
) -> Array:
    """A negative log-likelihood loss (``gaussian_nll``, ``laplace_nll``) with the predicted
    variance or scale as third input; ``log_var=True``/``log_scale=True`` for its log."""
    spec, log_input = resolve_nll(name, params)
    form = form_of(spec, log_input)
    prep = _prepare(form, prediction, target, reduction, weight, mask, nan_policy, broadcast, scale)
    return _run_custom_jvp(form, prep)


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
) -> Array:
    return nll(
        name,
        prediction,
        target,
        scale,
        reduction=reduction,
        weight=weight,
        mask=mask,
        nan_policy=nan_policy,
        broadcast=broadcast,
        **params,
    )


if not TYPE_CHECKING:  # type checkers see only the generated functions below

    def __getattr__(name: str) -> Callable[..., Array]:
        if name in registered():
            return _function(name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(registered()) | set(registered_nll()))


# --- generated by scripts/make_frontends.py from the registry: do not edit ---


def mse(
    prediction: Array,
    target: Array,
    *,
    reduction: Reduction = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Array:
    r"""The mse loss of ``(prediction, target)``: Squared error, :math:`\rho(r) = r^2`,
    :math:`\psi(r) = 2r`, :math:`\psi'(r) = 2`.

    See :class:`regloss.losses.SquaredError`.
    """
    return loss(
        "mse",
        prediction,
        target,
        reduction=reduction,
        weight=weight,
        mask=mask,
        nan_policy=nan_policy,
        broadcast=broadcast,
    )


def mae(
    prediction: Array,
    target: Array,
    *,
    reduction: Reduction = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Array:
    r"""The mae loss of ``(prediction, target)``: Absolute error, :math:`\rho(r) = |r|`,
    :math:`\psi(r) = \operatorname{sign}(r)`.

    See :class:`regloss.losses.AbsoluteError`.
    """
    return loss(
        "mae",
        prediction,
        target,
        reduction=reduction,
        weight=weight,
        mask=mask,
        nan_policy=nan_policy,
        broadcast=broadcast,
    )


def huber(
    prediction: Array,
    target: Array,
    *,
    delta: float | jax.Array = 1.0,
    reduction: Reduction = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Array:
    r"""The huber loss of ``(prediction, target)``: Huber loss in PyTorch's convention.

    See :class:`regloss.losses.Huber`.
    """
    return loss(
        "huber",
        prediction,
        target,
        reduction=reduction,
        weight=weight,
        mask=mask,
        nan_policy=nan_policy,
        broadcast=broadcast,
        delta=delta,
    )


def smooth_l1(
    prediction: Array,
    target: Array,
    *,
    beta: float | jax.Array = 1.0,
    reduction: Reduction = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Array:
    r"""The smooth_l1 loss of ``(prediction, target)``: SmoothL1 in PyTorch's convention:
    ``huber(beta) / beta``.

    See :class:`regloss.losses.SmoothL1`.
    """
    return loss(
        "smooth_l1",
        prediction,
        target,
        reduction=reduction,
        weight=weight,
        mask=mask,
        nan_policy=nan_policy,
        broadcast=broadcast,
        beta=beta,
    )


def pseudo_huber(
    prediction: Array,
    target: Array,
    *,
    delta: float | jax.Array = 1.0,
    reduction: Reduction = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Array:
    r"""The pseudo_huber loss of ``(prediction, target)``: Pseudo-Huber (Charbonnier):
    :math:`\rho(r) = \delta^2(\sqrt{1 + (r/\delta)^2} - 1)`.

    See :class:`regloss.losses.PseudoHuber`.
    """
    return loss(
        "pseudo_huber",
        prediction,
        target,
        reduction=reduction,
        weight=weight,
        mask=mask,
        nan_policy=nan_policy,
        broadcast=broadcast,
        delta=delta,
    )


def log_cosh(
    prediction: Array,
    target: Array,
    *,
    reduction: Reduction = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Array:
    r"""The log_cosh loss of ``(prediction, target)``: Log-cosh: :math:`\rho(r) = \log\cosh r`,
    :math:`\psi = \tanh r`,     :math:`\psi' = 1 - \tanh^2 r`.

    See :class:`regloss.losses.LogCosh`.
    """
    return loss(
        "log_cosh",
        prediction,
        target,
        reduction=reduction,
        weight=weight,
        mask=mask,
        nan_policy=nan_policy,
        broadcast=broadcast,
    )


def quantile(
    prediction: Array,
    target: Array,
    *,
    q: QuantileLevels | jax.Array = 0.5,
    reduction: Reduction = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Array:
    r"""The quantile loss of ``(prediction, target)``: Quantile (pinball) loss at level q, on r =
    prediction − target.

    See :class:`regloss.losses.Quantile`.
    """
    return loss(
        "quantile",
        prediction,
        target,
        reduction=reduction,
        weight=weight,
        mask=mask,
        nan_policy=nan_policy,
        broadcast=broadcast,
        q=q,
    )


def cauchy(
    prediction: Array,
    target: Array,
    *,
    c: float | jax.Array = 2.385,
    reduction: Reduction = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Array:
    r"""The cauchy loss of ``(prediction, target)``: Cauchy (Lorentzian): :math:`\rho(r) =
    \tfrac{c^2}{2}\log(1 + (r/c)^2)`.

    See :class:`regloss.losses.Cauchy`.
    """
    return loss(
        "cauchy",
        prediction,
        target,
        reduction=reduction,
        weight=weight,
        mask=mask,
        nan_policy=nan_policy,
        broadcast=broadcast,
        c=c,
    )


def geman_mcclure(
    prediction: Array,
    target: Array,
    *,
    c: float | jax.Array = 3.787,
    reduction: Reduction = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Array:
    r"""The geman_mcclure loss of ``(prediction, target)``: Geman-McClure: :math:`\rho(r) =
    \tfrac{c^2}{2}\,\frac{(r/c)^2}{1 + (r/c)^2}`.

    See :class:`regloss.losses.GemanMcClure`.
    """
    return loss(
        "geman_mcclure",
        prediction,
        target,
        reduction=reduction,
        weight=weight,
        mask=mask,
        nan_policy=nan_policy,
        broadcast=broadcast,
        c=c,
    )


def welsch(
    prediction: Array,
    target: Array,
    *,
    c: float | jax.Array = 2.985,
    reduction: Reduction = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Array:
    r"""The welsch loss of ``(prediction, target)``: Welsch (Leclerc): :math:`\rho(r) =
    \tfrac{c^2}{2}(1 - e^{-(r/c)^2})`.

    See :class:`regloss.losses.Welsch`.
    """
    return loss(
        "welsch",
        prediction,
        target,
        reduction=reduction,
        weight=weight,
        mask=mask,
        nan_policy=nan_policy,
        broadcast=broadcast,
        c=c,
    )


def tukey(
    prediction: Array,
    target: Array,
    *,
    c: float | jax.Array = 4.685,
    reduction: Reduction = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Array:
    r"""The tukey loss of ``(prediction, target)``: Tukey's biweight (bisquare).

    See :class:`regloss.losses.Tukey`.
    """
    return loss(
        "tukey",
        prediction,
        target,
        reduction=reduction,
        weight=weight,
        mask=mask,
        nan_policy=nan_policy,
        broadcast=broadcast,
        c=c,
    )


def fair(
    prediction: Array,
    target: Array,
    *,
    c: float | jax.Array = 1.3998,
    reduction: Reduction = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Array:
    r"""The fair loss of ``(prediction, target)``: Fair: :math:`\rho(r) = c^2\left(|r|/c - \log(1 +
    |r|/c)\right)`.

    See :class:`regloss.losses.Fair`.
    """
    return loss(
        "fair",
        prediction,
        target,
        reduction=reduction,
        weight=weight,
        mask=mask,
        nan_policy=nan_policy,
        broadcast=broadcast,
        c=c,
    )


def barron(
    prediction: Array,
    target: Array,
    *,
    alpha: float | jax.Array = 1.0,
    scale: float | jax.Array = 1.0,
    reduction: Reduction = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Array:
    r"""The barron loss of ``(prediction, target)``: Barron's general robust loss :math:`\rho(r;
    \alpha, c)`.

    See :class:`regloss.losses.Barron`.
    """
    return loss(
        "barron",
        prediction,
        target,
        reduction=reduction,
        weight=weight,
        mask=mask,
        nan_policy=nan_policy,
        broadcast=broadcast,
        alpha=alpha,
        scale=scale,
    )


def gaussian_nll(
    prediction: Array,
    target: Array,
    var: Array,
    *,
    log_var: bool = False,
    eps: float = 1e-06,
    full: bool = False,
    beta: float = 0.0,
    reduction: Reduction = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Array:
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
    prediction: Array,
    target: Array,
    scale: Array,
    *,
    log_scale: bool = False,
    eps: float = 1e-06,
    reduction: Reduction = "mean",
    weight: Array | None = None,
    mask: Array | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Array:
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
