"""The base class every loss derives from, and the registry that names them."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import numpy as np

from .._namespace import namespace
from .._typing import Array

__all__ = [
    "Definition",
    "Loss",
    "PairLoss",
    "available_losses",
    "get_definition",
    "get_loss",
    "register",
    "registered",
    "resolve",
    "resolve_definition",
    "unregister",
]


def _floating(r: Any) -> Any:
    """``r`` as floating point: Python numbers and sequences as float64 arrays, integer or
    boolean arrays cast (float64 in NumPy/JAX, torch's default float dtype in PyTorch)."""
    if isinstance(r, (bool, int, float, list, tuple)):
        return np.asarray(r, dtype=np.float64)
    dtype = getattr(r, "dtype", None)
    kind = getattr(dtype, "kind", None)  # NumPy and JAX dtypes
    if kind is not None:
        return r.astype(np.float64) if kind in "iub" else r
    if dtype is not None and not getattr(dtype, "is_floating_point", True):
        import torch

        return r.to(torch.get_default_dtype())
    return r


def _accepts_integers(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, r: Any, *args: Any, **kwargs: Any) -> Any:
        return method(self, _floating(r), *args, **kwargs)

    return wrapper


@dataclasses.dataclass(frozen=True)
class Loss:
    r"""A regression loss on the residual :math:`r = \hat y - y` (prediction minus target).

    Subclasses are frozen dataclasses whose fields are the tuning parameters (keyword-only,
    validated in ``__post_init__``) and define three elementwise methods, written once
    against the array namespace of their argument so NumPy, PyTorch and JAX share them:

    ``rho(r)``
        the loss :math:`\rho(r)`;
    ``psi(r)``
        its derivative :math:`\psi(r) = \rho'(r)` (the gradient w.r.t. the prediction;
        the target gets :math:`-\psi`);
    ``psi_prime(r)``
        the second derivative :math:`\psi'(r) = \rho''(r)` (double backward, Hessians).

    Every registered loss satisfies :math:`\rho(0) = 0`, :math:`\psi(0) = 0`,
    :math:`\rho \ge 0` and :math:`\rho(-r) = \rho(r)`; masking relies on the first two.
    """

    #: Registry name, set by :func:`register`.
    name: ClassVar[str] = ""
    #: One-line formula shown by ``regloss losses`` (the parametrization, since published
    #: tuning constants depend on it).
    formula: ClassVar[str] = ""
    #: The noise distribution whose maximum-likelihood loss this is, if any.
    noise_model: ClassVar[str | None] = None
    #: The parameter that sets the scale of the loss (tuning constants are for it).
    tuning_parameter: ClassVar[str | None] = None
    #: False for asymmetric losses (quantile): rho(-r) != rho(r).
    symmetric: ClassVar[bool] = True
    #: The tuning parameters' names (set by :func:`register`; read without
    #: ``dataclasses.fields`` so that torch.compile can trace a loss's construction).
    param_names: ClassVar[tuple[str, ...]] = ()
    #: ``k`` when :math:`\psi(r) = k\,r` exactly (squared error); lets the reductions keep
    #: the residual and fold ``k`` into a scalar instead of a pass over the data.
    psi_slope: ClassVar[float | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The elementwise methods take integer input and return floating point (as
        # statsmodels' norms do), in every loss, present or future.
        super().__init_subclass__(**kwargs)
        for name in ("rho", "psi", "psi_prime", "weight"):
            if name in cls.__dict__:
                setattr(cls, name, _accepts_integers(cls.__dict__[name]))

    def rho(self, r: Array) -> Array:
        """Elementwise loss value."""
        raise NotImplementedError

    def psi(self, r: Array) -> Array:
        """Elementwise first derivative of :meth:`rho`."""
        raise NotImplementedError

    def psi_prime(self, r: Array) -> Array:
        """Elementwise second derivative of :meth:`rho` (where it exists)."""
        raise NotImplementedError

    def breakpoints(self) -> tuple[float, ...]:
        """Residuals where the formula changes branch (``|r|``, a clip, a case split).

        Derivative checks stay clear of them; :func:`regloss.properties` tests the continuity
        of psi and psi_prime across them to find the smoothness class.
        """
        return ()

    def depends_on_position(self) -> bool:
        """True when rho differs by position (quantile levels per output): such a loss is
        never evaluated on flattened blocks."""
        return False

    def check_range(self) -> float:
        """Largest |r| the derivative checks sample (a loss that overflows sooner says so)."""
        return 50.0

    @_accepts_integers
    def weight(self, r: Array) -> Array:
        r"""IRLS weight :math:`w(r) = \psi(r) / r`, with its limit :math:`\psi'(0)` at 0.

        Losses whose :math:`\psi` jumps at 0 (absolute error, quantile) override this.
        """
        xp = namespace(r)
        zero = r == 0
        safe = xp.where(zero, xp.ones_like(r), r)
        return xp.where(zero, self.psi_prime(xp.zeros_like(r)), self.psi(safe) / safe)

    def newton_weight(self, r: Array, *, eps: float = 1e-6) -> Array:
        r"""A positive, finite curvature for Newton steps (gradient boosting's Hessian).

        :math:`\psi'` is zero or negative where a loss is kinked or redescends (MAE,
        quantile, Huber's tails, Tukey beyond c), which stalls or breaks Newton boosting.
        regloss uses the IRLS weight :math:`w(r) = \psi(r)/r` instead, for every loss:

        * it equals :math:`\psi'` wherever the loss is quadratic (MSE everywhere, Huber and
          smooth L1 inside their threshold), so squared error is plain Newton;
        * where :math:`\psi(r)/r` is non-increasing in :math:`|r|` (every registered loss but
          Barron with :math:`\alpha > 2` and the asymmetric quantile), the quadratic with
          curvature :math:`w(r)` touching :math:`\rho` at r lies above :math:`\rho` (Huber's
          majorization): a step never increases the loss, and a leaf's Newton value
          :math:`-\sum\psi/\sum w` is a weighted mean of residuals, so it never overshoots;
        * kinked losses (MAE, quantile) take :math:`|r|` at least ``eps`` (their weight is
          infinite at 0): :math:`1/\max(|r|, \epsilon)`, the MM weight of Hunter and Lange;
        * a floor of :math:`10^{-6}\,w(0)` (the smallest normal number when w(0) is
          infinite) keeps redescending tails positive (Tukey beyond c, Welsch far out), and
          the largest finite number caps growing weights (Barron with :math:`\alpha > 2`).
        """
        xp = namespace(r)
        if self.psi_slope is not None:
            return xp.full_like(r, self.psi_slope)
        a = xp.abs(r)
        floor_r = xp.full_like(r, eps)  # in r's dtype (a Python float would promote NumPy's)
        lifted = xp.where(a < eps, xp.where(r < 0, -floor_r, floor_r), r)
        w = self.weight(lifted)
        fi = xp.finfo(r.dtype)
        w = xp.where(xp.isnan(w) & ~xp.isnan(r), math.inf, w)  # inf/inf of a growing psi
        return xp.clip(w, self.newton_floor(float(fi.smallest_normal)), float(fi.max))

    def newton_floor(self, tiny: float) -> float:
        """The least :meth:`newton_weight`: 1e-6 of the weight at 0, or ``tiny`` (the
        dtype's smallest normal number) where that weight is infinite (kinked losses)."""
        w0 = float(np.asarray(self.weight(np.zeros(1)))[0])
        return max(1e-6 * w0, tiny) if 0.0 < w0 < math.inf else tiny

    # Fused forms. Defaults are built from the three methods above; a loss overrides them
    # only to save passes over memory, never to change the mathematics. With
    # ``overwrite=True`` the caller hands over ``r`` as a scratch temporary (the reductions
    # do, for residuals they computed themselves): the override may reuse its memory.
    def rho_sum(self, r: Array, *, overwrite: bool = False) -> Array:
        r""":math:`\sum_i \rho(r_i)` over every element."""
        return namespace(r).sum(self.rho(r))

    def rho_sum_and_psi(self, r: Array, *, overwrite: bool = False) -> tuple[Array, Array]:
        r""":math:`(\sum_i \rho(r_i), \psi(r))` in one go (the forward pass of a training step)."""
        psi = self.psi(r)  # first: rho_sum may reuse r's memory when overwrite=True
        return self.rho_sum(r, overwrite=overwrite), psi

    @property
    def params(self) -> dict[str, Any]:
        """The tuning parameters as a dict."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.name}({args})"

    def __getstate__(self) -> dict[str, Any]:
        """The fields only: the cached form (and its kernels) stays in its process."""
        return _fields_only(self)


def _fields_only(obj: Any) -> dict[str, Any]:
    return {k: v for k, v in obj.__dict__.items() if not k.startswith("_form")}


@dataclasses.dataclass(frozen=True)
class PairLoss:
    r"""A loss of ``(prediction, target)`` that is not a function of their difference.

    Subclasses are frozen dataclasses like :class:`Loss` and define, written once against
    the array namespace of their arguments (``p`` the prediction, ``t`` the target):

    ``value(p, t)``
        the elementwise loss;
    ``grad(p, t)``
        ``(d/dp, d/dt)``;
    ``hess(p, t)``
        ``(d²/dp², d²/dp dt, d²/dt²)``.

    Registered with :func:`register`, such a loss gets every front-end and route of the
    residual losses (values, analytic gradients, double backward, the generated kernels).
    ``neutral`` is a point (p, t) where value and gradient are finite: masked elements are
    evaluated there and then multiplied by 0.
    """

    name: ClassVar[str] = ""
    formula: ClassVar[str] = ""
    noise_model: ClassVar[str | None] = None
    param_names: ClassVar[tuple[str, ...]] = ()
    #: (p, t) where a masked element is evaluated (then multiplied by 0)
    neutral: ClassVar[tuple[float, float]] = (0.0, 0.0)

    def value(self, p: Array, t: Array) -> Array:
        raise NotImplementedError

    def grad(self, p: Array, t: Array) -> tuple[Array, Array]:
        raise NotImplementedError

    def hess(self, p: Array, t: Array) -> tuple[Array, Array, Array]:
        raise NotImplementedError

    def depends_on_position(self) -> bool:
        return False

    @property
    def params(self) -> dict[str, Any]:
        """The tuning parameters as a dict."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.name}({args})"

    def __getstate__(self) -> dict[str, Any]:
        return _fields_only(self)


#: what the registry holds: losses of the residual, and losses of (prediction, target)
Definition = Loss | PairLoss

_REGISTRY: dict[str, type[Loss] | type[PairLoss]] = {}
L = TypeVar("L", bound=type[Loss] | type[PairLoss])


def register(name: str) -> Callable[[L], L]:
    """Class decorator: make a loss available as ``get_loss(name)`` and in every front-end."""

    def decorate(cls: L) -> L:
        if name in _REGISTRY:
            raise RuntimeError(f"a loss named {name!r} is already registered")
        cls.name = name
        cls.param_names = tuple(f.name for f in dataclasses.fields(cls))
        _REGISTRY[name] = cls
        return cls

    return decorate


def unregister(name: str) -> None:
    """Remove the loss registered as ``name`` (tests that register one for a while)."""
    _REGISTRY.pop(name, None)


def registered() -> dict[str, type[Loss] | type[PairLoss]]:
    """Registry name -> class, in registration order (a copy)."""
    return dict(_REGISTRY)


def available_losses() -> list[str]:
    """Names of the registered losses, in registration order.

    The likelihoods with a predicted scale (``gaussian_nll``, ``laplace_nll``) take a third
    input and are listed by :func:`regloss.available_nll_losses`.

    Examples
    --------
    >>> import regloss
    >>> regloss.available_losses()  # doctest: +NORMALIZE_WHITESPACE
    ['mse', 'mae', 'huber', 'smooth_l1', 'pseudo_huber', 'log_cosh', 'quantile', 'cauchy',
     'geman_mcclure', 'welsch', 'tukey', 'fair', 'barron']
    """
    return list(_REGISTRY)


def get_definition(name: str, **params: Any) -> Loss | PairLoss:
    """The loss registered as ``name``, of the residual or of (prediction, target)."""
    if not isinstance(name, str):
        raise TypeError(
            f"loss must be a registered name or a regloss Loss, got {type(name).__name__}; "
            f"choose one of {available_losses()}"
        )
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {available_losses()}") from None
    check_parameter_names(name, cls, params)
    return cls(**params)


def get_loss(name: str, **params: Any) -> Loss:
    """Return the loss registered as ``name`` with keyword-only ``params``.

    Examples
    --------
    >>> import regloss
    >>> regloss.get_loss("huber", delta=2.0)
    huber(delta=2.0)
    """
    return _residual(get_definition(name, **params))


def _residual(spec: Loss | PairLoss) -> Loss:
    if not isinstance(spec, Loss):
        raise TypeError(
            f"{spec.name!r} is a loss of (prediction, target), not of their difference: it "
            "has no rho/psi; use it through the front-ends (regloss.numpy, regloss.torch, "
            "regloss.jax)"
        )
    return spec


def check_parameter_names(name: str, cls: type, params: dict[str, Any]) -> None:
    """TypeError naming the accepted parameters when ``params`` has others."""
    # register() sets param_names on the registered class itself; a subclass reads its
    # fields (not cls.__dict__: torch.compile's Dynamo refuses mapping proxies after it has
    # seen any dict change)
    name_of = getattr(cls, "name", None)
    own = name_of in _REGISTRY and _REGISTRY[name_of] is cls
    accepted = (
        list(getattr(cls, "param_names", ())) if own else [f.name for f in dataclasses.fields(cls)]
    )
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(
            f"loss {name!r} got unexpected parameter(s) {unknown}; "
            f"it accepts {accepted if accepted else 'no parameters'}"
        )


def resolve_definition(
    loss: str | Loss | PairLoss, params: dict[str, Any] | None = None
) -> Loss | PairLoss:
    """A loss of either kind from a name plus parameters, or the loss object itself."""
    if isinstance(loss, (Loss, PairLoss)):
        if params:
            raise TypeError(
                f"parameters {sorted(params)} were given with a Loss object {loss!r}; "
                "set them on the object (regloss.get_loss(name, **params)) instead"
            )
        return loss
    return get_definition(loss, **(params or {}))


def resolve(loss: str | Loss, params: dict[str, Any] | None = None) -> Loss:
    """A :class:`Loss` (of the residual) from a name plus parameters, or the loss object."""
    return _residual(resolve_definition(loss, params))
