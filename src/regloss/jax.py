"""JAX front-end: every registered loss as a function with analytic derivatives.

Each loss's elementwise ``rho`` is wrapped in :func:`jax.custom_jvp` whose tangent is the
loss's ``psi``, itself a ``custom_jvp`` whose tangent is ``psi_prime``; reductions,
weights and masks are the shared :mod:`regloss._reduce` code on ``jax.numpy``. So
``jax.grad`` gives the analytic gradient, ``jax.hessian`` the analytic second derivative,
and everything works under ``jit`` and ``vmap``.

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

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._optional import missing

try:
    import jax
    import jax.numpy as jnp
except ImportError:
    raise missing("jax", "regloss.jax") from None  # one line naming the extra

from . import _reduce
from ._frontend import OPTION_DOC, loss_signature_params
from ._typing import Array, NanPolicy, QuantileLevels, Reduction
from ._validate import check_scale_input, prepare
from .losses import Loss, available_losses, resolve
from .losses._base import _REGISTRY, AutodiffForm
from .losses._nll import (
    _NLL_REGISTRY,
    LogForm,
    NLLLoss,
    available_nll_losses,
    in_form,
    resolve_nll,
)

__all__ = ["loss", "nll", "psi", "rho", *available_losses(), *available_nll_losses()]


@functools.lru_cache(maxsize=128)  # bounded: an annealed parameter makes a new spec per value
def _elementwise(spec: Loss) -> tuple[Callable[[Array], Array], Callable[[Array], Array]]:
    """``(rho, psi)`` of ``spec`` with analytic JVPs (psi, then psi_prime)."""

    @jax.custom_jvp
    def psi_fn(r: Array) -> Array:
        return spec.psi(r)

    @psi_fn.defjvp
    def _psi_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
        (r,), (dr,) = primals, tangents
        return psi_fn(r), spec.psi_prime(r) * dr

    @jax.custom_jvp
    def rho_fn(r: Array) -> Array:
        return spec.rho(r)

    @rho_fn.defjvp
    def _rho_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
        (r,), (dr,) = primals, tangents
        return rho_fn(r), psi_fn(r) * dr

    return rho_fn, psi_fn


@dataclasses.dataclass(frozen=True)
class _Differentiable(Loss):
    """A loss whose rho carries the analytic custom_jvp (for the shared reductions)."""

    spec: Loss = dataclasses.field(default_factory=Loss)

    def rho(self, r: Array) -> Array:
        return _elementwise(self.spec)[0](r)

    def psi(self, r: Array) -> Array:
        return _elementwise(self.spec)[1](r)

    def psi_prime(self, r: Array) -> Array:
        return self.spec.psi_prime(r)


def _prepare(
    prediction: Array,
    target: Array,
    reduction: str,
    weight: Array | None,
    mask: Array | None,
    nan_policy: str,
    broadcast: bool,
) -> Any:
    """The checked inputs, as JAX arrays."""
    return prepare(
        jnp,
        jnp.asarray(prediction),
        jnp.asarray(target),
        reduction=reduction,
        weight=None if weight is None else jnp.asarray(weight),
        mask=None if mask is None else jnp.asarray(mask),
        nan_policy=nan_policy,
        broadcast=broadcast,
    )


def rho(name_or_loss: str | Loss, r: Array, **params: Any) -> Array:
    """Elementwise loss of residuals ``r`` with the analytic custom JVP (parameters may be
    traced: then JAX differentiates the overflow-safe formula)."""
    traced = _traced_spec(name_or_loss, params)
    if traced is not None:
        return traced.rho(r)
    return _elementwise(resolve(name_or_loss, params))[0](r)


def psi(name_or_loss: str | Loss, r: Array, **params: Any) -> Array:
    """Elementwise derivative of the loss, itself with the analytic custom JVP (with traced
    parameters: the JVP of rho's formula)."""
    traced = _traced_spec(name_or_loss, params)
    if traced is not None:
        r = jnp.asarray(r)
        return jax.jvp(traced.rho, (r,), (jnp.ones_like(r),))[1]
    return _elementwise(resolve(name_or_loss, params))[1](r)


def loss(
    name_or_loss: str | Loss,
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
    prep = _prepare(prediction, target, reduction, weight, mask, nan_policy, broadcast)
    traced = _traced_spec(name_or_loss, params)
    if traced is not None:
        return _reduce.forward(AutodiffForm(traced), jnp, prep, need_psi=False).value
    spec = resolve(name_or_loss, params)
    return _reduce.forward(_Differentiable(spec=spec), jnp, prep, need_psi=False).value


def _traced_spec(name_or_loss: str | Loss, params: dict[str, Any]) -> Loss | None:
    """The loss when some parameters are JAX arrays or tracers (None otherwise): its
    concrete parameters checked as usual, the traced ones set as they are (their values
    cannot be inspected under tracing)."""
    traced = {k: v for k, v in params.items() if isinstance(v, (jax.Array, jax.core.Tracer))}
    if not traced or not isinstance(name_or_loss, str):
        return None
    return _with_traced(name_or_loss, params, traced)


def _with_traced(name: str, params: dict[str, Any], traced: dict[str, Any]) -> Loss:
    concrete = {k: v for k, v in params.items() if k not in traced}
    spec = resolve(name, concrete)
    for key in traced:
        if key not in spec.params:
            resolve(name, {key: 1.0})  # raises the usual unknown-parameter TypeError
    out = object.__new__(type(spec))
    for key, value in {**spec.params, **traced}.items():
        object.__setattr__(out, key, value)
    return out


loss.__doc__ = (loss.__doc__ or "") + OPTION_DOC


@functools.cache
def _function(name: str) -> Callable[..., Array]:
    """A function for a loss registered after this module was generated."""
    cls = _REGISTRY[name]

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


@functools.lru_cache(maxsize=128)
def _nll_elementwise(spec: NLLLoss | LogForm) -> Callable[[Array, Array], Array]:
    """value(r, v) with tangent from ``grad``, whose own tangent is ``hess``."""

    @jax.custom_jvp
    def grad_fn(r: Array, v: Array) -> tuple[Array, Array]:
        return spec.grad(r, v)

    @grad_fn.defjvp
    def _grad_jvp(primals: tuple[Array, Array], tangents: tuple[Array, Array]) -> Any:
        (r, v), (dr, dv) = primals, tangents
        h_rr, h_rv, h_vv = spec.hess(r, v)
        return grad_fn(r, v), (h_rr * dr + h_rv * dv, h_rv * dr + h_vv * dv)

    @jax.custom_jvp
    def value_fn(r: Array, v: Array) -> Array:
        return spec.value(r, v)

    @value_fn.defjvp
    def _value_jvp(primals: tuple[Array, Array], tangents: tuple[Array, Array]) -> Any:
        (r, v), (dr, dv) = primals, tangents
        g_r, g_v = grad_fn(r, v)
        return value_fn(r, v), g_r * dr + g_v * dv

    return value_fn


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
    prep = _prepare(prediction, target, reduction, weight, mask, nan_policy, broadcast)
    sc = check_scale_input(
        jnp, spec.scale_input, jnp.asarray(scale), prep.shape, log_input=log_input
    )
    r, v, f, scale_factor = _reduce.nll_parts(
        jnp, spec, prep, sc, log_input=log_input, differentiable=True
    )
    value = _nll_elementwise(in_form(spec, log_input))(r, jnp.broadcast_to(v, r.shape))
    if f is not None:
        value = value * f
    if prep.reduction == "none":
        return jnp.broadcast_to(value, prep.shape)
    return jnp.sum(value) * scale_factor


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
        if name in _REGISTRY:
            return _function(name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_REGISTRY) | set(_NLL_REGISTRY))


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
