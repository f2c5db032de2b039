"""regloss's fused forward as a ``torch.library`` custom op, for torch.compile.

Inside a compiled graph a loss without options is one opaque op, ``regloss::loss_forward``,
whose eager implementation runs regloss's fastest path at run time (the generated C
kernel on the CPU, the generated Triton kernel on CUDA; the eager composition otherwise)
and returns the loss and ψ·scale together. Its fake implementation gives the output shapes
and dtypes without touching data, so Dynamo and AOTAutograd trace it with
``fullgraph=True`` on any device; its backward is one multiplication by the saved ψ·scale,
and under ``create_graph=True`` the gradient is rebuilt from ``_Psi`` (analytic ψ′), as in
eager mode. Eager calls never go through the op (it costs a dispatcher round trip); they
keep ``_LossFunction``.

Loss objects are not op arguments: the op takes the loss's repr (``cauchy(c=2.385)``), from
which :func:`_loss` rebuilds it once per process (a traced registration would run only after
the graph, too late for its first call).
"""

from __future__ import annotations

from typing import Any

import torch

from .. import _reduce
from .._validate import Prepared, prepare
from ..losses import Loss, get_loss

__all__ = ["loss_forward", "usable"]

_LOSSES: dict[str, Loss] = {}


def key_of(loss: Loss) -> str:
    return repr(loss)


def _loss(key: str) -> Loss:
    """The loss a key names: ``name(p=1.0, q=2.0)`` with float parameters."""
    loss = _LOSSES.get(key)
    if loss is None:
        name, _, rest = key.partition("(")
        params = {}
        for item in filter(None, rest.rstrip(")").split(", ")):
            k, _, v = item.partition("=")
            params[k] = float(v)
        loss = _LOSSES[key] = get_loss(name, **params)
    return loss


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


@torch.library.custom_op("regloss::loss_forward", mutates_args=())
def loss_forward(
    prediction: torch.Tensor, target: torch.Tensor, key: str, reduction: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, ψ(r)·scale) of the registered loss ``key``; no weight, mask or NaN omission."""
    loss = _loss(key)
    prep = prepare(torch, prediction, target, reduction=reduction)
    fw = _reduce.forward(loss, torch, prep, need_psi=True)
    assert fw.psi_f is not None
    value = fw.total * fw.value_scale
    scale = fw.grad_scale
    grad = fw.psi_f if isinstance(scale, float) and scale == 1.0 else fw.psi_f * scale
    dtype = _compute_dtype(prediction)
    return torch.as_tensor(value, dtype=dtype), grad.to(dtype).contiguous()


@loss_forward.register_fake
def _(
    prediction: torch.Tensor, target: torch.Tensor, key: str, reduction: str
) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = _compute_dtype(prediction)
    shape = prediction.shape if reduction == "none" else ()
    return (
        prediction.new_empty(shape, dtype=dtype),
        prediction.new_empty(prediction.shape, dtype=dtype),
    )


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    prediction, target, key, reduction = inputs
    ctx.save_for_backward(prediction, target, output[1])
    ctx.key, ctx.reduction = key, reduction


def _backward(ctx: Any, g_value: torch.Tensor, _g_grad: Any) -> tuple[Any, ...]:
    prediction, target, grad = ctx.saved_tensors
    if torch.is_grad_enabled():  # create_graph=True: differentiable, analytic psi'
        from ._autograd import _psi

        loss = _loss(ctx.key)
        prep = Prepared(
            prediction, target, tuple(prediction.shape), None, None, ctx.reduction, False
        )
        psi_f, scale = _reduce.psi_factor(torch, prep, lambda r: _psi(r, loss))
        grad = psi_f * scale
    g = grad * g_value
    needs = ctx.needs_input_grad
    gp = g.to(prediction.dtype) if needs[0] else None
    gt = (-g).to(target.dtype) if needs[1] else None
    return gp, gt, None, None


loss_forward.register_autograd(_backward, setup_context=_setup_context)


def usable(loss: Loss, prep: Prepared) -> bool:
    """Whether a traced call can be the custom op: a registered loss with float parameters
    that does not depend on the element's position, no weight, mask or NaN omission, and
    prediction and target of one shape and dtype (the op sees no broadcasting)."""
    from .._kernels import _registered

    p, t = prep.prediction, prep.target
    return (
        type(loss) in _registered()
        and not loss.depends_on_position()
        and prep.weight is None
        and prep.keep is None
        and tuple(p.shape) == tuple(t.shape) == tuple(prep.shape)
        and p.dtype == t.dtype
        and all(not isinstance(getattr(loss, k), torch.Tensor) for k in type(loss).param_names)
    )
