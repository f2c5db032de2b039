"""The compile route: a loss call as one ``torch.library`` custom op in compiled graphs.

Inside a graph compiled by torch.compile, a call without weight, mask or NaN omission is
one opaque op, ``regloss::forward(inputs, kind, key, reduction)``, whose eager
implementation runs, at run time, the backend the route table gives the same call outside
compilation (the generated C kernel on the CPU, the generated Triton kernel on CUDA, eager
otherwise) and returns the loss with each argument's gradient times the reduction's scale.
Its fake implementation gives shapes and dtypes without touching data, so Dynamo and
AOTAutograd trace it with ``fullgraph=True`` on any device. Its backward is the carrier's
(``_carrier.py``): the buffers times the incoming gradient, mapped to the inputs by the
form's feeds; under ``create_graph=True`` the gradient is rebuilt from the analytic
Hessian. Eager calls never go through the op (it costs a dispatcher round trip).

Forms are not op arguments: the op takes the form's kind and key (``cauchy(c=2.385)``),
from which :func:`form_of_key` rebuilds it once per process.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

import torch

from .._backend import Result
from .._reduction import get_reduction
from .._validate import Prepared
from ..losses import Form, form_of, get_definition, get_nll_loss
from ._carrier import differentiable_gradient, input_gradients

__all__ = ["form_of_key", "make_op"]

_FORMS: dict[tuple[str, str], Form] = {}


def form_of_key(kind: str, key: str) -> Form:
    """The form a (kind, key) names: ``name(p=1.0, full=False)`` (an NLL's key ends in
    ' log' for a log input)."""
    found = _FORMS.get((kind, key))
    if found is None:
        log = key.endswith(" log")
        text = key.removesuffix(" log")
        name, _, rest = text.partition("(")
        params: dict[str, Any] = {}
        for item in filter(None, rest.rstrip(")").split(", ")):
            k, _, v = item.partition("=")
            try:
                params[k] = ast.literal_eval(v)
            except (ValueError, SyntaxError):
                params[k] = float(v)  # inf, -inf
        if kind == "nll":
            found = form_of(get_nll_loss(name, **params), log)
        else:
            found = form_of(get_definition(name, **params))
        _FORMS[(kind, key)] = found
    return found


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _prep(inputs: list[torch.Tensor], reduction: str) -> Prepared:
    p = inputs[0]
    upcast = p.dtype in (torch.float16, torch.bfloat16)
    return Prepared(
        tuple(inputs), tuple(p.shape), None, None, get_reduction(reduction + ""), upcast
    )


def make_op(backend_for: Callable[[Form, Prepared], Any]) -> Any:
    """Register ``regloss::forward``, whose run-time implementation takes its backend
    from ``backend_for(form, prepared)`` (the route table's choice); returns the op."""

    @torch.library.custom_op("regloss::forward", mutates_args=())
    def loss_forward(
        inputs: list[torch.Tensor], kind: str, key: str, reduction: str
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(loss, each argument's gradient · scale) of the registered form; no weight, mask
        or NaN omission, inputs of one shape and dtype."""
        form = form_of_key(kind, key)
        prep = _prep(inputs, reduction)
        res: Result = backend_for(form, prep)(form, prep, True)
        value = res.value
        dtype = _compute_dtype(inputs[0])
        grads = []
        for g in res.grads:
            assert g is not None
            s = res.grad_scale
            g = g if isinstance(s, float) and s == 1.0 else g * s
            if tuple(g.shape) != prep.shape:
                g = torch.broadcast_to(g, prep.shape)
            grads.append(g.to(dtype).contiguous())
        return torch.as_tensor(value, dtype=dtype), grads

    @loss_forward.register_fake
    def _(
        inputs: list[torch.Tensor], kind: str, key: str, reduction: str
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        p = inputs[0]
        dtype = _compute_dtype(p)
        form = form_of_key(kind, key)
        shape = p.shape if get_reduction(reduction).elementwise else ()
        grads = [p.new_empty(p.shape, dtype=dtype) for _ in range(form.n_args)]
        return p.new_empty(shape, dtype=dtype), grads

    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        tensors, kind, key, reduction = inputs
        ctx.save_for_backward(*tensors, *output[1])
        ctx.kind, ctx.key, ctx.reduction, ctx.n = kind, key, reduction, len(tensors)

    def backward(ctx: Any, g_value: torch.Tensor, _g_grads: Any) -> tuple[Any, ...]:
        saved = ctx.saved_tensors
        inputs, grads = list(saved[: ctx.n]), saved[ctx.n :]
        form = form_of_key(ctx.kind, ctx.key)
        prep = _prep(inputs, ctx.reduction)
        if torch.is_grad_enabled():  # create_graph=True: differentiable, analytic Hessian
            gs = differentiable_gradient(form, prep, g_value, None)
        else:
            gs = [g * g_value for g in grads]
        needs = (
            tuple(ctx.needs_input_grad[0])
            if isinstance(ctx.needs_input_grad[0], (list, tuple))
            else (True,) * ctx.n
        )
        return input_gradients(form, prep, gs, needs), None, None, None

    loss_forward.register_autograd(backward, setup_context=setup_context)
    return loss_forward
