"""Framework-free loss definitions and the registry that names them.

Adding a loss is one class in this package: subclass :class:`Loss`, give it ``rho``,
``psi`` and ``psi_prime``, decorate it with ``@register("name")``, and every front-end,
the gradient checker, the CLI and the registry-wide tests pick it up.
"""

# isort: off
# Import order is registration order, which is the order every listing shows.
from ._base import (
    Definition,
    Loss,
    PairLoss,
    available_losses,
    get_definition,
    get_loss,
    register,
    registered,
    resolve,
    resolve_definition,
    unregister,
)
from ._basic import AbsoluteError, Huber, SmoothL1, SquaredError
from ._robust import Cauchy, Fair, GemanMcClure, LogCosh, PseudoHuber, Quantile, Tukey, Welsch
from ._barron import Barron, general_rho, log_partition
from ._nll import GaussianNLL, LaplaceNLL, NLLLoss, available_nll_losses, get_nll_loss
from ._nll import registered_nll, resolve_nll
from ._form import AutodiffForm, Form, NLLForm, PairForm, ResidualForm, form_of
# isort: on

__all__ = [
    "AbsoluteError",
    "AutodiffForm",
    "Barron",
    "Cauchy",
    "Definition",
    "Fair",
    "Form",
    "GaussianNLL",
    "GemanMcClure",
    "Huber",
    "LaplaceNLL",
    "LogCosh",
    "Loss",
    "NLLForm",
    "NLLLoss",
    "PairForm",
    "PairLoss",
    "PseudoHuber",
    "Quantile",
    "ResidualForm",
    "SmoothL1",
    "SquaredError",
    "Tukey",
    "Welsch",
    "available_losses",
    "available_nll_losses",
    "form_of",
    "general_rho",
    "get_definition",
    "get_loss",
    "get_nll_loss",
    "log_partition",
    "register",
    "registered",
    "registered_nll",
    "resolve",
    "resolve_definition",
    "resolve_nll",
    "unregister",
]
