"""The one autograd path every regloss.torch loss runs through.

``_LossFunction`` evaluates the loss with :func:`regloss._reduce.forward` and keeps
:math:`\\psi(r)\\,f` from the forward pass, so a plain ``backward()`` is one
multiplication. When the backward itself is differentiated (``create_graph=True``,
``gradgradcheck``, Hessian-vector products) it is rebuilt from differentiable pieces:
``_Psi``, whose own backward is the loss's analytic :math:`\\psi'`.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import _reduce
from .._validate import Prepared
from ..losses import Loss

__all__ = ["apply_loss"]


class _Psi(torch.autograd.Function):
    """Elementwise psi(r) whose derivative is the analytic psi_prime(r)."""

    @staticmethod
    def forward(ctx: Any, r: torch.Tensor, loss: Loss) -> torch.Tensor:
        ctx.save_for_backward(r)
        ctx.loss = loss
        return loss.psi(r)  # type: ignore[no-any-return]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (r,) = ctx.saved_tensors
        return grad * ctx.loss.psi_prime(r), None


def _psi(r: torch.Tensor, loss: Loss) -> torch.Tensor:
    return _Psi.apply(r, loss)  # type: ignore[no-untyped-call,no-any-return]


class _LossFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, prediction: torch.Tensor, target: torch.Tensor, loss: Loss, prep: Prepared
    ) -> torch.Tensor:
        need = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        fw = _reduce.forward(loss, torch, prep, need_psi=need)
        if need:
            ctx.save_for_backward(prediction, target)
            ctx.psi_f = fw.psi_f
            ctx.scale = fw.scale
            ctx.loss = loss
            # The inputs travel through saved_tensors (double backward needs them attached
            # to the graph); the rest of the record is kept without them.
            ctx.prep = prep._replace(prediction=None, target=None)
        return fw.value  # type: ignore[no-any-return]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        prediction, target = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph=True: the gradient must itself be differentiable (psi_prime).
            prep = ctx.prep._replace(prediction=prediction, target=target)
            loss = ctx.loss
            psi_f, scale = _reduce.psi_factor(torch, prep, lambda r: _psi(r, loss))
        else:
            psi_f, scale = ctx.psi_f, ctx.scale
        g = (
            psi_f * (grad * scale)
            if isinstance(scale, torch.Tensor) or scale != 1.0
            else psi_f * grad
        )
        gp = gt = None
        if ctx.needs_input_grad[0]:
            gp = _reduce.sum_to_shape(torch, g, tuple(prediction.shape)).to(prediction.dtype)
        if ctx.needs_input_grad[1]:
            gt = _reduce.sum_to_shape(torch, -g, tuple(target.shape)).to(target.dtype)
        return gp, gt, None, None


# Function.apply re-checks its signature with inspect on every call (measured ~2 us, 5% of
# a small-N training step); we call the C++ apply directly unless torch.func transforms
# are active, where the Python wrapper's handling is required.
_fast_apply: Any = super(torch.autograd.Function, _LossFunction).apply


def apply_loss(loss: Loss, prep: Prepared) -> torch.Tensor:
    """Evaluate ``loss`` on checked inputs with regloss's analytic autograd."""
    prediction, target = prep.prediction, prep.target
    if not (prediction.requires_grad or target.requires_grad) or not torch.is_grad_enabled():
        fw = _reduce.forward(loss, torch, prep, need_psi=False)
        return fw.value  # type: ignore[no-any-return]
    device = prediction.device.type
    if torch.is_autocast_enabled(device):
        # The loss runs in float32 (or wider) as in autocast's fp32 policy for losses.
        with torch.autocast(device_type=device, enabled=False):
            return _run(loss, prep)
    return _run(loss, prep)


def _run(loss: Loss, prep: Prepared) -> torch.Tensor:
    if torch._C._are_functorch_transforms_active():
        out = _LossFunction.apply(prep.prediction, prep.target, loss, prep)  # type: ignore[no-untyped-call]
    else:
        out = _fast_apply(prep.prediction, prep.target, loss, prep)
    return out  # type: ignore[no-any-return]
