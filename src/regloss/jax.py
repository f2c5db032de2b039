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
from typing import Any

try:
    import jax
    import jax.numpy as jnp
except ImportError as exc:  # pragma: no cover - exercised without jax installed
    raise ImportError(
        "regloss.jax needs JAX: pip install 'regloss[jax]' (or install jax yourself)"
    ) from exc

from . import _reduce
from ._frontend import OPTION_DOC, loss_signature_params
from ._typing import Array
from ._validate import check_scale_input, prepare
from .losses import Loss, available_losses, resolve
from .losses._base import _REGISTRY
from .losses._nll import (
    _NLL_REGISTRY,
    LogForm,
    NLLLoss,
    available_nll_losses,
    in_form,
    resolve_nll,
)

__all__ = ["loss", "nll", "psi", "rho", *available_losses(), *available_nll_losses()]


@functools.cache
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
    """Elementwise loss of residuals ``r`` with the analytic custom JVP."""
    return _elementwise(resolve(name_or_loss, params))[0](r)


def psi(name_or_loss: str | Loss, r: Array, **params: Any) -> Array:
    """Elementwise derivative of the loss, itself with the analytic custom JVP."""
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
    """The loss ``name_or_loss`` of ``(prediction, target)`` as a JAX array."""
    spec = resolve(name_or_loss, params)
    prep = _prepare(prediction, target, reduction, weight, mask, nan_policy, broadcast)
    return _reduce.forward(_Differentiable(spec=spec), jnp, prep, need_psi=False).value


loss.__doc__ = (loss.__doc__ or "") + OPTION_DOC


@functools.cache
def _function(name: str) -> Callable[..., Array]:
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


@functools.cache
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


def __getattr__(name: str) -> Callable[..., Array]:
    if name in _NLL_REGISTRY:
        return functools.partial(nll, name)
    if name in _REGISTRY:
        return _function(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_REGISTRY) | set(_NLL_REGISTRY))
