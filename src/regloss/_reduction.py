"""Reductions as objects, and the options record every entry point passes on.

This is the one module that knows what the reduction names mean; everything else asks a
:class:`Reduction` (its scale, the scale a kernel folds into the gradient, how weights are
rescaled, the reduce itself) instead of comparing strings.

=============  ====================================================================
``none``       :math:`f_i\\,\\rho(r_i)`, the prediction's shape
``sum``        :math:`\\sum_i f_i\\,\\rho(r_i)`
``mean``       :math:`\\sum_i f_i\\,\\rho(r_i) / \\sum_i f_i` (0 when everything is masked)
``batchmean``  ``mean`` × D, D = elements per sample: :math:`\\frac1N\\sum_n\\lVert r_n\\rVert^2`
               for MSE without weights
``global_mean`` regloss.torch: under torch.distributed, each rank's Σ f·ρ × W / C with
               C = Σ f all-reduced over the W ranks (``mean`` without a process group)
=============  ====================================================================

``f`` is weight × mask (1 when absent).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from ._typing import Array

__all__ = [
    "BATCHMEAN",
    "GLOBAL_MEAN",
    "MEAN",
    "NONE",
    "REDUCTIONS",
    "SUM",
    "TORCH_REDUCTIONS",
    "Options",
    "Reduction",
    "check_reduction",
    "get_reduction",
]


class Reduction:
    """How an elementwise loss becomes the returned value.

    Attributes
    ----------
    name : str
        'none', 'sum', 'mean', 'batchmean' or 'global_mean'.
    elementwise : bool
        The value keeps the prediction's shape ('none').
    normalised : bool
        The value is divided by the (weighted) count ('mean', 'batchmean', 'global_mean'):
        weights may be rescaled by their largest without changing it.
    all_reduced : bool
        The count is summed over the ranks of torch.distributed ('global_mean').
    torch_enum : int or None
        ``torch.nn._reduction``'s number for PyTorch's own losses, where it has one.
    """

    def __init__(
        self,
        name: str,
        *,
        elementwise: bool = False,
        normalised: bool = False,
        all_reduced: bool = False,
        per_sample: bool = False,
        torch_enum: int | None = None,
    ) -> None:
        self.name = name
        self.elementwise = elementwise
        self.normalised = normalised
        self.all_reduced = all_reduced
        self.per_sample = per_sample
        self.torch_enum = torch_enum
        #: weights may be divided by their largest first (a normalised mean does not
        #: change, and Σw, 1/Σw stay finite for tiny or huge weights)
        self.rescales_weights = normalised and not all_reduced

    def __repr__(self) -> str:
        return f"Reduction({self.name!r})"

    def __reduce__(self) -> str:  # pickled as the module constant it is
        return _CONSTANT_NAMES[self.name]

    @property
    def local(self) -> Reduction:
        """What one process computes: 'sum' for 'global_mean' (its factor comes after the
        all-reduce), the reduction itself otherwise."""
        return SUM if self.all_reduced else self

    def ratio(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """The unweighted scale as integers ``(num, den)``: 1/N for 'mean', D/N for
        'batchmean' (D elements per sample), 1/1 for the others."""
        if not self.normalised or self.all_reduced:
            return 1, 1
        numel = math.prod(shape)
        return (numel // shape[0] if self.per_sample else 1), numel

    def kernel_scale(self, shape: tuple[int, ...]) -> float:
        """The scale a one-pass kernel folds into ψ as it writes it (num/den, rounded once)."""
        if not self.rescales_weights:
            return 1.0
        num, den = self.ratio(shape)
        return num / den

    def numerator_of(self, shape: tuple[int, ...], numel: int) -> int:
        """``ratio(shape)[0]`` for a shape of ``numel`` elements (known: no product)."""
        return numel // shape[0] if self.per_sample else 1

    def weighted_scale(self, shape: tuple[int, ...], weight_sum: float) -> float:
        """The scale for full-shaped weights summing to ``weight_sum`` (> 0)."""
        if not self.rescales_weights:
            return 1.0
        num, _ = self.ratio(shape)
        return num / weight_sum

    def numerator(self, shape: tuple[int, ...]) -> float:
        """What a weighted kernel divides by Σw to scale the gradient once the sum is known:
        the normalising numerator, or 0 (no scaling) for sums."""
        return float(self.ratio(shape)[0]) if self.rescales_weights else 0.0

    def scale(self, xp: Any, shape: tuple[int, ...], f: Array | None) -> Any:
        """The value's scale given the elementwise factor ``f`` (weight × mask, full-shaped
        or a per-sample (N, 1, ...) view; None for 1): a float, or a 0-d array when it
        depends on f (0 where f sums to 0: everything masked gives 0)."""
        if not self.rescales_weights:
            return 1.0
        per_sample, numel = self.ratio(shape)
        if f is None:
            return per_sample / numel
        den = xp.sum(f) * (numel // math.prod(f.shape))
        positive = den > 0
        return xp.where(positive, per_sample / xp.where(positive, den, 1.0), 0.0)


NONE = Reduction("none", elementwise=True, torch_enum=0)
SUM = Reduction("sum", torch_enum=2)
MEAN = Reduction("mean", normalised=True, torch_enum=1)
BATCHMEAN = Reduction("batchmean", normalised=True, per_sample=True)
GLOBAL_MEAN = Reduction("global_mean", normalised=True, all_reduced=True)

_BY_NAME = {r.name: r for r in (NONE, SUM, MEAN, BATCHMEAN, GLOBAL_MEAN)}
_CONSTANT_NAMES = {"none": "NONE", "sum": "SUM", "mean": "MEAN", "batchmean": "BATCHMEAN"}
_CONSTANT_NAMES["global_mean"] = "GLOBAL_MEAN"

#: the reductions of the NumPy and JAX front-ends and the metrics
REDUCTIONS = ("none", "sum", "mean", "batchmean")
#: regloss.torch's: also the mean over every rank (torch.distributed)
TORCH_REDUCTIONS = (*REDUCTIONS, "global_mean")


def check_reduction(reduction: Any, allowed: tuple[str, ...] = REDUCTIONS) -> str:
    """``reduction`` if it is one of ``allowed`` (:data:`REDUCTIONS`, or regloss.torch's
    :data:`TORCH_REDUCTIONS`)."""
    if isinstance(reduction, str) and reduction in allowed:
        return reduction
    hint = ""
    if reduction == "global_mean":
        hint = (
            "; 'global_mean' (the mean over every rank of torch.distributed) is a "
            "regloss.torch reduction: use 'mean' here"
        )
    raise ValueError(
        f"reduction must be one of {', '.join(map(repr, allowed))}, got {reduction!r}{hint}"
    )


_ALLOWED: dict[tuple[str, ...], dict[str, Reduction]] = {}


def get_reduction(reduction: Any, allowed: tuple[str, ...] = REDUCTIONS) -> Reduction:
    """The :class:`Reduction` named ``reduction`` (checked against ``allowed``); a
    Reduction object is returned as it is."""
    table = _ALLOWED.get(allowed)
    if table is None:
        table = _ALLOWED[allowed] = {name: _BY_NAME[name] for name in allowed}
    found = table.get(reduction) if type(reduction) is str else None
    if found is not None:
        return found
    if isinstance(reduction, Reduction):
        return reduction
    check_reduction(reduction, allowed)
    raise AssertionError("unreachable")  # check_reduction raised


def reduce_sum(xp: Any, value: Array, reduction: Reduction, shape: tuple[int, ...]) -> Array:
    """The reduce itself: Σ over every element, or the elementwise values broadcast to
    ``shape`` for 'none'."""
    if reduction.elementwise:
        return value if tuple(value.shape) == shape else xp.broadcast_to(value, shape)
    return xp.sum(value)


class Options(NamedTuple):
    """The options of one loss call, as one record (the front-ends' keyword arguments)."""

    reduction: Reduction
    weight: Any = None
    mask: Any = None
    nan_policy: str = "propagate"
    broadcast: bool = False

    @property
    def plain(self) -> bool:
        """No weight, mask or NaN omission: the training hot path."""
        return self.weight is None and self.mask is None and self.nan_policy == "propagate"
