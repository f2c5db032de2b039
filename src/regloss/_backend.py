"""The one contract every backend implements.

A backend (the eager composition, :mod:`regloss._eager`; the generated C kernels,
:mod:`regloss._kernels.cpu`; the generated Triton kernels, :mod:`regloss._kernels.gpu`)
evaluates a form (:mod:`regloss.losses._form`) on checked inputs
(:class:`~regloss._validate.Prepared`) and answers a :class:`Result`: the reduced value
and, when asked, one gradient buffer per argument of the form,
:math:`f\\,\\partial\\ell/\\partial a_j` with ``f`` = weight × mask. An input's gradient
is ± one of them (the form's ``feeds``) times ``grad_output * grad_scale``, summed back to
the input's shape where it was broadcast. A backend may decline at run time (return None)
only for the weights' values, which the eager path then checks, rescales or rejects.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._namespace import astype, promoted_dtype
from ._typing import Array
from ._validate import Prepared, check_weight_values

__all__ = ["Result", "compute_dtype", "factor"]


class Result(NamedTuple):
    """A backend's answer: the loss is ``total * value_scale``; the gradient of argument
    j is ``grads[j] * grad_output * grad_scale``.

    The scales are kept apart from the arrays so that a front-end applies each with one
    multiplication of its choice (PyTorch: by a cached 0-d tensor, cheaper there than a
    Python float); a kernel that folds the scale in returns 1.0.
    """

    #: Σ f·value (unscaled) for a reduction, the elementwise f·value for 'none'
    total: Array
    #: per argument: f · d value / d argument, or None where not requested (for a form
    #: with a linear gradient, ``Form.slope``: the argument itself)
    grads: tuple[Array | None, ...]
    #: 1 for 'none'/'sum', 1/Σf for 'mean', D/Σf for 'batchmean' (float or 0-d array)
    value_scale: Any
    #: value_scale, times the slope of a linear gradient
    grad_scale: Any

    @property
    def value(self) -> Array:
        """The loss: ``total * value_scale``."""
        s = self.value_scale
        return self.total if isinstance(s, float) and s == 1.0 else self.total * s


def compute_dtype(xp: Any, prep: Prepared) -> Any:
    """float32 for half-precision inputs, otherwise the promoted prediction/target dtype."""
    if prep.upcast:
        return xp.float32
    return promoted_dtype(xp, prep.inputs[0], prep.inputs[1])


def factor(xp: Any, prep: Prepared, dtype: Any) -> Array | None:
    """weight × mask in ``dtype`` (None for neither): the one eager entry of the weights,
    whose value check runs here where ``prepare`` left it to a kernel."""
    check_weight_values(xp, prep, dtype)
    f = prep.weight
    if f is not None and prep.reduction.rescales_weights:
        # A weighted mean does not change when the weights are rescaled; dividing by the
        # largest (before any cast to a narrower compute dtype) keeps sum(w) and 1/sum(w)
        # finite for tiny (subnormal) or huge weights.
        top = xp.max(f)
        f = f / xp.where(top > 0, top, 1.0)
    if f is not None:
        f = astype(f, dtype)
    if prep.keep is not None:
        k = astype(prep.keep, dtype)
        f = k if f is None else f * k
    return f
