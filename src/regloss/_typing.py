"""Type aliases shared by the package."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

#: An array of any supported library (NumPy, PyTorch, JAX, or an array-API array).
#: The definitions are library-agnostic, so static typing cannot say more than ``Any``.
Array: TypeAlias = Any
#: What the NumPy front-end accepts: an ndarray or anything ``np.asarray`` takes.
ArrayLike: TypeAlias = Any
Reduction: TypeAlias = Literal["none", "sum", "mean", "batchmean"]
#: regloss.torch adds 'global_mean' (the mean over every rank under torch.distributed)
TorchReduction: TypeAlias = Literal["none", "sum", "mean", "batchmean", "global_mean"]
NanPolicy: TypeAlias = Literal["propagate", "omit", "raise"]
#: Quantile levels: one level in (0, 1), or a sequence/1-d array of levels.
QuantileLevels: TypeAlias = "float | Sequence[float] | Any"

__all__ = ["Array", "ArrayLike", "NanPolicy", "QuantileLevels", "Reduction", "TorchReduction"]
