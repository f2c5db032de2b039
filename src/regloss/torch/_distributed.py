"""``reduction='global_mean'``: the mean over every rank's elements under torch.distributed.

DistributedDataParallel averages the ranks' gradients. With ``reduction='mean'`` each rank
divides by its own count, so a rank with fewer valid elements (an uneven last batch, a
mask, missing labels under ``nan_policy='omit'``) weighs each of its elements more than the
others do: the update is not the gradient of the mean over the whole batch. With
``'global_mean'`` each rank returns its local weighted sum divided by ``C / W``, where ``C``
is Σ weight × kept element over all ranks (one scalar ``all_reduce`` a step, no host
synchronisation) and ``W`` the world size; after DDP's averaging the parameters' gradients
are those of one process computing ``'mean'`` on the concatenated batch.

Without an initialised process group ``'global_mean'`` is ``'mean'``. The returned value on
one rank is its share (local sum × W / C); the global loss is its average over the ranks,
``torch.distributed.all_reduce(loss.detach(), op=ReduceOp.AVG)`` for logging. ``C`` is a
constant of the step: weights that require grad get the gradient of the numerator only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .._validate import _check_mask, _check_weight

__all__ = ["GLOBAL_MEAN", "global_mean", "initialised"]

GLOBAL_MEAN = "global_mean"


def initialised() -> bool:
    """Whether a default process group is up (``torch.distributed`` available and
    initialised)."""
    dist = torch.distributed
    return bool(dist.is_available() and dist.is_initialized())


def global_mean(evaluate: Callable[[str], torch.Tensor], *inputs: Any) -> torch.Tensor:
    """``evaluate('mean')`` alone, or across ranks ``evaluate('sum') * W / C``
    (see the module docstring); ``evaluate`` computes the loss with a given reduction,
    ``inputs`` are :func:`local_count`'s."""
    if not initialised():
        return evaluate("mean")
    total = evaluate("sum")
    count = local_count(*inputs)
    torch.distributed.all_reduce(count)  # SUM over the default group
    # nothing kept anywhere: 0, as 'mean' gives when everything is masked
    factor = torch.where(count > 0, torch.distributed.get_world_size() / count, 0.0)
    return total * factor.to(total.dtype)


def local_count(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: Any,
    mask: Any,
    nan_policy: str,
    broadcast: bool,
) -> torch.Tensor:
    """Σ weight × kept element of this rank, a float64 0-d tensor on the input's device,
    made without reading anything back to the host (the loss call before it has checked
    the inputs' values; this reads only their shapes and dtypes)."""
    shape = tuple(np.broadcast_shapes(input.shape, target.shape) if broadcast else input.shape)
    if weight is None and mask is None and nan_policy != "omit":
        return torch.full((), float(math.prod(shape)), dtype=torch.float64, device=input.device)
    f = torch.ones(shape, dtype=torch.float64, device=input.device)
    if weight is not None:
        f = f * _check_weight(torch, weight, shape, torch.float64, "sum").detach().double()
    if mask is not None:
        f = f * _check_mask(torch, mask, shape)
    if nan_policy == "omit":
        f = f * ~torch.isnan(target)
    return f.sum()
