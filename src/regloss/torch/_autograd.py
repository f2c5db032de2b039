"""The autograd paths every regloss.torch loss runs through.

Two paths, one definition:

* **Fast path** (``_LossFunction``, ``_NLLFunction``): one ``torch.autograd.Function`` per
  call that evaluates the loss with :func:`regloss._reduce.forward` and returns
  :math:`\\psi(r)\\,f` beside the value, so a plain ``backward()`` is one multiplication.
  Everything backward needs goes through ``save_for_backward`` in ``setup_context``: it is
  freed when backward has run (a loss tensor kept for logging pins nothing), and version
  counters are checked (an in-place change of an input after the forward raises, as in
  PyTorch's own losses). Under ``create_graph=True`` the gradient is rebuilt from
  differentiable pieces: ``_Psi``, whose own backward is the analytic :math:`\\psi'`.
* **Composite path** (``_Rho``, ``_NLLValue``): the elementwise loss as an autograd Function
  with analytic backward (ψ), forward-mode jvp and a generated vmap rule, followed by the
  reduction in ordinary torch operations. It serves the ``torch.func`` transforms (grad,
  vmap, jacrev, jacfwd, hessian) and a ``weight`` that requires grad, whose gradient the
  reduction then provides.

Both allocate only with the inputs' device and dtype, keep nothing across calls that
carries autograd history, and make no host synchronisation when no option is set.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from .. import _kernels, _reduce
from .._validate import Prepared
from ..losses import Loss
from ..losses._base import AutodiffForm
from ..losses._nll import LogForm, NLLLoss, in_form
from . import _ops

__all__ = ["apply_loss", "apply_nll"]


class _Meta(NamedTuple):
    """The non-tensor part of :class:`Prepared`, passed beside the tensors."""

    shape: tuple[int, ...]
    reduction: str
    upcast: bool
    weight_checked: bool = True


def _split(prep: Prepared) -> tuple[tuple[Any, ...], _Meta]:
    return (prep.prediction, prep.target, prep.weight, prep.keep), _Meta(
        prep.shape, prep.reduction, prep.upcast, prep.weight_checked
    )


def _join(p: Any, t: Any, w: Any, k: Any, meta: _Meta) -> Prepared:
    return Prepared(p, t, meta.shape, w, k, meta.reduction, meta.upcast, meta.weight_checked)


# --- elementwise functions with analytic derivatives --------------------------------------


# Each elementwise Function comes twice: without ``jvp`` (torch.compile's Dynamo refuses
# Functions that define one) and, as a subclass, with it (forward mode: torch.func jacfwd
# and hessian). ``_jvp_ok()`` picks.


def _jvp_ok() -> bool:
    return not torch.compiler.is_compiling()


class _Elementwise(torch.autograd.Function):
    """An elementwise function of (r, loss): r saved for backward and for jvp."""

    generate_vmap_rule = True

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])  # jvp (jacfwd, hessian) reads it too
        ctx.loss = inputs[1]


class _PsiBase(_Elementwise):
    """Elementwise psi(r) whose derivative is the analytic psi_prime(r)."""

    @staticmethod
    def forward(r: torch.Tensor, loss: Loss) -> torch.Tensor:
        return loss.psi(r)  # type: ignore[no-any-return]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (r,) = ctx.saved_tensors
        return grad * ctx.loss.psi_prime(r), None


class _Psi(_PsiBase):
    @staticmethod
    def jvp(ctx: Any, dr: torch.Tensor, _: Any) -> torch.Tensor:
        (r,) = ctx.saved_tensors
        return dr * ctx.loss.psi_prime(r)  # type: ignore[no-any-return]


class _RhoBase(_Elementwise):
    """Elementwise rho(r) whose derivative is psi(r) (itself differentiable: ``_Psi``)."""

    @staticmethod
    def forward(r: torch.Tensor, loss: Loss) -> torch.Tensor:
        return loss.rho(r)  # type: ignore[no-any-return]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (r,) = ctx.saved_tensors
        return grad * _psi(r, ctx.loss), None


class _Rho(_RhoBase):
    @staticmethod
    def jvp(ctx: Any, dr: torch.Tensor, _: Any) -> torch.Tensor:
        (r,) = ctx.saved_tensors
        return dr * _psi(r, ctx.loss)


def _psi(r: torch.Tensor, loss: Loss) -> torch.Tensor:
    fn = _Psi if _jvp_ok() else _PsiBase
    return fn.apply(r, loss)  # type: ignore[no-untyped-call,no-any-return]


class _Differentiable(Loss):
    """A loss whose rho is ``_Rho``: the reductions of :mod:`regloss._reduce` then run as
    ordinary differentiable torch operations (the composite path)."""

    base: Loss

    def __init__(self, loss: Loss) -> None:
        object.__setattr__(self, "base", loss)

    def rho(self, r: Any) -> Any:
        fn = _Rho if _jvp_ok() else _RhoBase
        return fn.apply(r, self.base)  # type: ignore[no-untyped-call]

    def rho_sum(self, r: Any, *, overwrite: bool = False) -> Any:
        return torch.sum(self.rho(r))

    def depends_on_position(self) -> bool:
        return self.base.depends_on_position()


# --- scales -------------------------------------------------------------------------------

_CONSTANTS: dict[tuple[float, torch.dtype, torch.device], torch.Tensor] = {}


def _scaled(x: torch.Tensor, scale: Any) -> torch.Tensor:
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


# --- the fast path ------------------------------------------------------------------------


class _LossFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        prediction: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        keep: torch.Tensor | None,
        loss: Loss,
        meta: _Meta,
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        prep = _join(prediction, target, weight, keep, meta)
        fw = _reduce.forward(loss, torch, prep, need_psi=True)
        assert fw.psi_f is not None
        return _scaled(fw.total, fw.value_scale), fw.psi_f, fw.grad_scale

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        prediction, target, weight, keep, loss, meta = inputs
        _, psi_f, grad_scale = output
        scale_t = grad_scale if isinstance(grad_scale, torch.Tensor) else None
        # One call: each call replaces the set. (Marked in two calls, psi_f became a
        # differentiable output whenever the scale was a tensor, and the gradient handed on
        # below carried this node: it required grad and kept the graph alive.)
        ctx.mark_non_differentiable(*(t for t in (psi_f, scale_t) if t is not None))
        # No zero-filled gradients for the non-differentiable outputs: one would be a fresh
        # N-element fill per step (0.6 ms at 2^20 here, a third of a robust loss's step)
        ctx.set_materialize_grads(False)
        ctx.grad_scale = None if scale_t is not None else grad_scale
        # psi_f is a fresh buffer nobody else sees: the first backward multiplies the
        # incoming gradient into it in place (or not at all when that is 1) and hands the
        # buffer on as the gradient, so a training step allocates and page-faults one
        # N-element buffer fewer. It is taken from ctx by that backward (freed with the
        # gradient); a second backward through a retained graph recomputes it.
        ctx.psi_owned = psi_f if _ownable(psi_f, prediction, target) else None
        # Saved, not kept as attributes: freed after backward, version-checked on use.
        saved_psi = None if ctx.psi_owned is not None else psi_f
        ctx.save_for_backward(prediction, target, weight, keep, saved_psi, scale_t)
        ctx.loss, ctx.meta = loss, meta

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor, *_: Any) -> tuple[torch.Tensor | None, ...]:
        if grad is None:  # only possible through a non-differentiable output: no gradient
            return None, None, None, None, None, None
        prediction, target, weight, keep, psi_f, scale_t = ctx.saved_tensors
        owned, ctx.psi_owned = ctx.psi_owned, None
        if torch.is_grad_enabled():
            # create_graph=True: the gradient must itself be differentiable (psi_prime).
            prep = _join(prediction, target, weight, keep, ctx.meta)
            loss = ctx.loss
            psi_f, scale = _reduce.psi_factor(torch, prep, lambda r: _psi(r, loss))
            g = psi_f * (grad * scale)
        elif owned is not None:
            g = owned
            grad = _scaled(grad, scale_t if scale_t is not None else ctx.grad_scale)
            if not _is_one(grad):
                _kernels.multiply_into(g, grad)
        else:
            if psi_f is None:  # the owned buffer went to an earlier backward: recompute
                prep = _join(prediction, target, weight, keep, ctx.meta)
                fw = _reduce.forward(ctx.loss, torch, prep, need_psi=True)
                psi_f, scale_t, ctx.grad_scale = fw.psi_f, None, fw.grad_scale
                if isinstance(fw.grad_scale, torch.Tensor):
                    scale_t = fw.grad_scale
            scale = scale_t if scale_t is not None else ctx.grad_scale
            grad = _scaled(grad, scale)
            if (
                psi_f.dtype != prediction.dtype
                and ctx.needs_input_grad[0]
                and not ctx.needs_input_grad[1]
                and psi_f.shape == prediction.shape
                and type(psi_f) is torch.Tensor
            ):
                # half inputs: the float32 product written straight in their dtype (one
                # launch, rounded once) instead of a float32 product and then a cast
                out = torch.empty_like(prediction, memory_format=torch.contiguous_format)
                return torch.mul(psi_f, grad, out=out), None, None, None, None, None
            g = psi_f * grad
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
        return gp, gt, None, None, None, None


def _ownable(psi_f: Any, prediction: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether the backward may hand ``psi_f`` on as the prediction's gradient and write
    into it: an eager plain tensor of the prediction's shape, dtype and layout, not an
    input's memory."""
    return (
        type(psi_f) is torch.Tensor
        and not torch.compiler.is_compiling()
        and psi_f.dtype == prediction.dtype
        and psi_f.shape == prediction.shape
        and psi_f.numel() > 0
        and psi_f.is_contiguous()
        and prediction.is_contiguous()
        and psi_f.data_ptr() != prediction.data_ptr()
        and psi_f.data_ptr() != target.data_ptr()
    )


def _sum_to(g: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return _reduce.sum_to_shape(torch, g, tuple(like.shape))  # type: ignore[no-any-return]


# Function.apply re-checks its signature with inspect on every call (measured ~2 us, 5% of
# a small-N training step); eager calls use the C++ apply directly. torch.func transforms
# and torch.compile take the composite path or Function.apply, which they require.
_fast_apply: Any = super(torch.autograd.Function, _LossFunction).apply


def _composite_needed(prep: Prepared, *more: Any) -> bool:
    if torch._C._are_functorch_transforms_active():
        return True
    if prep.weight is not None and prep.weight.requires_grad:
        return True
    if torch.compiler.is_compiling():
        # Dynamo cannot trace an autograd.Function given one tensor twice (e.g. the
        # prediction also passed as log-variance): the composite form traces as plain ops.
        given = [x for x in (prep.prediction, prep.target, prep.weight, prep.keep, *more)]
        tensors = [x for x in given if x is not None]
        return len({id(x) for x in tensors}) < len(tensors)
    return False


def apply_loss(loss: Loss, prep: Prepared) -> torch.Tensor:
    """Evaluate ``loss`` on checked inputs with regloss's analytic autograd."""
    tensors, meta = _split(prep)
    if not torch.is_grad_enabled() or not (
        any(t is not None and t.requires_grad for t in tensors[:3]) or _params_need_grad(loss)
    ):
        fw = _reduce.forward(loss, torch, prep, need_psi=False)
        return _scaled(fw.total, fw.value_scale)
    if torch._C._is_any_autocast_enabled():
        # The loss runs in float32 (or wider) as in autocast's fp32 policy for losses.
        with torch.autocast(device_type=prep.prediction.device.type, enabled=False):
            return _run(loss, prep, tensors, meta)
    return _run(loss, prep, tensors, meta)


def _params_need_grad(loss: Loss) -> bool:
    # param_names is a class attribute: no dataclasses.fields() on the hot path
    return any(
        isinstance(v := getattr(loss, k), torch.Tensor) and v.requires_grad
        for k in type(loss).param_names
    )


def _run(loss: Loss, prep: Prepared, tensors: tuple[Any, ...], meta: _Meta) -> torch.Tensor:
    if _params_need_grad(loss):
        # parameters as tensors that require grad (Barron's alpha and scale, learned):
        # autograd differentiates the overflow-safe formula in the parameters too
        return _reduce.forward(AutodiffForm(loss), torch, prep, need_psi=False).value  # type: ignore[no-any-return]
    if _composite_needed(prep):
        fw = _reduce.forward(_Differentiable(loss), torch, prep, need_psi=False)
        return fw.value  # type: ignore[no-any-return]
    if torch.compiler.is_compiling():
        if _ops.usable(loss, prep):
            # one opaque op in the graph: regloss's generated kernels at run time
            value: torch.Tensor = _ops.loss_forward(
                prep.prediction, prep.target, _ops.key_of(loss), meta.reduction
            )[0]
            return value
        out = _LossFunction.apply(*tensors, loss, meta)  # type: ignore[no-untyped-call]
    else:
        out = _fast_apply(*tensors, loss, meta)
    return out[0]  # type: ignore[no-any-return]


# --- negative log-likelihoods -------------------------------------------------------------


class _NLLElementwise(torch.autograd.Function):
    """An elementwise function of (r, v, nll): r and v saved for backward and for jvp."""

    generate_vmap_rule = True

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        ctx.save_for_backward(inputs[0], inputs[1])
        ctx.save_for_forward(inputs[0], inputs[1])
        ctx.nll = inputs[2]


class _NLLGradBase(_NLLElementwise):
    """(d/dr, d/dv) of an NLL loss whose own derivative is the analytic Hessian."""

    @staticmethod
    def forward(r: torch.Tensor, v: torch.Tensor, nll: NLLLoss | LogForm) -> Any:
        return nll.grad(r, v)

    @staticmethod
    def backward(ctx: Any, g_r: torch.Tensor, g_v: torch.Tensor) -> tuple[Any, Any, None]:
        r, v = ctx.saved_tensors
        h_rr, h_rv, h_vv = ctx.nll.hess(r, v)
        return g_r * h_rr + g_v * h_rv, g_r * h_rv + g_v * h_vv, None


class _NLLGrad(_NLLGradBase):
    @staticmethod
    def jvp(ctx: Any, dr: torch.Tensor, dv: torch.Tensor, _: Any) -> Any:
        r, v = ctx.saved_tensors
        h_rr, h_rv, h_vv = ctx.nll.hess(r, v)
        return h_rr * dr + h_rv * dv, h_rv * dr + h_vv * dv


def _nll_grad(r: torch.Tensor, v: torch.Tensor, fns: NLLLoss | LogForm) -> Any:
    return (_NLLGrad if _jvp_ok() else _NLLGradBase).apply(r, v, fns)  # type: ignore[no-untyped-call]


class _NLLValueBase(_NLLElementwise):
    """Elementwise NLL value whose derivatives are ``_NLLGrad`` (composite path)."""

    @staticmethod
    def forward(r: torch.Tensor, v: torch.Tensor, nll: NLLLoss | LogForm) -> Any:
        return nll.value(r, v)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, Any, None]:
        r, v = ctx.saved_tensors
        d_r, d_v = _nll_grad(r, v, ctx.nll)
        return g * d_r, g * d_v, None


class _NLLValue(_NLLValueBase):
    @staticmethod
    def jvp(ctx: Any, dr: torch.Tensor, dv: torch.Tensor, _: Any) -> Any:
        r, v = ctx.saved_tensors
        d_r, d_v = _nll_grad(r, v, ctx.nll)
        return d_r * dr + d_v * dv


def _nll_composite(nll: NLLLoss, prep: Prepared, s: torch.Tensor, log_input: bool) -> torch.Tensor:
    """The NLL from differentiable pieces (torch.func transforms, weights with grad)."""
    r, v, f, scale = _reduce.nll_parts(
        torch, nll, prep, s, log_input=log_input, differentiable=True
    )
    fn = _NLLValue if _jvp_ok() else _NLLValueBase
    value = fn.apply(r, torch.broadcast_to(v, r.shape), in_form(nll, log_input))  # type: ignore[no-untyped-call]
    if f is not None:
        value = value * f
    if prep.reduction == "none":
        return torch.broadcast_to(value, prep.shape)
    return value.sum() * scale  # type: ignore[no-any-return]


class _NLLFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        prediction: torch.Tensor,
        target: torch.Tensor,
        scale_input: torch.Tensor,
        weight: torch.Tensor | None,
        keep: torch.Tensor | None,
        nll: NLLLoss,
        meta: _Meta,
        log_input: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]:
        prep = _join(prediction, target, weight, keep, meta)
        fw = _reduce.nll_forward(torch, nll, prep, scale_input, log_input=log_input, need_grad=True)
        assert fw.d_pred is not None and fw.d_scale is not None
        return _scaled(fw.total, fw.value_scale), fw.d_pred, fw.d_scale, fw.value_scale

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        prediction, target, s, weight, keep, nll, meta, log_input = inputs
        _, d_r, d_v, value_scale = output
        scale_t = value_scale if isinstance(value_scale, torch.Tensor) else None
        # one call, as _LossFunction: each call replaces the set
        ctx.mark_non_differentiable(*(t for t in (d_r, d_v, scale_t) if t is not None))
        ctx.set_materialize_grads(False)  # as _LossFunction: no zero fills for d_r, d_v
        ctx.value_scale = None if scale_t is not None else value_scale
        # As _LossFunction's psi: fresh gradient buffers the first backward writes into and
        # hands on (d_v only where it has the scale input's shape and dtype)
        own_r = _ownable(d_r, prediction, target) and d_r.data_ptr() != s.data_ptr()
        own_v = (
            _ownable(d_v, s, target)
            and d_v.data_ptr() != prediction.data_ptr()
            and d_v.data_ptr() != d_r.data_ptr()
        )
        ctx.owned = (d_r if own_r else None, d_v if own_v else None)
        saved = (None if own_r else d_r, None if own_v else d_v)
        ctx.save_for_backward(prediction, target, s, weight, keep, *saved, scale_t)
        ctx.nll, ctx.meta, ctx.log_input = nll, meta, log_input

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor, *_: Any) -> tuple[torch.Tensor | None, ...]:
        if grad is None:  # only possible through a non-differentiable output: no gradient
            return None, None, None, None, None, None, None, None
        prediction, target, s, weight, keep, d_r, d_v, scale_t = ctx.saved_tensors
        (own_r, own_v), ctx.owned = ctx.owned, (None, None)
        needs = ctx.needs_input_grad
        if torch.is_grad_enabled():
            # create_graph=True: rebuild from differentiable pieces (Hessian in _NLLGrad).
            prep = _join(prediction, target, weight, keep, ctx.meta)
            r, v, f, scale = _reduce.nll_parts(
                torch, ctx.nll, prep, s, log_input=ctx.log_input, differentiable=True
            )
            fns = in_form(ctx.nll, ctx.log_input)
            d_r, d_v = _nll_grad(r, v, fns)
            if f is not None:
                d_r, d_v = d_r * f, d_v * f
            g = grad * scale if ctx.meta.reduction != "none" else grad
            gr, gv = d_r * g, d_v * g
        else:
            if (d_r is None and own_r is None) or (d_v is None and own_v is None):
                # an owned buffer went to an earlier backward through this retained graph
                prep = _join(prediction, target, weight, keep, ctx.meta)
                fw = _reduce.nll_forward(
                    torch, ctx.nll, prep, s, log_input=ctx.log_input, need_grad=True
                )
                d_r, d_v, own_r, own_v = fw.d_pred, fw.d_scale, None, None
            g = _scaled(grad, scale_t if scale_t is not None else ctx.value_scale)
            one = (own_r is not None or own_v is not None) and _is_one(g)
            gr = _times(own_r, g, one) if own_r is not None else d_r * g
            gv = _times(own_v, g, one) if own_v is not None else d_v * g
        gp = _sum_to(gr, prediction).to(prediction.dtype) if needs[0] else None
        gt = _sum_to(-gr, target).to(target.dtype) if needs[1] else None
        gs = None
        if needs[2]:
            gs = _sum_to(torch.broadcast_to(gv, gr.shape), s).to(s.dtype)
        return gp, gt, gs, None, None, None, None, None


def _is_one(g: torch.Tensor) -> bool:
    """Whether the incoming gradient is exactly 1 (``loss.backward()``), read only from a
    plain CPU tensor: a CUDA one is multiplied rather than synchronised on."""
    return type(g) is torch.Tensor and g.device.type == "cpu" and g.numel() == 1 and g.item() == 1.0


def _times(owned: torch.Tensor, g: torch.Tensor, one: bool) -> torch.Tensor:
    """``owned * g`` written into ``owned`` (a buffer nobody else sees), nothing when g is 1."""
    return owned if one else _kernels.multiply_into(owned, g)


_fast_nll_apply: Any = super(torch.autograd.Function, _NLLFunction).apply


def apply_nll(
    nll: NLLLoss, prep: Prepared, scale_input: torch.Tensor, log_input: bool
) -> torch.Tensor:
    """Evaluate an NLL loss on checked inputs with regloss's analytic autograd."""
    inputs = (prep.prediction, prep.target, scale_input)
    if not torch.is_grad_enabled() or not any(
        x.requires_grad for x in (*inputs, *([prep.weight] if prep.weight is not None else []))
    ):
        fw = _reduce.nll_forward(
            torch, nll, prep, scale_input, log_input=log_input, need_grad=False
        )
        return _scaled(fw.total, fw.value_scale)
    if _composite_needed(prep, scale_input):
        return _nll_composite(nll, prep, scale_input, log_input)
    args = (*inputs, prep.weight, prep.keep, nll, _split(prep)[1], log_input)
    apply = _NLLFunction.apply if torch.compiler.is_compiling() else _fast_nll_apply
    return apply(*args)[0]  # type: ignore[no-any-return]
