"""regloss: regression losses defined once, with exact gradients and strict inputs.

Each loss is defined once as rho/psi/psi_prime on the residual ``prediction - target``
(:mod:`regloss.losses`) and served to NumPy (:mod:`regloss.numpy`), PyTorch
(:mod:`regloss.torch`) and JAX (:mod:`regloss.jax`). The framework front-ends are
imported lazily; ``import regloss`` needs only NumPy.

Examples
--------
>>> import regloss
>>> regloss.available_losses()[:4]
['mse', 'mae', 'huber', 'smooth_l1']
>>> regloss.get_loss("huber", delta=1.345)
huber(delta=1.345)
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .losses import Loss, available_losses, available_nll_losses, get_loss, get_nll_loss, register
from .stats import LossProperties, breakdown_point, efficiency, properties, tuning_constant

__all__ = [
    "Loss",
    "LossProperties",
    "__version__",
    "available_losses",
    "available_nll_losses",
    "breakdown_point",
    "check_gradients",
    "efficiency",
    "get_loss",
    "get_nll_loss",
    "properties",
    "register",
    "tuning_constant",
]


def check_gradients(loss: Any, **params: Any) -> Any:
    """Compare analytic derivatives with autodiff and finite differences; see
    :func:`regloss.gradcheck.check_gradients`."""
    from .gradcheck import check_gradients as _check

    return _check(loss, **params)
