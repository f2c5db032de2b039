"""The one autograd path every regloss.torch loss runs through.

``_LossFunction`` evaluates the loss with :func:`regloss._reduce.forward` and keeps
:math:`\\psi(r)\\,f` from the forward pass, so a plain ``backward()`` is one
multiplication. When the backward itself is differentiated (``create_graph=True``,
``gradgradcheck``, Hessian-vector products) it is rebuilt from differentiable pieces:
``_Psi``, whose own backward is the loss's analytic :math:`\\psi'`.

This path is the loss's whole cost at small N, so it is written for speed (measured in
``benchmarks/bench_losses.py``): the C++ ``apply`` is called directly, scales multiply as
cached 0-d tensors (a Python float costs an extra tensor wrap per operation), and
nothing is converted or reshaped unless it has to be.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import _reduce
from .._validate import Prepared
from ..losses import Loss
from ..losses._nll import LogForm, NLLLoss, in_form

__all__ = ["apply_loss", "apply_nll"]


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


_CONSTANTS: dict[tuple[float, torch.dtype, torch.device], torch.Tensor] = {}


def _scaled(x: torch.Tensor, scale: Any) -> torch.Tensor:
    """``x * scale`` for a Python float or a 0-d tensor ``scale``."""
    if not isinstance(scale, float):
        return x * scale  # type: ignore[no-any-return]
    if scale == 1.0:
        return x
    key = (scale, x.dtype, x.device)
    c = _CONSTANTS.get(key)
    if c is None:
        if len(_CONSTANTS) > 512:  # distinct batch sizes are few; stay bounded anyway
            _CONSTANTS.clear()
        c = _CONSTANTS[key] = torch.full((), scale, dtype=x.dtype, device=x.device)
    return x * c


class _LossFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, prediction: torch.Tensor, target: torch.Tensor, loss: Loss, prep: Prepared
    ) -> torch.Tensor:
        fw = _reduce.forward(loss, torch, prep, need_psi=True)
        # prep holds the inputs themselves: a double backward differentiates through them.
        ctx.fw = fw
        ctx.prep = prep
        ctx.loss = loss
        return _scaled(fw.total, fw.value_scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        prep = ctx.prep
        if torch.is_grad_enabled():
            # create_graph=True: the gradient must itself be differentiable (psi_prime).
            loss = ctx.loss
            psi_f, scale = _reduce.psi_factor(torch, prep, lambda r: _psi(r, loss))
            g = psi_f * (grad * scale)
        else:
            fw = ctx.fw
            g = fw.psi_f * _scaled(grad, fw.grad_scale)
        prediction, target = prep.prediction, prep.target
        needs = ctx.needs_input_grad
        gp = gt = None
        if needs[0]:
            gp = g if g.shape == prediction.shape else _sum_to(g, prediction)
            if gp.dtype != prediction.dtype:
                gp = gp.to(prediction.dtype)
        if needs[1]:
            gt = -g if g.shape == target.shape else _sum_to(-g, target)
            if gt.dtype != target.dtype:
                gt = gt.to(target.dtype)
        return gp, gt, None, None


def _sum_to(g: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return _reduce.sum_to_shape(torch, g, tuple(like.shape))  # type: ignore[no-any-return]


# Function.apply re-checks its signature with inspect on every call (measured ~2 us, 5% of
# a small-N training step); we call the C++ apply directly unless torch.func transforms
# are active, where the Python wrapper's handling is required.
_fast_apply: Any = super(torch.autograd.Function, _LossFunction).apply


def apply_loss(loss: Loss, prep: Prepared) -> torch.Tensor:
    """Evaluate ``loss`` on checked inputs with regloss's analytic autograd."""
    prediction, target = prep.prediction, prep.target
    if not (prediction.requires_grad or target.requires_grad) or not torch.is_grad_enabled():
        fw = _reduce.forward(loss, torch, prep, need_psi=False)
        return _scaled(fw.total, fw.value_scale)
    if torch._C._is_any_autocast_enabled():
        # The loss runs in float32 (or wider) as in autocast's fp32 policy for losses.
        with torch.autocast(device_type=prediction.device.type, enabled=False):
            return _run(loss, prep)
    return _run(loss, prep)


def _run(loss: Loss, prep: Prepared) -> torch.Tensor:
    if torch._C._are_functorch_transforms_active():
        out = _LossFunction.apply(prep.prediction, prep.target, loss, prep)  # type: ignore[no-untyped-call]
    else:
        out = _fast_apply(prep.prediction, prep.target, loss, prep)
    return out  # type: ignore[no-any-return]


class _NLLGrad(torch.autograd.Function):
    """(d/dr, d/dv) of an NLL loss whose own derivative is the analytic Hessian."""

    @staticmethod
    def forward(ctx: Any, r: torch.Tensor, v: torch.Tensor, nll: NLLLoss | LogForm) -> Any:
        ctx.save_for_backward(r, v)
        ctx.nll = nll
        return nll.grad(r, v)

    @staticmethod
    def backward(ctx: Any, g_r: torch.Tensor, g_v: torch.Tensor) -> tuple[Any, Any, None]:
        r, v = ctx.saved_tensors
        h_rr, h_rv, h_vv = ctx.nll.hess(r, v)
        return g_r * h_rr + g_v * h_rv, g_r * h_rv + g_v * h_vv, None


class _NLLFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        prediction: torch.Tensor,
        target: torch.Tensor,
        scale_input: torch.Tensor,
        nll: NLLLoss,
        prep: Prepared,
        log_input: bool,
    ) -> torch.Tensor:
        fw = _reduce.nll_forward(torch, nll, prep, scale_input, log_input=log_input, need_grad=True)
        ctx.fw, ctx.prep, ctx.nll, ctx.log_input = fw, prep, nll, log_input
        ctx.scale_input = scale_input
        return _scaled(fw.total, fw.value_scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        prep, s = ctx.prep, ctx.scale_input
        if torch.is_grad_enabled():
            # create_graph=True: rebuild from differentiable pieces (Hessian in _NLLGrad).
            r, v, f, scale = _reduce.nll_parts(
                torch, ctx.nll, prep, s, log_input=ctx.log_input, differentiable=True
            )
            fns = in_form(ctx.nll, ctx.log_input)
            d_r, d_v = _NLLGrad.apply(r, v, fns)  # type: ignore[no-untyped-call]
            if f is not None:
                d_r, d_v = d_r * f, d_v * f
            g = grad * scale if prep.reduction != "none" else grad
        else:
            fw = ctx.fw
            d_r, d_v = fw.d_pred, fw.d_scale
            g = _scaled(grad, fw.value_scale)
        gr = d_r * g
        needs = ctx.needs_input_grad
        prediction, target = prep.prediction, prep.target
        gp = _sum_to(gr, prediction).to(prediction.dtype) if needs[0] else None
        gt = _sum_to(-gr, target).to(target.dtype) if needs[1] else None
        gs = None
        if needs[2]:
            gs = _sum_to(torch.broadcast_to(d_v * g, gr.shape), s).to(s.dtype)
        return gp, gt, gs, None, None, None


def apply_nll(
    nll: NLLLoss, prep: Prepared, scale_input: torch.Tensor, log_input: bool
) -> torch.Tensor:
    """Evaluate an NLL loss on checked inputs with regloss's analytic autograd."""
    inputs = (prep.prediction, prep.target, scale_input)
    if not torch.is_grad_enabled() or not any(x.requires_grad for x in inputs):
        fw = _reduce.nll_forward(
            torch, nll, prep, scale_input, log_input=log_input, need_grad=False
        )
        return _scaled(fw.total, fw.value_scale)
    out = _NLLFunction.apply(*inputs, nll, prep, log_input)  # type: ignore[no-untyped-call]
    return out  # type: ignore[no-any-return]
