"""``reduction='global_mean'``: the mean over every rank's elements under torch.distributed.

DistributedDataParallel averages the ranks' gradients. With ``reduction='mean'`` each rank
divides by its own count, so a rank with fewer valid elements (an uneven last batch, a
mask, missing labels under ``nan_policy='omit'``) weighs each of its elements more than the
others do: the update is not the gradient of the mean over the whole batch. With
``'global_mean'`` each rank returns its local weighted sum times ``W / C``, where ``C`` is
Σ weight × kept element over all ranks (one scalar ``all_reduce`` a step, no host
synchronisation) and ``W`` the world size; after DDP's averaging the parameters' gradients
are those of one process computing ``'mean'`` on the concatenated batch.

It is a reduction (``regloss._reduction.GLOBAL_MEAN``): every route computes the local
sum, and the carrier (or the composition) multiplies value and gradient by the factor
:func:`global_factor` returns. Without an initialised process group ``'global_mean'`` is
``'mean'``. The returned value on one rank is its share (local sum × W / C); the global
loss is its average over the ranks, ``torch.distributed.all_reduce(loss.detach(),
op=ReduceOp.AVG)`` for logging. ``C`` is a constant of the step: weights that require
grad get the gradient of the numerator only.
"""

from __future__ import annotations

import torch

from .._validate import Prepared

__all__ = ["global_factor", "initialised"]


def initialised() -> bool:
    """Whether a default process group is up (``torch.distributed`` available and
    initialised)."""
    dist = torch.distributed
    return bool(dist.is_available() and dist.is_initialized())


def local_count(prep: Prepared) -> torch.Tensor:
    """Σ weight × kept element of this rank, a float64 0-d tensor on the input's device,
    made without reading anything back to the host (from shapes and tensor operations)."""
    p = prep.inputs[0]
    if prep.weight is None and prep.keep is None:
        n = 1
        for s in prep.shape:
            n *= s
        return torch.full((), float(n), dtype=torch.float64, device=p.device)
    f = torch.ones(prep.shape, dtype=torch.float64, device=p.device)
    if prep.weight is not None:
        f = f * prep.weight.detach().double()
    if prep.keep is not None:
        f = f * prep.keep
    return f.sum()


def global_factor(prep: Prepared) -> torch.Tensor:
    """W / C: the world size over the all-reduced count (0 where nothing is kept on any
    rank, as 'mean' gives when everything is masked)."""
    count = local_count(prep)
    torch.distributed.all_reduce(count)  # SUM over the default group
    world = torch.distributed.get_world_size()
    return torch.where(count > 0, world / count, 0.0)
