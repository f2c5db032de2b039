"""``AdaptiveRobustLoss``: Barron's loss with its shape alpha and scale learned per output.

Minimising the plain loss rho(r/c, alpha) over alpha and c lets the optimiser cheat: a
larger scale and a smaller alpha make every residual look small and the loss falls towards
0 whatever the data. This module minimises the negative log-likelihood of Barron's
distribution instead,

.. math:: -\\log p(r \\mid \\alpha, c) = \\rho(r / c, \\alpha) + \\log c + \\log Z(\\alpha),

where :math:`\\log c` charges for inflating the scale and :math:`\\log Z(\\alpha)` (the
partition function, see :func:`regloss.losses._barron.log_partition`) for flattening the
shape.
"""

from __future__ import annotations

import math

import torch

from .._reduction import MEAN, TORCH_REDUCTIONS, Options, check_reduction, get_reduction
from .._validate import Prepared, prepare
from ..losses import general_rho, log_partition
from ._distributed import global_factor, initialised

__all__ = ["AdaptiveRobustLoss"]


class AdaptiveRobustLoss(torch.nn.Module):
    """Barron's adaptive loss: alpha in ``[alpha_lo, alpha_hi]`` and scale > ``scale_lo``
    learned per output dimension (the last dimension of the residual).

    Parameters
    ----------
    num_dims : int
        Size of the last dimension of prediction and target (one alpha and scale each).
    alpha_lo, alpha_hi : float, default 0.001, 1.999
        Range of alpha, within [0, 4] (the partition function's table).
    alpha_init : float, optional
        Initial alpha (default: the middle of the range).
    scale_lo : float, default 1e-5
        Floor on the scale, which keeps log c finite.
    scale_init : float, default 1.0
        Initial scale.
    reduction : {'mean', 'sum', 'none'}
        Applied to the per-element negative log-likelihood.

    Examples
    --------
    >>> import torch
    >>> crit = AdaptiveRobustLoss(num_dims=2)
    >>> loss = crit(torch.zeros(8, 2), torch.ones(8, 2))
    >>> loss.backward()
    >>> crit.alpha().shape, crit.scale().shape
    (torch.Size([2]), torch.Size([2]))
    """

    def __init__(
        self,
        num_dims: int,
        *,
        alpha_lo: float = 0.001,
        alpha_hi: float = 1.999,
        alpha_init: float | None = None,
        scale_lo: float = 1e-5,
        scale_init: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if not isinstance(num_dims, int) or isinstance(num_dims, bool) or num_dims < 1:
            raise ValueError(f"num_dims must be a positive int, got {num_dims!r}")
        if not 0.0 <= alpha_lo < alpha_hi <= 4.0:
            raise ValueError(
                f"need 0 <= alpha_lo < alpha_hi <= 4 (the tabulated range of log Z), "
                f"got alpha_lo={alpha_lo!r}, alpha_hi={alpha_hi!r}"
            )
        init = 0.5 * (alpha_lo + alpha_hi) if alpha_init is None else alpha_init
        if not alpha_lo < init < alpha_hi:
            raise ValueError(f"alpha_init must lie in ({alpha_lo}, {alpha_hi}), got {init!r}")
        if not (scale_lo > 0 and scale_init > scale_lo):
            raise ValueError(
                f"need 0 < scale_lo < scale_init, got scale_lo={scale_lo!r}, "
                f"scale_init={scale_init!r}"
            )
        self.num_dims = num_dims
        self.alpha_lo, self.alpha_hi, self.scale_lo = alpha_lo, alpha_hi, scale_lo
        self.reduction = check_reduction(reduction, TORCH_REDUCTIONS)
        if get_reduction(self.reduction, TORCH_REDUCTIONS).per_sample:
            raise ValueError(
                "reduction must be 'mean', 'sum', 'global_mean' or 'none', got 'batchmean'"
            )
        frac = (init - alpha_lo) / (alpha_hi - alpha_lo)
        self.latent_alpha = torch.nn.Parameter(
            torch.full((num_dims,), math.log(frac / (1 - frac)), dtype=torch.float64)
        )
        # softplus^-1(scale_init - scale_lo)
        excess = scale_init - scale_lo
        self.latent_scale = torch.nn.Parameter(
            torch.full((num_dims,), excess + math.log(-math.expm1(-excess)), dtype=torch.float64)
        )

    def alpha(self) -> torch.Tensor:
        """The current alpha per dimension."""
        return self.alpha_lo + (self.alpha_hi - self.alpha_lo) * torch.sigmoid(self.latent_alpha)

    def scale(self) -> torch.Tensor:
        """The current scale per dimension."""
        return torch.nn.functional.softplus(self.latent_scale) + self.scale_lo

    def rho(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The plain loss rho(r / c, alpha) elementwise (no likelihood terms)."""
        r = self._residual(input, target)
        alpha, scale = self.alpha().to(r.dtype), self.scale().to(r.dtype)
        out: torch.Tensor = general_rho(torch, r / scale, alpha)
        return out

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of ``input - target`` under the learned distribution."""
        r = self._residual(input, target)
        alpha, scale = self.alpha().to(r.dtype), self.scale().to(r.dtype)
        nll: torch.Tensor = (
            general_rho(torch, r / scale, alpha) + torch.log(scale) + log_partition(alpha)
        )
        red = get_reduction(self.reduction, TORCH_REDUCTIONS)
        if red.elementwise:
            return nll
        if red.all_reduced and initialised():
            # the mean over every rank: local sum x W / the all-reduced count
            prep = Prepared((input, target), tuple(nll.shape), None, None, red, False)
            return nll.sum() * global_factor(prep).to(nll.dtype)
        return nll.mean() if red.normalised else nll.sum()

    def _residual(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        prep = prepare(torch, input, target, Options(MEAN))
        if input.ndim == 0 or input.shape[-1] != self.num_dims:
            raise ValueError(
                f"input has shape {tuple(input.shape)}; its last dimension must be "
                f"num_dims={self.num_dims}"
            )
        dtype = torch.float32 if prep.upcast else torch.promote_types(input.dtype, torch.float32)
        return input.to(dtype) - target.to(dtype)

    def extra_repr(self) -> str:
        return (
            f"num_dims={self.num_dims}, alpha in [{self.alpha_lo}, {self.alpha_hi}], "
            f"scale > {self.scale_lo}, reduction={self.reduction!r}"
        )
