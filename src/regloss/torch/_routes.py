"""The PyTorch front-end's routes: how a ``regloss.torch`` call runs, in one table.

Every regloss.torch entry point (the functionals, the modules, the NLLs, ``loss``) calls
:func:`call`: it reads the call's :class:`Facts` from metadata only and runs the first
row of :data:`TABLE` that applies (see :mod:`regloss._dispatch`). The rows, in order:

1. ``torch_native``: PyTorch's own fused loss (mse, l1, huber, smooth_l1 with β ≥ ½),
   autograd included, where its semantics are the definition's and no generated kernel
   is faster at this size;
2. ``torch_native_weighted``: PyTorch's elementwise loss times the weights;
3. ``c_kernel``: the generated C kernel on CPU tensors, value and gradient in one pass;
4. ``triton``: the generated Triton kernel on CUDA (every option in one pass);
5. ``compile_op``: under torch.compile, one custom op that runs rows 3-4 at run time;
6. ``autodiff``: parameters that require grad, differentiated through the formula;
7. ``composite``: torch.func transforms and weights that require grad;
8. ``eager_blocked``: the eager definition in cache-sized blocks (long CPU inputs);
9. ``eager``: the eager definition.

Rows 3, 4, 8 and 9 run through the one autograd carrier (``_carrier.py``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from .. import _eager, _kernels
from .._backend import Result
from .._dispatch import Explanation, Route, Table
from .._kernels import cpu as _cpu
from .._reduction import Options, get_reduction
from .._thresholds import value as threshold
from .._validate import Prepared, check_scale_input, check_tensor, has_negative, prepare
from ..losses import AbsoluteError, AutodiffForm, Form, Huber, SmoothL1
from . import _carrier, _distributed, _native
from ._carrier import Meta, Plan
from ._ops import make_op

__all__ = ["OP", "TABLE", "Facts", "call", "explain_call", "facts_of"]

_FLOATS = frozenset((torch.float32, torch.float64))
_NAMES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
}


class Facts(NamedTuple):
    """What a torch call is, from metadata: the route table's input."""

    form: Form
    #: prediction, target (scale input, weight) all plain ``torch.Tensor`` (not a
    #: subclass, a FakeTensor or another type)
    tensors: bool
    #: the inputs' one dtype ('float32', 'float64', 'float16', 'bfloat16') or 'other'
    dtype: str
    #: the prediction's device type ('cpu', 'cuda', 'meta', ...)
    device: str
    numel: int
    #: every input of one shape (no broadcasting)
    same_shape: bool
    #: every input (and a weight) contiguous
    contiguous: bool
    #: 'none'; 'full' (a tensor of the prediction's shape and dtype, no grad); 'grad' (it
    #: requires grad); 'other' (per sample, another dtype)
    weight: str
    mask: bool
    nan_policy: str
    reduction: str
    #: grad mode is on and an input requires grad
    grad: bool
    compiling: bool
    functorch: bool
    autocast: bool
    #: a parameter of the loss is a tensor that requires grad
    params_grad: bool
    #: one tensor passed twice (read only while compiling, where it matters)
    aliased: bool
    #: 'global_mean' under an initialised process group
    distributed: bool
    #: the values can be read on the host (not meta, fake, compiling or torch.func)
    readable: bool


class _Call(NamedTuple):
    form: Form
    inputs: tuple[Any, ...]
    options: Options


def facts_of(form: Form, inputs: tuple[Any, ...], options: Options) -> Facts:
    """The facts of a call, from metadata; never raises (unchecked inputs give facts that
    only the eager row accepts, and it raises the checked error)."""
    p = inputs[0]
    T = torch.Tensor
    tensors = all(type(x) is T for x in inputs)
    weight = options.weight
    red = options.reduction
    compiling = torch.compiler.is_compiling()
    distributed = red.all_reduced and _distributed.initialised()
    if not tensors and not all(isinstance(x, T) for x in inputs):
        return Facts(
            form,
            False,
            "other",
            "cpu",
            0,
            False,
            False,
            "other",
            options.mask is not None,
            options.nan_policy,
            red.name,
            False,
            compiling,
            False,
            False,
            False,
            False,
            distributed,
            False,
        )
    dt = p.dtype
    one = all(x.dtype is dt for x in inputs)
    shape = p.shape
    same = all(x.shape == shape for x in inputs)
    contiguous = all(x.is_contiguous() for x in inputs)
    if weight is None:
        wkind = "none"
    elif not isinstance(weight, T):
        wkind = "other"
    elif weight.requires_grad:
        wkind = "grad"
    elif weight.dtype is dt and weight.shape == shape:
        wkind = "full"
        contiguous = contiguous and weight.is_contiguous()
        tensors = tensors and type(weight) is T
    else:
        wkind = "other"
    grad = torch.is_grad_enabled() and any(x.requires_grad for x in inputs)
    functorch = torch._C._are_functorch_transforms_active()
    device = "cpu" if p.is_cpu else p.device.type
    readable = tensors and not (compiling or functorch or device == "meta")
    return Facts(
        form,
        tensors,
        _NAMES.get(dt, "other") if one else "other",
        device,
        p.numel(),
        same,
        contiguous,
        wkind,
        options.mask is not None,
        options.nan_policy,
        red.name,
        grad,
        compiling,
        functorch,
        torch._C._is_any_autocast_enabled(),
        form.params_need_grad(),
        compiling and _aliased(inputs, weight, options.mask),
        distributed,
        readable,
    )


def _aliased(*groups: Any) -> bool:
    """Whether one tensor is passed twice (Dynamo cannot trace an autograd.Function given
    one tensor twice, e.g. the prediction also as the log-variance)."""
    tensors = [x for x in (*groups[0], *groups[1:]) if x is not None]
    return len({id(x) for x in tensors}) < len(tensors)


# --- shared conditions --------------------------------------------------------------------


def _plain_options(f: Facts) -> str | None:
    if f.mask or f.nan_policy != "propagate":
        return "a mask or nan_policy other than 'propagate'"
    return None


def _kernel(f: Facts) -> Any:
    dtype = torch.float32 if f.dtype == "float32" else torch.float64
    return _cpu.kernel_for(f.form, dtype)


#: the size from which the generated CPU kernel beats PyTorch's own loss, per loss class
_NEVER = 1 << 62
_C_OVER_NATIVE = {
    AbsoluteError: "c_kernel_l1",
    Huber: "c_kernel_huber",
    SmoothL1: "c_kernel_smooth_l1",
}


# --- when each route applies --------------------------------------------------------------


def _when_native_common(f: Facts) -> str | None:
    why = _native.native_ok(f.form)
    if why is not None:
        return why
    if f.dtype not in ("float32", "float64"):  # (subclasses too: PyTorch's op takes them)
        return "inputs not all float32/float64 tensors of one dtype"
    if not f.same_shape or f.numel == 0:
        return "broadcast or empty inputs"
    if f.reduction not in ("none", "mean", "sum"):
        return f"reduction {f.reduction!r} (PyTorch's losses have none, mean and sum)"
    if f.distributed:
        return "'global_mean' under torch.distributed (its count is all-reduced)"
    return _plain_options(f)


def _generated_faster(f: Facts) -> str | None:
    """Why a generated kernel serves this size instead of PyTorch's (None: it does not)."""
    if f.reduction == "none":
        return None
    key = _C_OVER_NATIVE.get(type(f.form.definition))
    small = _NEVER if key is None or f.device != "cpu" else threshold(key)
    if f.numel >= small and _when_c_kernel(f) is None:
        return f"the generated C kernel is faster from {small} elements ({key})"
    big = threshold("triton_over_native")
    gpu = f.device in _kernels.TRITON_DEVICES and f.dtype == "float32" and f.numel >= big
    if gpu and _when_triton(f) is None:
        return f"the generated Triton kernel is faster from {big} float32 elements"
    return None


def _when_native(f: Facts) -> str | None:
    if f.weight != "none":
        return "a weight (torch_native_weighted takes full-shaped ones)"
    return _when_native_common(f) or _generated_faster(f)


def _when_native_weighted(f: Facts) -> str | None:
    if f.weight != "full":
        return "no weight of the prediction's shape and dtype without grad"
    why = _when_native_common(f)
    if why is not None:
        return why
    if f.reduction == "mean" and not f.readable:
        return "a weighted mean of weights that cannot be read (traced): rescaling needs them"
    small = threshold("weighted_sum_kernel")
    if not (f.reduction == "sum" and f.numel < small) and _when_c_kernel(f) is None:
        return f"the generated C kernel is faster for a weighted mean, or a sum from {small}"
    return None


def _eager_context(f: Facts) -> str | None:
    """What only the autodiff and composite rows can take."""
    if f.params_grad:
        return "parameters that require grad (the autodiff row differentiates them)"
    if f.functorch:
        return "a torch.func transform (the composite row serves them)"
    if f.weight == "grad":
        return "a weight that requires grad (the composite row gives its gradient)"
    return None


def _when_c_kernel(f: Facts) -> str | None:
    if f.device != "cpu" or not f.tensors:
        return "not plain CPU tensors"
    if f.compiling:
        return "compiling (the compile_op row runs this kernel in the graph)"
    if "cpu" in _kernels.TRITON_DEVICES:
        return "the CPU is served by the Triton interpreter (tests)"
    why = _eager_context(f) or _plain_options(f)
    if why is not None:
        return why
    if f.reduction == "none":
        return "reduction='none' (the kernel reduces)"
    if f.weight not in ("none", "full"):
        return "weights of another shape or dtype than the prediction's"
    if not (f.same_shape and f.contiguous) or f.dtype not in ("float32", "float64"):
        return "inputs not all contiguous float32/float64 tensors of one shape and dtype"
    if f.form.slope is not None:
        return "a linear gradient: eager keeps the residual as the gradient, no pass"
    if f.form.depends_on_position():
        return "the loss differs by position (per-element parameters)"
    if _kernel(f) is None:
        return "no generated kernel for this loss and dtype (see regloss._kernels.c.status())"
    return None


def _when_triton(f: Facts) -> str | None:
    if f.device not in _kernels.TRITON_DEVICES or not f.tensors:
        return "not plain tensors on a Triton device"
    if f.compiling:
        return "compiling (the compile_op row runs this kernel in the graph)"
    why = _eager_context(f)
    if why is not None:
        return why
    if not f.same_shape or f.dtype == "other":
        return "broadcast inputs or mixed dtypes"
    if f.weight == "other" and f.reduction == "none":
        return "per-sample weights with reduction='none'"
    if not f.form.registered or f.form.depends_on_position():
        return "not a registered, position-independent loss"
    if _kernels.triton() is None:
        return "Triton is not importable or kernels are off"
    return None


def _when_compile_op(f: Facts) -> str | None:
    if not f.compiling:
        return "not compiling"
    if f.functorch or f.params_grad:
        return "a torch.func transform or parameters that require grad"
    if f.weight != "none" or _plain_options(f):
        return "a weight, a mask or NaN omission (traced as the composition instead)"
    if not f.same_shape or f.dtype == "other":
        return "broadcast inputs or mixed dtypes"
    if f.distributed:
        return "'global_mean' under torch.distributed"
    if f.aliased:
        return "one tensor passed twice"
    if not f.form.registered or f.form.depends_on_position():
        return "not a registered, position-independent loss"
    return None


def _when_autodiff(f: Facts) -> str | None:
    return None if f.params_grad else "no parameter requires grad"


def _when_composite(f: Facts) -> str | None:
    if f.params_grad:
        return "parameters that require grad (the autodiff row differentiates them)"
    if f.functorch or f.weight == "grad" or (f.compiling and f.aliased):
        return None
    return "no torch.func transform, weight that requires grad, or aliased compiled input"


def _when_eager_blocked(f: Facts) -> str | None:
    limit = threshold("eager_blocks")
    if f.numel <= limit:
        return f"{f.numel} elements, not more than {limit} (eager_blocks)"
    if f.device != "cpu" or f.compiling:
        return "not on the CPU, or compiling (each block would be a round of launches)"
    why = _eager_context(f)
    if why is not None:
        return why
    if f.weight != "none" or f.reduction == "none" or _plain_options(f):
        return "a weight, a mask or reduction='none'"
    if not f.same_shape:
        return "broadcast inputs"
    if f.form.slope is not None or f.form.depends_on_position():
        return "a linear gradient (no temporaries to block) or a position-dependent loss"
    return None


def _when_eager(f: Facts) -> str | None:
    if f.compiling and f.aliased:
        return "one tensor passed twice while compiling (the composite row traces it)"
    return _eager_context(f)


# --- how each runs ------------------------------------------------------------------------


def _prep_plain(call: _Call, f: Facts) -> Prepared:
    """The checked-inputs record of a call whose facts already prove it valid (plain
    tensors of one float dtype and shape, a full-shaped weight or none, no mask): the
    weights' values are left to the kernel (``weight_checked`` False)."""
    o = call.options
    return Prepared(
        call.inputs,
        tuple(call.inputs[0].shape),
        o.weight,
        None,
        o.reduction,
        False,
        o.weight is None,
    )


def _prep_checked(call: _Call) -> Prepared:
    """The inputs through :func:`regloss._validate.prepare` (every check, every error)."""
    inputs, o = call.inputs, call.options
    check_tensor("input", inputs[0])
    check_tensor("target", inputs[1])
    check_tensor("weight", o.weight, optional=True)
    check_tensor("mask", o.mask, optional=True)
    prep = prepare(torch, inputs[0], inputs[1], o)
    if call.form.n_inputs == 3:
        s = inputs[2]
        name = call.form.definition.scale_input
        if isinstance(s, (int, float)) and not isinstance(s, bool):
            # a Python number (torch accepts var=0.5): one value for every element
            s = torch.full((), float(s), dtype=prep.prediction.dtype, device=inputs[0].device)
        check_tensor(name, s)
        s = check_scale_input(torch, name, s, prep.shape, log_input=call.form.log_input)  # type: ignore[attr-defined]
        prep = prep._replace(inputs=(*prep.inputs, s))
    return prep


def _run_native(call: _Call, f: Facts) -> torch.Tensor:
    p, t = call.inputs[0], call.inputs[1]
    return _native.native(call.form, p, t, _enum(call))


def _enum(call: _Call) -> int:
    red = call.options.reduction
    assert red.torch_enum is not None
    return red.torch_enum


def _run_native_weighted(call: _Call, f: Facts) -> torch.Tensor | None:
    p, t = call.inputs[0], call.inputs[1]
    return _native.native_weighted(call.form, p, t, call.options.weight, _enum(call))


def _factor(prep: Prepared, f: Facts) -> Any:
    return _distributed.global_factor(prep) if f.distributed else None


def _through_carrier(
    call: _Call, f: Facts, prep: Prepared, backend: Any, result: Result | None = None
) -> torch.Tensor:
    """The loss from ``backend`` (already run: ``result``), through the carrier where a
    gradient is wanted; autocast is off inside (the loss runs in float32 or wider, as in
    autocast's policy for losses)."""
    factor_t = _factor(prep, f)
    if not f.grad:
        res = result if result is not None else backend(call.form, prep, False)
        value = _carrier.scaled(res.total, res.value_scale)
        return value if factor_t is None else value * factor_t.to(value.dtype)
    meta = Meta(prep.shape, prep.reduction, prep.upcast, prep.weight_checked)
    plan = Plan(call.form, meta, backend, result)
    if f.autocast:
        with torch.autocast(device_type=prep.prediction.device.type, enabled=False):
            return _carrier.apply(plan, prep, factor_t)
    return _carrier.apply(plan, prep, factor_t)


def _c_backend(form: Form, prep: Prepared, need_grad: bool) -> Result | None:
    k = _cpu.kernel_for(form, prep.inputs[0].dtype)
    assert k is not None
    return _cpu.forward(k, torch, prep, need_grad)


def _run_c_kernel(call: _Call, f: Facts) -> torch.Tensor | None:
    prep = _prep_plain(call, f)
    form = call.form
    if form.n_inputs == 3 and not form.log_input and has_negative(torch, prep.inputs[2]):  # type: ignore[attr-defined]
        return None  # a negative variance or scale: the eager row raises its error
    res = _c_backend(form, prep, f.grad)  # outside autograd: it may decline
    if res is None:
        return None  # the weights' values: on down the table
    return _through_carrier(call, f, prep, _c_backend, res)


def _triton_backend(form: Form, prep: Prepared, need_grad: bool) -> Result:
    tk = _kernels.triton()
    assert tk is not None
    return tk.run(form, prep, need_grad)  # type: ignore[no-any-return]


def _run_triton(call: _Call, f: Facts) -> torch.Tensor:
    return _through_carrier(call, f, _prep_checked(call), _triton_backend)


def _backend_for(form: Form, prep: Prepared) -> Any:
    """The backend the table gives a plain eager call like ``prep`` (the compile op's
    run-time choice): the rows that run a backend, in the table's order."""
    f = facts_of(form, prep.inputs, Options(prep.reduction))
    for route in TABLE.routes:
        backend = _BACKENDS.get(route.name)
        if backend is not None and route.when(f) is None:
            return backend
    return _eager.forward


OP = make_op(lambda form, prep: _backend_for(form, prep))


def _run_compile_op(call: _Call, f: Facts) -> torch.Tensor:
    prep = _prep_checked(call)
    red = prep.reduction
    return OP(list(prep.inputs), call.form.kind, call.form.key, red.name)[0]  # type: ignore[no-any-return]


def _run_autodiff(call: _Call, f: Facts) -> torch.Tensor:
    prep = _prep_checked(call)
    value = _eager.forward(AutodiffForm(call.form), torch, prep, False).value
    factor_t = _factor(prep, f)
    return value if factor_t is None else value * factor_t.to(value.dtype)  # type: ignore[no-any-return]


def _run_composite(call: _Call, f: Facts) -> torch.Tensor:
    prep = _prep_checked(call)
    return _carrier.composite(call.form, prep, _factor(prep, f))


def _eager_blocked(form: Form, prep: Prepared, need_grad: bool) -> Result:
    return _eager.forward_blocked(form, torch, prep, need_grad)


def _eager_backend(form: Form, prep: Prepared, need_grad: bool) -> Result:
    return _eager.forward(form, torch, prep, need_grad)


def _run_eager_blocked(call: _Call, f: Facts) -> torch.Tensor:
    return _through_carrier(call, f, _prep_checked(call), _eager_blocked)


def _run_eager(call: _Call, f: Facts) -> torch.Tensor:
    return _through_carrier(call, f, _prep_checked(call), _eager_backend)


#: the backends behind the carrier's rows, by route (the compile op's run-time choice)
_BACKENDS = {
    "c_kernel": _c_backend,
    "triton": _triton_backend,
    "eager_blocked": _eager_blocked,
    "eager": _eager_backend,
}

TABLE = Table(
    "torch",
    [
        Route(
            "torch_native",
            _when_native,
            _run_native,
            "PyTorch's own fused loss (mse, l1, huber, smooth_l1), autograd included",
            ("c_kernel_l1", "c_kernel_huber", "c_kernel_smooth_l1", "triton_over_native"),
        ),
        Route(
            "torch_native_weighted",
            _when_native_weighted,
            _run_native_weighted,
            "PyTorch's elementwise loss times the weights, then a dot or sum",
            ("weighted_sum_kernel",),
        ),
        Route(
            "c_kernel",
            _when_c_kernel,
            _run_c_kernel,
            "the generated C kernel: value and gradient in one pass (weights too)",
            ("c_threads",),
        ),
        Route(
            "triton",
            _when_triton,
            _run_triton,
            "the generated Triton kernel: every option in one pass",
            ("gpu_scale_on_device",),
        ),
        Route(
            "compile_op",
            _when_compile_op,
            _run_compile_op,
            "under torch.compile: one custom op running the C or Triton kernel",
        ),
        Route(
            "autodiff",
            _when_autodiff,
            _run_autodiff,
            "parameters that require grad: autograd through the overflow-safe formula",
        ),
        Route(
            "composite",
            _when_composite,
            _run_composite,
            "elementwise Function with analytic derivatives, reduced by torch ops",
        ),
        Route(
            "eager_blocked",
            _when_eager_blocked,
            _run_eager_blocked,
            "eager, in blocks that keep the temporaries in cache (CPU)",
            ("eager_blocks", "eager_block"),
        ),
        Route("eager", _when_eager, _run_eager, "the eager composition of the definition"),
    ],
)


def call(form: Form, inputs: tuple[Any, ...], options: Options) -> torch.Tensor:
    """The loss of ``inputs`` (prediction, target[, scale input]) by the first route that
    applies."""
    if options.reduction.all_reduced and not _distributed.initialised():
        options = options._replace(reduction=get_reduction("mean"))  # no process group
    c = _Call(form, inputs, options)
    f = facts_of(form, inputs, options)
    route = TABLE.choose(f)
    out = route.run(c, f)
    while out is None:  # the weights' values: on down the table
        route = TABLE.after(route, f)
        out = route.run(c, f)
    return out  # type: ignore[no-any-return]


def explain_call(form: Form, inputs: tuple[Any, ...], options: Options) -> Explanation:
    if options.reduction.all_reduced and not _distributed.initialised():
        options = options._replace(reduction=get_reduction("mean"))
    return TABLE.explain(facts_of(form, inputs, options))
