"""The one autograd carrier of regloss.torch, and the differentiable pieces.

:class:`Carrier` is the ``torch.autograd.Function`` every route that runs a backend of the
contract (:mod:`regloss._backend`: the generated C and Triton kernels, eager, eager in
blocks) goes through, for every kind of form (residual, NLL, pair). It owns:

* **handing buffers on.** A backend writes one gradient buffer per argument, a fresh
  tensor no one else sees. The first backward multiplies the incoming gradient into it in
  place (not at all where that is exactly 1) and hands it on as the input's gradient, so
  a training step allocates no second N-element buffer. Such a buffer is kept as
  ``ctx.owned`` — the one tensor not saved through ``save_for_backward``, taken by that
  backward; everything else is saved, so version counters are checked as in PyTorch's own
  losses.
* **backward through a retained graph.** A second backward recomputes the buffers with
  the backend that ran the forward (recorded in the graph), so it is bit-identical to the
  first (``torch.autograd.gradcheck(..., nondet_tol=0)`` checks reentrancy).
* **create_graph.** The gradient is rebuilt from :class:`_Value`/:class:`_Grad`, whose own
  derivatives are the form's analytic Hessian: double backward is analytic.

The compile custom op (``_ops.py``) runs the same backends and has this backward. The
torch.func transforms and weights that require grad take :func:`composite`: the form's
value as an elementwise Function with analytic backward, jvp and a generated vmap rule,
reduced by ordinary torch operations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from .. import _eager
from .._backend import Result, compute_dtype, factor
from .._kernels import multiply_into
from .._validate import Prepared
from ..losses import Form

__all__ = [
    "Carrier",
    "Plan",
    "apply",
    "apply_kernel",
    "composite",
    "differentiable_gradient",
    "grads_of",
    "input_gradients",
    "scaled",
]


Backend = Callable[[Form, Prepared, bool], "Result | None"]


class Plan(NamedTuple):
    """What the carrier runs: the form and the backend."""

    form: Form
    backend: Backend
    #: the backend writes fresh buffers of each input's shape and dtype (the C kernel):
    #: every one can be handed on without looking
    fresh: bool = False


def _tensors(p: Any, t: Any, s: Any, weight: Any, keep: Any) -> tuple[Any, ...]:
    """The inputs (two or three), weight and keep as ``_prep`` reads them."""
    return (p, t, weight, keep) if s is None else (p, t, s, weight, keep)


# --- scales -------------------------------------------------------------------------------

_CONSTANTS: dict[tuple[float, torch.dtype, torch.device], torch.Tensor] = {}


def scaled(x: torch.Tensor, scale: Any) -> torch.Tensor:
    """``x * scale`` for a Python float or a 0-d tensor ``scale``."""
    if not isinstance(scale, float):
        return x * scale  # type: ignore[no-any-return]
    if scale == 1.0:
        return x
    if type(x) is not torch.Tensor or x.device.type == "meta" or torch.compiler.is_compiling():
        # Fake, meta, subclass or traced tensors: no cache (a constant from one FakeTensorMode
        # must not reach another; a compiled graph folds the constant anyway).
        return x * scale
    # Eager: PyTorch wraps a Python float in a new tensor per operation (~1.5 us); a cached
    # 0-d constant (no autograd history, bounded) is cheaper.
    key = (scale, x.dtype, x.device)
    c = _CONSTANTS.get(key)
    if c is None:
        if len(_CONSTANTS) > 512:  # distinct batch sizes are few; stay bounded anyway
            _CONSTANTS.clear()
        c = _CONSTANTS[key] = torch.full((), scale, dtype=x.dtype, device=x.device)
    return x * c


def _is_one(g: Any) -> bool:
    """Whether the incoming gradient is exactly 1 (``loss.backward()``), read only from a
    plain CPU tensor: a CUDA one is multiplied rather than synchronised on."""
    return type(g) is torch.Tensor and g.device.type == "cpu" and g.numel() == 1 and g.item() == 1.0


# --- elementwise functions with analytic derivatives --------------------------------------

# Each comes twice: without ``jvp`` (torch.compile's Dynamo refuses Functions that define
# one) and, as a subclass, with it (forward mode: torch.func jacfwd and hessian).


def _jvp_ok() -> bool:
    return not torch.compiler.is_compiling()


class _Elementwise(torch.autograd.Function):
    """An elementwise function of ``(a0, a1, form)``: a form's one or two arguments (a1
    None for one), saved for backward and for jvp. (Fixed positions: Dynamo reads a
    ``*args`` forward as taking ctx first, and misreads a non-tensor first argument.)"""

    generate_vmap_rule = True

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        a0, a1, form = inputs
        ctx.save_for_backward(a0, a1)
        ctx.save_for_forward(a0, a1)  # jvp (jacfwd, hessian) reads them too
        ctx.form = form


def _args(ctx: Any) -> tuple[torch.Tensor, ...]:
    a0, a1 = ctx.saved_tensors
    return (a0,) if a1 is None else (a0, a1)


def _pad(xs: tuple[Any, ...]) -> tuple[Any, Any]:
    return (xs[0], None) if len(xs) == 1 else (xs[0], xs[1])


def _hess_times(form: Form, args: tuple[Any, ...], g: tuple[Any, ...]) -> tuple[Any, ...]:
    """The Hessian (upper triangle) times the vector ``g``, one entry per argument."""
    h = form.hess(*args)
    if len(args) == 1:
        return (g[0] * h[0],)
    return (g[0] * h[0] + g[1] * h[1], g[0] * h[1] + g[1] * h[2])


class _GradBase(_Elementwise):
    """The form's gradient, whose own derivative is the analytic Hessian."""

    @staticmethod
    def forward(a0: torch.Tensor, a1: torch.Tensor | None, form: Form) -> Any:
        return tuple(form.grad(a0) if a1 is None else form.grad(a0, a1))

    @staticmethod
    def backward(ctx: Any, *g: torch.Tensor) -> tuple[Any, ...]:
        return (*_pad(_hess_times(ctx.form, _args(ctx), g)), None)


class _Grad(_GradBase):
    @staticmethod
    def jvp(ctx: Any, d0: Any, d1: Any, _: Any) -> Any:
        args = _args(ctx)
        return _hess_times(ctx.form, args, (d0,) if len(args) == 1 else (d0, d1))


def grads_of(form: Form, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The form's gradient as a differentiable function of its arguments (double
    backward: the Hessian)."""
    out = (_Grad if _jvp_ok() else _GradBase).apply(*_pad(args), form)  # type: ignore[no-untyped-call]
    return tuple(out)


class _ValueBase(_Elementwise):
    """The form's value, whose derivative is :func:`grads_of` (itself differentiable)."""

    @staticmethod
    def forward(a0: torch.Tensor, a1: torch.Tensor | None, form: Form) -> Any:
        return form.value(a0) if a1 is None else form.value(a0, a1)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        grads = grads_of(ctx.form, *_args(ctx))
        return (*_pad(tuple(g * d for d in grads)), None)


class _Value(_ValueBase):
    @staticmethod
    def jvp(ctx: Any, d0: Any, d1: Any, _: Any) -> Any:
        args = _args(ctx)
        dargs = (d0,) if len(args) == 1 else (d0, d1)
        grads = grads_of(ctx.form, *args)
        out = grads[0] * dargs[0]
        for d, da in zip(grads[1:], dargs[1:], strict=True):
            out = out + d * da
        return out


def _differentiable_args(form: Form, prep: Prepared, dtype: Any) -> tuple[torch.Tensor, ...]:
    """The form's arguments from differentiable operations, broadcast to one shape."""
    args = _eager.arguments(form, torch, prep, dtype, differentiable=True)
    if len(args) > 1 and any(tuple(a.shape) != prep.shape for a in args):
        args = tuple(torch.broadcast_to(a, prep.shape) for a in args)
    return args


def composite(form: Form, prep: Prepared, global_factor: Any = None) -> torch.Tensor:
    """The loss from differentiable pieces: the form's value as :class:`_Value` (analytic
    derivatives, jvp, vmap rule), weighted and reduced by torch operations (torch.func
    transforms; weights that require grad, whose gradient the reduction provides)."""
    dtype = compute_dtype(torch, prep)
    args = _differentiable_args(form, prep, dtype)
    value = (_Value if _jvp_ok() else _ValueBase).apply(*_pad(args), form)  # type: ignore[no-untyped-call]
    f = factor(torch, prep, dtype)
    if f is not None:
        value = value * f
    red = prep.reduction
    if red.elementwise:
        return torch.broadcast_to(value, prep.shape)
    out = scaled(value.sum(), red.scale(torch, prep.shape, f))
    return out if global_factor is None else out * global_factor.to(out.dtype)


# --- the carrier --------------------------------------------------------------------------


def _ownable(g: Any, x: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> bool:
    """Whether the backward may hand buffer ``g`` on as input ``x``'s gradient and write
    into it: an eager plain tensor of x's shape, dtype and layout, not an input's memory."""
    return (
        type(g) is torch.Tensor
        and g.dtype == x.dtype
        and g.shape == x.shape
        and g.numel() > 0
        and g.is_contiguous()
        and x.is_contiguous()
        and all(g.data_ptr() != y.data_ptr() for y in inputs)
    )


def _owners(form: Form, grads: tuple[Any, ...], inputs: tuple[torch.Tensor, ...]) -> list[Any]:
    """Per argument, the buffer to hand on (its input fed with sign +1 can take it)."""
    owned: list[Any] = [None] * len(grads)
    if torch.compiler.is_compiling():
        return owned
    for i, (j, sign) in enumerate(form.feeds):
        if sign == 1.0 and owned[j] is None and _ownable(grads[j], inputs[i], inputs):
            owned[j] = grads[j]
    return owned


class Carrier(torch.autograd.Function):
    """See the module docstring. Called as ``apply(prediction, target, scale input (None
    for two inputs), weight, keep, factor, plan, prep, result)``: ``prep`` the checked
    inputs (read for their metadata only), ``result`` the backend's where the route ran it
    already, outside autograd (else None); returns the loss. (Fixed positions: Dynamo reads
    a ``*args`` forward as taking ctx first.)"""

    @staticmethod
    def forward(
        ctx: Any,
        p: torch.Tensor,
        t: torch.Tensor,
        s: torch.Tensor | None,
        weight: torch.Tensor | None,
        keep: torch.Tensor | None,
        factor_t: torch.Tensor | None,
        plan: Plan,
        prep: Prepared,
        res: Result | None,
    ) -> torch.Tensor:
        # the form of PyTorch's own losses' nodes: ctx in forward, one output (each
        # further output, even marked non-differentiable, costs every step)
        form = plan.form
        if res is None:
            res = plan.backend(form, prep, True)
            assert res is not None  # only the C kernel declines, and it runs before
        value = scaled(res.total, res.value_scale)
        grad_scale = res.grad_scale
        if factor_t is not None:  # 'global_mean': W / the all-reduced count
            value = value * factor_t.to(value.dtype)
            grad_scale = factor_t * grad_scale
        scale_t = grad_scale if isinstance(grad_scale, torch.Tensor) else None
        ctx.grad_scale = None if scale_t is not None else grad_scale
        grads = res.grads
        if plan.fresh:  # (never while compiling: the kernel rows decline it)
            # every input has its buffer's shape and dtype: handed on without looking
            owned = list(grads)
            ctx.whole = True
            ctx.save_for_backward(p, t, s, weight, keep, factor_t, *((None,) * len(grads)), scale_t)
        else:
            inputs = (p, t) if s is None else (p, t, s)
            owned = _owners(form, grads, inputs)
            ctx.whole = _whole(form, owned, inputs)
            saved = [None if o is not None else g for g, o in zip(grads, owned, strict=True)]
            ctx.save_for_backward(p, t, s, weight, keep, factor_t, *saved, scale_t)
        ctx.owned = owned
        ctx.plan = plan
        ctx.meta = (prep.shape, prep.reduction, prep.upcast, prep.weight_checked)
        return value

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        owned = ctx.owned
        if ctx.whole and owned[0] is not None and not torch.is_grad_enabled():
            # the first backward of a call whose every buffer is owned: hand them on
            saved = ctx.saved_tensors  # version checks: in-place changes since raise here
            ctx.owned = [None] * len(owned)
            scale = ctx.grad_scale
            g = scaled(grad, saved[-1] if scale is None else scale)
            if not _is_one(g):
                for b in owned:
                    multiply_into(b, g)
            needs = ctx.needs_input_grad
            out: list[Any] = [None] * 9
            for i, (j, sign) in enumerate(ctx.plan.form.feeds):
                if needs[i]:
                    out[i] = owned[j] if sign == 1.0 else -owned[j]
            return tuple(out)
        return _backward(ctx, grad)


def _whole(form: Form, owned: list[Any], inputs: tuple[torch.Tensor, ...]) -> bool:
    """Whether every buffer is owned and every input has its buffer's shape and dtype (the
    backward then hands them on, negated where the form feeds an input with -1)."""
    if any(o is None for o in owned):
        return False
    return all(
        inputs[i].shape == owned[j].shape and inputs[i].dtype == owned[j].dtype
        for i, (j, _) in enumerate(form.feeds)
    )


def _backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
    """Every other backward: create_graph, a retained graph's second backward (recomputed
    by the forward's backend, bit for bit), buffers not owned, broadcast inputs."""
    plan = ctx.plan
    form = plan.form
    n, m = form.n_inputs, form.n_args
    saved = ctx.saved_tensors
    tensors, factor_t = _tensors(*saved[:5]), saved[5]
    buffers, scale_t = list(saved[6 : 6 + m]), saved[6 + m]
    owned, ctx.owned = ctx.owned, [None] * m
    needs = ctx.needs_input_grad
    shape, reduction, upcast, weight_checked = ctx.meta
    inputs = tuple(tensors[:n])
    prep = Prepared(inputs, shape, tensors[n], tensors[n + 1], reduction, upcast, weight_checked)
    gs: list[Any]
    if torch.is_grad_enabled():
        # create_graph=True: the gradient must itself be differentiable (the Hessian)
        gs = list(differentiable_gradient(form, prep, grad, factor_t))
    else:
        wanted = {form.feeds[i][0] for i in range(n) if needs[i]}
        if any(buffers[j] is None and owned[j] is None for j in wanted):
            # a buffer went to an earlier backward through this retained graph:
            # recompute with the same backend, bit for bit
            res = plan.backend(form, prep, True)
            assert res is not None
            buffers, owned = list(res.grads), [None] * m
            scale_t, scale = None, res.grad_scale
            if factor_t is not None:
                scale = factor_t * scale
            if isinstance(scale, torch.Tensor):
                scale_t = scale
            else:
                ctx.grad_scale = scale
        g = scaled(grad, scale_t if scale_t is not None else ctx.grad_scale)
        one = any(o is not None for o in owned) and _is_one(g)
        gs = []
        for j in range(m):
            if j not in wanted:
                gs.append(None)
            elif owned[j] is not None:
                gs.append(owned[j] if one else multiply_into(owned[j], g))
            else:
                gs.append(_times(buffers[j], g, inputs, form, j, needs))
    grads = input_gradients(form, prep, gs, needs)
    return (*grads, *((None,) * (3 - n)), None, None, None, None, None, None)


def input_gradients(
    form: Form, prep: Prepared, gs: list[Any], needs: tuple[bool, ...]
) -> list[Any]:
    """Each input's gradient from its argument's (± per the form's feeds), summed back to
    the input's shape where it was broadcast and cast to its dtype."""
    out: list[Any] = []
    for i, x in enumerate(prep.inputs):
        j, sign = form.feeds[i]
        if not needs[i] or gs[j] is None:
            out.append(None)
            continue
        gi = gs[j] if sign == 1.0 else -gs[j]
        if gi.shape != x.shape:
            if tuple(gi.shape) != prep.shape:
                gi = torch.broadcast_to(gi, prep.shape)
            gi = _eager.sum_to_shape(torch, gi, tuple(x.shape))
        if gi.dtype != x.dtype:
            gi = gi.to(x.dtype)
        out.append(gi)
    return out


def _times(
    buf: torch.Tensor,
    g: torch.Tensor,
    inputs: tuple[torch.Tensor, ...],
    form: Form,
    j: int,
    needs: tuple[bool, ...],
) -> torch.Tensor:
    """``buf * g``; half inputs: the float32 product written straight in the input's dtype
    (one launch, rounded once) where only that input needs it."""
    users = [i for i, (a, _) in enumerate(form.feeds) if a == j and needs[i]]
    if len(users) == 1 and form.feeds[users[0]][1] == 1.0:
        x = inputs[users[0]]
        if buf.dtype != x.dtype and buf.shape == x.shape and type(buf) is torch.Tensor:
            out = torch.empty_like(x, memory_format=torch.contiguous_format)
            return torch.mul(buf, g, out=out)
    return buf * g


def differentiable_gradient(
    form: Form, prep: Prepared, grad: torch.Tensor, factor_t: Any
) -> list[torch.Tensor]:
    """Each argument's f · gradient · grad · scale from differentiable pieces."""
    dtype = compute_dtype(torch, prep)
    args = _differentiable_args(form, prep, dtype)
    f = factor(torch, prep, dtype)
    grads = grads_of(form, *args)
    scale = prep.reduction.scale(torch, prep.shape, f)
    if factor_t is not None:
        scale = factor_t.to(grad.dtype) * scale
    g = grad * scale
    return [(d if f is None else d * f) * g for d in grads]


# Function.apply re-checks its signature with inspect on every call (measured ~2 us, 5% of
# a small-N training step); eager calls use the C++ apply directly. torch.compile needs
# Function.apply.
_fast_apply: Any = super(torch.autograd.Function, Carrier).apply


def apply_kernel(plan: Plan, prep: Prepared, factor_t: Any, result: Result) -> torch.Tensor:
    """:func:`apply` for the kernel rows' eager calls (their result already computed):
    the carrier's C++ apply, no further checks."""
    inputs = prep.inputs
    s = inputs[2] if len(inputs) == 3 else None
    return _fast_apply(  # type: ignore[no-any-return]
        inputs[0], inputs[1], s, prep.weight, None, factor_t, plan, prep, result
    )


def apply(
    plan: Plan,
    prep: Prepared,
    factor_t: Any = None,
    result: Result | None = None,
    compiling: bool = False,
) -> torch.Tensor:
    """The loss of ``prep`` through the carrier (``result``: the backend's, already run;
    ``compiling``: under torch.compile, as the call's facts say)."""
    inputs = prep.inputs
    s = inputs[2] if len(inputs) == 3 else None
    args = (inputs[0], inputs[1], s, prep.weight, prep.keep, factor_t, plan, prep, result)
    if compiling:
        return Carrier.apply(*args)  # type: ignore[no-untyped-call,no-any-return]
    return _fast_apply(*args)  # type: ignore[no-any-return]
