"""Framework-free loss definitions and the registry that names them.

Adding a loss is one class in this package: subclass :class:`Loss`, give it ``rho``,
``psi`` and ``psi_prime``, decorate it with ``@register("name")``, and every front-end,
the gradient checker, the CLI and the registry-wide tests pick it up.
"""

# isort: off
# Import order is registration order, which is the order every listing shows.
from ._base import Loss, available_losses, get_loss, register, resolve
from ._basic import AbsoluteError, Huber, SmoothL1, SquaredError
from ._robust import Cauchy, Fair, GemanMcClure, LogCosh, PseudoHuber, Quantile, Tukey, Welsch
from ._barron import Barron
from ._nll import GaussianNLL, LaplaceNLL, NLLLoss, available_nll_losses, get_nll_loss
# isort: on

__all__ = [
    "AbsoluteError",
    "Barron",
    "Cauchy",
    "Fair",
    "GaussianNLL",
    "GemanMcClure",
    "Huber",
    "LaplaceNLL",
    "LogCosh",
    "Loss",
    "NLLLoss",
    "PseudoHuber",
    "Quantile",
    "SmoothL1",
    "SquaredError",
    "Tukey",
    "Welsch",
    "available_losses",
    "available_nll_losses",
    "get_loss",
    "get_nll_loss",
    "register",
    "resolve",
]
