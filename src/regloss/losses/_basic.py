"""Squared error, absolute error, Huber and SmoothL1: the losses PyTorch ships, defined once."""

from __future__ import annotations

import dataclasses

from .._namespace import namespace
from .._numerics import axpy, vdot
from .._typing import Array
from .._validate import check_scale_param
from ._base import Loss, register

__all__ = ["AbsoluteError", "Huber", "SmoothL1", "SquaredError"]


def _is_zero(beta: object) -> bool:
    """beta == 0 for a Python number; a traced (JAX) beta is taken as positive."""
    return isinstance(beta, float) and beta == 0.0


@register("mse")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class SquaredError(Loss):
    r"""Squared error, :math:`\rho(r) = r^2`, :math:`\psi(r) = 2r`, :math:`\psi'(r) = 2`.

    The maximum-likelihood loss under Gaussian noise. No factor of ½: ``mean`` reduction
    is ``torch.nn.MSELoss`` and ``sklearn.metrics.mean_squared_error``.

    Examples
    --------
    >>> import numpy as np
    >>> SquaredError().rho(np.array([0.5, 0.0, 1.0]))
    array([0.25, 0.  , 1.  ])
    """

    formula = "r^2"
    noise_model = "Gaussian"
    psi_slope = 2.0

    def rho(self, r: Array) -> Array:
        return r * r

    def psi(self, r: Array) -> Array:
        return 2.0 * r

    def psi_prime(self, r: Array) -> Array:
        return namespace(r).ones_like(r) * 2.0

    def rho_sum(self, r: Array, *, overwrite: bool = False) -> Array:
        return vdot(namespace(r), r, r)


@register("mae")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class AbsoluteError(Loss):
    r"""Absolute error, :math:`\rho(r) = |r|`, :math:`\psi(r) = \operatorname{sign}(r)`.

    Notes
    -----
    :math:`\psi(0) = 0` (the subgradient PyTorch and JAX use) and :math:`\psi' = 0`
    everywhere (the Dirac mass at 0 is dropped). The maximum-likelihood loss under
    Laplace noise.
    """

    formula = "|r|"
    noise_model = "Laplace"

    def rho(self, r: Array) -> Array:
        return namespace(r).abs(r)

    def psi(self, r: Array) -> Array:
        return namespace(r).sign(r)

    def weight(self, r: Array) -> Array:
        """IRLS weight 1/|r| (+inf at 0, where psi jumps)."""
        xp = namespace(r)
        a = xp.abs(r)
        return xp.where(a == 0, xp.full_like(r, float("inf")), 1.0 / xp.where(a == 0, 1.0, a))

    def psi_prime(self, r: Array) -> Array:
        return namespace(r).zeros_like(r)

    def breakpoints(self) -> tuple[float, ...]:
        return (0.0,)


@register("huber")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class Huber(Loss):
    r"""Huber loss in PyTorch's convention.

    .. math::

        \rho(r) = \begin{cases} \tfrac12 r^2 & |r| \le \delta \\
                                \delta\,(|r| - \tfrac12\delta) & |r| > \delta \end{cases}
        \qquad \psi(r) = \operatorname{clip}(r, -\delta, \delta)

    Parameters
    ----------
    delta : float, default 1.0
        Where the quadratic turns linear; in [1e-18, 1e18].

    Notes
    -----
    :math:`\rho = a\,(r - a/2)` with :math:`a = \psi(r)`, which is the formula above in one
    expression (and lets ``rho_sum`` reuse :math:`a`). :math:`\psi'(\pm\delta) = 1`
    (the quadratic side), as in PyTorch's backward. ``optax.losses.huber_loss`` uses the
    same convention; ``smooth_l1`` is ``huber / delta``.

    Examples
    --------
    >>> import numpy as np
    >>> Huber(delta=1.0).rho(np.array([0.5, 3.0]))
    array([0.125, 2.5  ])
    """

    delta: float = 1.0

    formula = "r^2/2 if |r| <= delta, else delta (|r| - delta/2)"
    noise_model = "least favourable: Gaussian centre, Laplace tails"
    tuning_parameter = "delta"

    def __post_init__(self) -> None:
        object.__setattr__(self, "delta", check_scale_param("huber", "delta", self.delta))

    def rho(self, r: Array) -> Array:
        a = self.psi(r)
        return a * axpy(namespace(r), -0.5, a, r)

    def psi(self, r: Array) -> Array:
        return namespace(r).clip(r, -self.delta, self.delta)

    def psi_prime(self, r: Array) -> Array:
        xp = namespace(r)
        return xp.where(xp.abs(r) <= self.delta, xp.ones_like(r), xp.zeros_like(r))

    def breakpoints(self) -> tuple[float, ...]:
        return (-self.delta, self.delta)

    def rho_sum(self, r: Array, *, overwrite: bool = False) -> Array:
        return self.rho_sum_and_psi(r, overwrite=overwrite)[0]

    def rho_sum_and_psi(self, r: Array, *, overwrite: bool = False) -> tuple[Array, Array]:
        # rho = a * (r - a/2) summed as one dot product, a = psi(r) reused as the gradient.
        xp = namespace(r)
        a = self.psi(r)
        return vdot(xp, a, axpy(xp, -0.5, a, r, overwrite=overwrite)), a


@register("smooth_l1")
@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class SmoothL1(Loss):
    r"""SmoothL1 in PyTorch's convention: ``huber(beta) / beta``.

    .. math::

        \rho(r) = \begin{cases} \tfrac{r^2}{2\beta} & |r| \le \beta \\
                                |r| - \tfrac12\beta & |r| > \beta \end{cases}
        \qquad \psi(r) = \operatorname{clip}(r / \beta, -1, 1)

    Parameters
    ----------
    beta : float, default 1.0
        Width of the quadratic zone; 0 or in [1e-18, 1e18]. ``beta=0`` is exactly the
        absolute error (no division by zero, no NaN gradient).
    """

    beta: float = 1.0

    formula = "r^2/(2 beta) if |r| <= beta, else |r| - beta/2"
    noise_model = "least favourable: Gaussian centre, Laplace tails"
    tuning_parameter = "beta"

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "beta", check_scale_param("smooth_l1", "beta", self.beta, allow_zero=True)
        )

    def rho(self, r: Array) -> Array:
        xp = namespace(r)
        if _is_zero(self.beta):
            return xp.abs(r)
        a = xp.clip(r, -self.beta, self.beta)
        # (a / beta) first: a * r overflows for large r where the loss itself does not.
        return (a / self.beta) * axpy(xp, -0.5, a, r)

    def psi(self, r: Array) -> Array:
        xp = namespace(r)
        if _is_zero(self.beta):
            return xp.sign(r)
        return xp.clip(r / self.beta, -1.0, 1.0)

    def psi_prime(self, r: Array) -> Array:
        xp = namespace(r)
        if _is_zero(self.beta):
            return xp.zeros_like(r)
        return xp.where(xp.abs(r) <= self.beta, xp.ones_like(r), xp.zeros_like(r)) / self.beta

    def weight(self, r: Array) -> Array:
        if _is_zero(self.beta):
            return AbsoluteError().weight(r)
        return super().weight(r)

    def breakpoints(self) -> tuple[float, ...]:
        return (0.0,) if self.beta == 0.0 else (-self.beta, self.beta)

    def rho_sum_and_psi(self, r: Array, *, overwrite: bool = False) -> tuple[Array, Array]:
        xp = namespace(r)
        if _is_zero(self.beta):
            return xp.sum(xp.abs(r)), xp.sign(r)
        # rho = (a / beta) * (r - a/2) with a = clip(r, -beta, beta); psi = a / beta.
        a = xp.clip(r, -self.beta, self.beta)
        psi = a / self.beta
        return vdot(xp, psi, axpy(xp, -0.5, a, r, overwrite=overwrite)), psi

    def rho_sum(self, r: Array, *, overwrite: bool = False) -> Array:
        return self.rho_sum_and_psi(r, overwrite=overwrite)[0]
