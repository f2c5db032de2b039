"""Negative log-likelihoods with a predicted scale: Gaussian and Laplace.

These take a third input beside prediction and target — the variance (Gaussian; or its
logarithm) or the Laplace scale b — so they are defined as ``value(r, s)`` with first
derivatives ``grad(r, s) = (d/dr, d/ds)`` and second derivatives ``hess(r, s) = (d²/dr²,
d²/dr ds, d²/ds²)``, each written once against the array namespace like :class:`Loss`.
Their registry is separate (``available_nll_losses()``) because their front-ends take
three arrays.

With the scale fixed they are the maximum-likelihood faces of the plain losses: Gaussian
NLL = MSE / (2σ²) + const, Laplace NLL = MAE / b + const (tested).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from .._namespace import namespace
from .._typing import Array
from .._validate import check_loss_param
from ._base import check_parameter_names

__all__ = [
    "GaussianNLL",
    "LaplaceNLL",
    "NLLLoss",
    "available_nll_losses",
    "get_nll_loss",
    "registered_nll",
    "resolve_nll",
]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG2 = math.log(2.0)
_SQRT_HALF = math.sqrt(0.5)


@dataclasses.dataclass(frozen=True)
class NLLLoss:
    """Base of the scale-input losses: ``value``, ``grad`` and ``hess`` of (r, s)."""

    name: ClassVar[str] = ""
    #: What the third input is (shown in errors and docs).
    scale_input: ClassVar[str] = "scale"
    #: One-line formula and noise model, shown by ``regloss losses``.
    formula: ClassVar[str] = ""
    noise_model: ClassVar[str] = ""
    eps: float = 1e-6

    def value(self, r: Array, s: Array) -> Array:
        raise NotImplementedError

    def grad(self, r: Array, s: Array) -> tuple[Array, Array]:
        raise NotImplementedError

    def hess(self, r: Array, s: Array) -> tuple[Array, Array, Array]:
        raise NotImplementedError

    # The same three with the third input given as its logarithm t = log s: derivatives in
    # (r, t), written so that s = e^t is never formed (it overflows float32 past t = 88.7
    # while the loss, about t/2, does not).
    def value_log(self, r: Array, t: Array) -> Array:
        raise NotImplementedError

    def grad_log(self, r: Array, t: Array) -> tuple[Array, Array]:
        raise NotImplementedError

    def hess_log(self, r: Array, t: Array) -> tuple[Array, Array, Array]:
        raise NotImplementedError

    @property
    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"

    def __getstate__(self) -> dict[str, Any]:
        """The fields only: cached forms (and their kernels) stay in their process."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_form")}


@dataclasses.dataclass(frozen=True)
class LogForm:
    """An NLL loss seen through its log-input methods: ``value``/``grad``/``hess`` of
    (r, t = log s), so front-ends treat both inputs alike."""

    base: NLLLoss

    def value(self, r: Array, t: Array) -> Array:
        return self.base.value_log(r, t)

    def grad(self, r: Array, t: Array) -> tuple[Array, Array]:
        return self.base.grad_log(r, t)

    def hess(self, r: Array, t: Array) -> tuple[Array, Array, Array]:
        return self.base.hess_log(r, t)


def in_form(nll: NLLLoss, log_input: bool) -> NLLLoss | LogForm:
    """The functions to evaluate: ``nll`` itself, or its log-input form."""
    return LogForm(nll) if log_input else nll


_NLL_REGISTRY: dict[str, type[NLLLoss]] = {}
N = TypeVar("N", bound=type[NLLLoss])


def _register(name: str) -> Callable[[N], N]:
    def decorate(cls: N) -> N:
        cls.name = name
        _NLL_REGISTRY[name] = cls
        return cls

    return decorate


def registered_nll() -> dict[str, type[NLLLoss]]:
    """Registry name -> class of the NLL losses (a copy)."""
    return dict(_NLL_REGISTRY)


def available_nll_losses() -> list[str]:
    """Names of the registered scale-input (NLL) losses."""
    return list(_NLL_REGISTRY)


def get_nll_loss(name: str, **params: Any) -> NLLLoss:
    """The NLL loss registered as ``name``."""
    try:
        cls = _NLL_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {available_nll_losses()}") from None
    check_parameter_names(name, cls, params)
    return cls(**params)


def resolve_nll(name: str, params: dict[str, Any]) -> tuple[NLLLoss, bool]:
    """``(loss, log_input)`` from a name and keyword arguments, where ``log_var=True`` /
    ``log_scale=True`` (named after the loss's third input) says that input is a log."""
    cls = _NLL_REGISTRY.get(name)
    log_input = bool(params.pop(f"log_{cls.scale_input}", False)) if cls else False
    return get_nll_loss(name, **params), log_input


@_register("gaussian_nll")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class GaussianNLL(NLLLoss):
    r"""Gaussian negative log-likelihood with predicted variance :math:`v = \sigma^2`:

    .. math:: \ell(r, v) = \tfrac12\left(\log v + \frac{r^2}{v}\right)
              \;\left(+\tfrac12\log 2\pi \text{ with } full\right)

    Parameters
    ----------
    full : bool, default False
        Add the constant :math:`\tfrac12\log 2\pi` (as ``torch.nn.GaussianNLLLoss``).
    eps : float, default 1e-6
        Floor on the variance. The value uses :math:`\max(v, \epsilon)`; the gradient with
        respect to v is that at the floored value, passed through even where the floor is
        active (as PyTorch's), so a collapsing variance keeps receiving gradient.
    beta : float, default 0
        β-NLL (Seitzer et al., ICLR 2022): each element is weighted by
        :math:`\operatorname{stop\_grad}(v^\beta)`; β = 0 is the plain NLL, β = 1 gives the
        mean the gradient of MSE.
    """

    full: bool = False
    beta: float = 0.0

    scale_input = "var"
    formula = "(log var + r^2/var)/2 (+ log(2 pi)/2 with full=True)"
    noise_model = "Gaussian with predicted variance"

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps", check_loss_param("gaussian_nll", "eps", self.eps, low=0.0))
        b = check_loss_param("gaussian_nll", "beta", self.beta, low=0.0, allow_low=True)
        if b > 1.0:
            raise ValueError(f"gaussian_nll: parameter beta must be in [0, 1], got {self.beta!r}")
        object.__setattr__(self, "beta", b)
        if not isinstance(self.full, bool):
            raise ValueError(f"gaussian_nll: parameter full must be a bool, got {self.full!r}")

    # q = r / sqrt(v): r²/v = q² without squaring r (which overflows where r²/v need not).
    def value(self, r: Array, v: Array) -> Array:
        xp = namespace(r)
        h = (r / xp.sqrt(v)) * _SQRT_HALF  # q²/2 = h², which fits wherever the loss does
        out = 0.5 * xp.log(v) + h * h
        return out + _HALF_LOG_2PI if self.full else out

    def grad(self, r: Array, v: Array) -> tuple[Array, Array]:
        sv = namespace(r).sqrt(v)
        k = (r / sv) * _SQRT_HALF / sv  # (1 - q²)/(2v) = 1/(2v) - k², no q² formed
        return r / v, 0.5 / v - k * k

    def hess(self, r: Array, v: Array) -> tuple[Array, Array, Array]:
        sv = namespace(r).sqrt(v)
        m = (r / sv) / v  # (q² - 1/2)/v² = m² - 1/(2v²)
        return 1.0 / v, -m / sv, m * m - 0.5 / v / v

    # t = log v; q = r e^{-t/2}, so r²/v = q² with no square of r and no e^t.
    def value_log(self, r: Array, t: Array) -> Array:
        h = r * (_SQRT_HALF * namespace(r).exp(-0.5 * t))
        out = 0.5 * t + h * h
        return out + _HALF_LOG_2PI if self.full else out

    def grad_log(self, r: Array, t: Array) -> tuple[Array, Array]:
        h = namespace(r).exp(-0.5 * t)
        q = r * h
        return q * h, 0.5 * (1.0 - q * q)

    def hess_log(self, r: Array, t: Array) -> tuple[Array, Array, Array]:
        h = namespace(r).exp(-0.5 * t)
        q = r * h
        return h * h, -q * h, 0.5 * q * q


@_register("laplace_nll")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class LaplaceNLL(NLLLoss):
    r"""Laplace negative log-likelihood with predicted scale b:
    :math:`\ell(r, b) = \log(2b) + |r|/b`.

    ``eps`` floors b as ``gaussian_nll`` floors the variance. d/dr = sign(r)/b (0 at
    r = 0, as MAE).
    """

    scale_input = "scale"
    formula = "log(2 scale) + |r|/scale"
    noise_model = "Laplace with predicted scale"

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps", check_loss_param("laplace_nll", "eps", self.eps, low=0.0))

    def value(self, r: Array, b: Array) -> Array:
        xp = namespace(r)
        return _LOG2 + xp.log(b) + xp.abs(r) / b  # log(2b) would overflow at b near max

    def grad(self, r: Array, b: Array) -> tuple[Array, Array]:
        xp = namespace(r)
        return xp.sign(r) / b, (1.0 - xp.abs(r) / b) / b

    def hess(self, r: Array, b: Array) -> tuple[Array, Array, Array]:
        xp = namespace(r)
        return xp.zeros_like(r * b), -xp.sign(r) / (b * b), (2.0 * xp.abs(r) / b - 1.0) / (b * b)

    # t = log b: log 2 + t + |r| e^{-t}.
    def value_log(self, r: Array, t: Array) -> Array:
        xp = namespace(r)
        return _LOG2 + t + xp.abs(r) * xp.exp(-t)

    def grad_log(self, r: Array, t: Array) -> tuple[Array, Array]:
        xp = namespace(r)
        e = xp.exp(-t)
        return xp.sign(r) * e, 1.0 - xp.abs(r) * e

    def hess_log(self, r: Array, t: Array) -> tuple[Array, Array, Array]:
        xp = namespace(r)
        e = xp.exp(-t)
        return xp.zeros_like(r * e), -xp.sign(r) * e, xp.abs(r) * e
