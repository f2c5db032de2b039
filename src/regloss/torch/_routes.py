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

from typing import Any

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
from ._carrier import Plan
from ._ops import make_op

__all__ = ["OP", "TABLE", "Facts", "call", "explain_call", "facts_of"]

_NAMES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
}


_T = torch.Tensor
_UNREAD = object()
_is_compiling = torch.compiler.is_compiling
_functorch = torch._C._are_functorch_transforms_active
_autocast = torch._C._is_any_autocast_enabled
_grad_enabled = torch.is_grad_enabled


class Facts:
    """What a torch call is, from metadata: the route table's input, one record.

    The first group (form, tensors, dtype, device, numel, same_shape, weight, mask,
    nan_policy, reduction, distributed) is read when the record is made; the second
    (compiling, contiguous, grad, functorch, params_grad, aliased, readable) when a row
    first asks for one of them: PyTorch's own losses at small sizes need only the first,
    and a step there costs about a microsecond per ten attribute reads.
    """

    __slots__ = (
        "_c_kernel",
        "_compiling",
        "_contiguous",
        "_functorch",
        "_grad",
        "_inputs",
        "_kernel",
        "_mask",
        "_more",
        "_params_grad",
        "_readable",
        "_weight",
        "device",
        "distributed",
        "dtype",
        "form",
        "mask",
        "nan_policy",
        "numel",
        "reduction",
        "same_shape",
        "tensors",
        "weight",
    )
    #: the regloss Form of the call
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
    #: 'none'; 'full' (a tensor of the prediction's shape and dtype, no grad); 'grad' (it
    #: requires grad); 'other' (per sample, another dtype)
    weight: str
    mask: bool
    nan_policy: str
    reduction: str
    #: 'global_mean' under an initialised process group
    distributed: bool
    #: the generated kernel, where the c_kernel row's condition found it
    _kernel: Any

    def __init__(self, form: Form, inputs: tuple[Any, ...], options: Options) -> None:
        self.form = form
        self._inputs = inputs
        self._c_kernel: Any = _UNREAD
        self._weight = weight = options.weight
        self._mask = options.mask
        self.mask = options.mask is not None
        self.nan_policy = options.nan_policy
        red = options.reduction
        self.reduction = red.name
        self.distributed = red.all_reduced and _distributed.initialised()
        self._more = False
        p, t = inputs[0], inputs[1]
        s = inputs[2] if len(inputs) == 3 else None
        tensors = type(p) is _T and type(t) is _T and (s is None or type(s) is _T)
        if not tensors and not (
            isinstance(p, _T) and isinstance(t, _T) and (s is None or isinstance(s, _T))
        ):
            # not tensors: facts that only the eager row takes (it raises the checks' error)
            self.tensors, self.dtype, self.device, self.numel = False, "other", "cpu", 0
            self.same_shape, self.weight = False, "other"
            self._more, self._contiguous, self._grad, self._functorch = True, False, False, False
            self._params_grad, self._readable = False, False
            self._compiling = _is_compiling()
            return
        dt, shape = p.dtype, p.shape
        if s is None:
            one = t.dtype is dt
            self.same_shape = t.shape == shape
        else:
            one = t.dtype is dt and s.dtype is dt
            self.same_shape = t.shape == shape and s.shape == shape
        self.dtype = _NAMES.get(dt, "other") if one else "other"
        self.device = "cpu" if p.is_cpu else p.device.type
        self.numel = p.numel()
        if weight is None:
            self.weight = "none"
        elif not isinstance(weight, _T):
            self.weight = "other"
        elif weight.requires_grad:
            self.weight = "grad"
        elif weight.dtype is dt and weight.shape == shape:
            self.weight = "full"
            tensors = tensors and type(weight) is _T
        else:
            self.weight = "other"
        self.tensors = tensors

    def _read_more(self) -> None:
        """The second group (see the class docstring)."""
        inputs = self._inputs
        p, t = inputs[0], inputs[1]
        s = inputs[2] if len(inputs) == 3 else None
        if s is None:
            contiguous = p.is_contiguous() and t.is_contiguous()
            grad = _grad_enabled() and (p.requires_grad or t.requires_grad)
        else:
            contiguous = p.is_contiguous() and t.is_contiguous() and s.is_contiguous()
            grad = _grad_enabled() and (p.requires_grad or t.requires_grad or s.requires_grad)
        if self.weight == "full":
            contiguous = contiguous and self._weight.is_contiguous()
        self._contiguous, self._grad = contiguous, grad
        self._functorch = functorch = _functorch()
        self._compiling = compiling = _is_compiling()
        form = self.form
        self._params_grad = not form.plain and form.params_need_grad()
        self._readable = self.tensors and not (compiling or functorch or self.device == "meta")
        self._more = True

    @property
    def compiling(self) -> bool:
        """Under torch.compile (Dynamo tracing)."""
        if not self._more:
            self._read_more()
        return self._compiling

    @property
    def contiguous(self) -> bool:
        """Every input (and a weight) contiguous."""
        if not self._more:
            self._read_more()
        return self._contiguous

    @property
    def grad(self) -> bool:
        """Grad mode is on and an input requires grad."""
        if not self._more:
            self._read_more()
        return self._grad

    @property
    def functorch(self) -> bool:
        """A torch.func transform is active."""
        if not self._more:
            self._read_more()
        return self._functorch

    @property
    def params_grad(self) -> bool:
        """A parameter of the loss is a tensor that requires grad."""
        if not self._more:
            self._read_more()
        return self._params_grad

    @property
    def readable(self) -> bool:
        """The values can be read on the host (not meta, fake, compiling or torch.func)."""
        if not self._more:
            self._read_more()
        return self._readable

    @property
    def aliased(self) -> bool:
        """One tensor passed twice (read only while compiling, where it matters)."""
        return self.compiling and _aliased(self._inputs, self._weight, self._mask)

    _FIELDS = (
        "tensors", "dtype", "device", "numel", "same_shape", "contiguous", "weight", "mask",
        "nan_policy", "reduction", "grad", "compiling", "functorch", "params_grad", "aliased",
        "distributed", "readable",
    )  # fmt: skip

    def asdict(self) -> dict[str, Any]:
        """Every fact, read now."""
        return {name: getattr(self, name) for name in self._FIELDS}

    def __repr__(self) -> str:
        facts = ", ".join(f"{k}={v!r}" for k, v in self.asdict().items())
        return f"Facts({self.form!r}, {facts})"


def facts_of(form: Form, inputs: tuple[Any, ...], options: Options) -> Facts:
    """The facts of a call, from metadata; never raises (unchecked inputs give facts that
    only the eager row accepts, and it raises the checked error)."""
    return Facts(form, inputs, options)


def _aliased(inputs: tuple[Any, ...], weight: Any, mask: Any) -> bool:
    """Whether one tensor is passed twice (Dynamo cannot trace an autograd.Function given
    one tensor twice, e.g. the prediction also as the log-variance)."""
    tensors = [x for x in (*inputs, weight, mask) if x is not None]
    return len({id(x) for x in tensors}) < len(tensors)


# --- shared conditions --------------------------------------------------------------------


def _plain_options(f: Facts) -> str | None:
    if f.mask or f.nan_policy != "propagate":
        return "a mask or nan_policy other than 'propagate'"
    return None


_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


#: the size from which the generated CPU kernel beats PyTorch's own loss, per loss class
_NEVER = 1 << 62
_C_OVER_NATIVE = {
    AbsoluteError: "c_kernel_l1",
    Huber: "c_kernel_huber",
    SmoothL1: "c_kernel_smooth_l1",
}


# --- when each route applies --------------------------------------------------------------


def _native_of(form: Form) -> tuple[str | None, str | None, Any]:
    """(why PyTorch has no loss of this form, or None; the threshold where the generated
    kernel takes over from it; PyTorch's op), read once per form."""
    found = form.__dict__.get("_native")
    if found is None:
        cls = type(form.definition)
        found = (_native.native_ok(form), _C_OVER_NATIVE.get(cls), _native.op_of(form))
        if not _is_compiling():  # Dynamo reads a new attribute as a mutation
            object.__setattr__(form, "_native", found)
    return found


def _when_native_common(f: Facts, why: str | None) -> str | None:
    """What both native rows need (``why``: the form's own answer, cached)."""
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
    if f.mask or f.nan_policy != "propagate":
        return "a mask or nan_policy other than 'propagate'"
    return None


def _generated_faster(f: Facts, key: str | None) -> str | None:
    """Why a generated kernel serves this size instead of PyTorch's (None: it does not);
    ``key``: the threshold of the form's class on the CPU."""
    if f.reduction == "none" or (key is None and f.device not in _kernels.TRITON_DEVICES):
        return None
    small = _NEVER if key is None or f.device != "cpu" else threshold(key)
    if f.numel >= small and _when_c_kernel(f) is None:
        return f"the generated C kernel is faster from {small} elements ({key})"
    big = threshold("triton_over_native")
    gpu = f.device in _kernels.TRITON_DEVICES and f.dtype == "float32" and f.numel >= big
    if gpu and _when_triton(f) is None:
        return f"the generated Triton kernel is faster from {big} float32 elements"
    return None


_NATIVE_FLOATS = frozenset(("float32", "float64"))
_NATIVE_REDUCTIONS = frozenset(("none", "mean", "sum"))


def _when_native(f: Facts) -> str | None:
    if f.weight != "none":
        return "a weight (torch_native_weighted takes full-shaped ones)"
    why, key, _ = f.form.__dict__.get("_native") or _native_of(f.form)
    if (
        why is not None
        or f.dtype not in _NATIVE_FLOATS
        or not f.same_shape
        or not f.numel
        or f.reduction not in _NATIVE_REDUCTIONS
        or f.distributed
        or f.mask
        or f.nan_policy != "propagate"
    ):
        return _when_native_common(f, why)  # (the reason)
    if key is None and f.device not in _kernels.TRITON_DEVICES:
        return None  # no generated kernel is measured faster than PyTorch's here
    return _generated_faster(f, key)


def _when_native_weighted(f: Facts) -> str | None:
    if f.weight != "full":
        return "no weight of the prediction's shape and dtype without grad"
    why = _when_native_common(f, _native_of(f.form)[0])
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
    why = f._c_kernel  # the weighted row asks first, then the table: one answer per call
    if why is _UNREAD:
        why = f._c_kernel = _c_kernel_reason(f)
    return why  # type: ignore[no-any-return]


def _c_kernel_reason(f: Facts) -> str | None:
    if "cpu" in _kernels.TRITON_DEVICES:
        return "the CPU is served by the Triton interpreter (tests)"
    if f.params_grad or f.functorch or f.weight == "grad":
        return _eager_context(f)
    if f.mask or f.nan_policy != "propagate":
        return "a mask or nan_policy other than 'propagate'"
    if f.reduction == "none":
        return "reduction='none' (the kernel reduces)"
    if f.weight == "other":
        return "weights of another shape or dtype than the prediction's"
    if not (f.same_shape and f.contiguous) or f.dtype not in ("float32", "float64"):
        return "inputs not all contiguous float32/float64 tensors of one shape and dtype"
    form = f.form
    if form.slope is not None:
        return "a linear gradient: eager keeps the residual as the gradient, no pass"
    if not form.kernel_eligible:
        return "the loss differs by position, or is not a registered class"
    k = f._kernel = _cpu.kernel_for(form, _TORCH_DTYPES[f.dtype])
    if k is None:
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


def _prep_plain(f: Facts, inputs: tuple[Any, ...], o: Options) -> Prepared:
    """The checked-inputs record of a call whose facts already prove it valid (plain
    tensors of one float dtype and shape, a full-shaped weight or none, no mask): the
    weights' values are left to the kernel (``weight_checked`` False)."""
    return Prepared(
        inputs,
        tuple(inputs[0].shape),
        o.weight,
        None,
        o.reduction,
        False,
        o.weight is None,
    )


def _prep_checked(f: Facts, inputs: tuple[Any, ...], o: Options) -> Prepared:
    """The inputs through :func:`regloss._validate.prepare` (every check, every error)."""
    check_tensor("input", inputs[0])
    check_tensor("target", inputs[1])
    check_tensor("weight", o.weight, optional=True)
    check_tensor("mask", o.mask, optional=True)
    prep = prepare(torch, inputs[0], inputs[1], o)
    form = f.form
    if form.n_inputs == 3:
        s = inputs[2]
        name = form.definition.scale_input
        if isinstance(s, (int, float)) and not isinstance(s, bool):
            # a Python number (torch accepts var=0.5): one value for every element
            s = torch.full((), float(s), dtype=prep.prediction.dtype, device=inputs[0].device)
        check_tensor(name, s)
        s = check_scale_input(torch, name, s, prep.shape, log_input=form.log_input)  # type: ignore[attr-defined]
        prep = prep._replace(inputs=(*prep.inputs, s))
    return prep


def _run_native(f: Facts, inputs: tuple[Any, ...], o: Options) -> torch.Tensor:
    form = f.form
    op, params = (form.__dict__.get("_native") or _native_of(form))[2]
    return op(inputs[0], inputs[1], o.reduction.torch_enum, *params)  # type: ignore[no-any-return]


def _run_native_weighted(f: Facts, inputs: tuple[Any, ...], o: Options) -> torch.Tensor | None:
    red: Any = o.reduction.torch_enum
    return _native.native_weighted(f.form, inputs[0], inputs[1], o.weight, red)


def _factor(prep: Prepared, f: Facts) -> Any:
    return _distributed.global_factor(prep) if f.distributed else None


def _through_carrier(
    f: Facts,
    prep: Prepared,
    backend: Any,
    result: Result | None = None,
    fresh: bool = False,
) -> torch.Tensor:
    """The loss from ``backend`` (already run: ``result``), through the carrier where a
    gradient is wanted; autocast is off inside (the loss runs in float32 or wider, as in
    autocast's policy for losses)."""
    factor_t = _factor(prep, f)
    if not f.grad:
        res = result if result is not None else backend(f.form, prep, False)
        value = _carrier.scaled(res.total, res.value_scale)
        return value if factor_t is None else value * factor_t.to(value.dtype)
    plan = Plan(f.form, backend, fresh)
    if _autocast():  # not a routing fact: every route that gets here turns it off
        with torch.autocast(device_type=prep.prediction.device.type, enabled=False):
            return _carrier.apply(plan, prep, factor_t, result, f.compiling)
    return _carrier.apply(plan, prep, factor_t, result, f.compiling)


def _c_backend(form: Form, prep: Prepared, need_grad: bool) -> Result | None:
    k = _cpu.kernel_for(form, prep.inputs[0].dtype)
    assert k is not None
    return _cpu.forward(k, torch, prep, need_grad)


def _run_c_kernel(f: Facts, inputs: tuple[Any, ...], o: Options) -> torch.Tensor | None:
    form = f.form
    if form.n_inputs == 3 and not form.log_input and has_negative(torch, inputs[2]):  # type: ignore[attr-defined]
        return None  # a negative variance or scale: the eager row raises its error
    prep = _prep_plain(f, inputs, o)
    k: Any = f._kernel  # found by the row's condition, which ran before
    grad = f.grad
    res = _cpu.forward(k, torch, prep, grad)  # outside autograd: it may decline
    if res is None:
        return None  # the weights' values: on down the table
    factor_t = _distributed.global_factor(prep) if f.distributed else None
    if not grad:
        total: torch.Tensor = res.total
        return total if factor_t is None else total * factor_t.to(total.dtype)
    plan = form.__dict__.get("_c_plan")
    if plan is None:
        plan = Plan(form, _c_backend, True)
        object.__setattr__(form, "_c_plan", plan)
    if _autocast():
        with torch.autocast(device_type="cpu", enabled=False):
            return _carrier.apply_kernel(plan, prep, factor_t, res)
    return _carrier.apply_kernel(plan, prep, factor_t, res)


def _triton_backend(form: Form, prep: Prepared, need_grad: bool) -> Result:
    tk = _kernels.triton()
    assert tk is not None
    return tk.run(form, prep, need_grad)  # type: ignore[no-any-return]


def _run_triton(f: Facts, inputs: tuple[Any, ...], o: Options) -> torch.Tensor:
    return _through_carrier(f, _prep_checked(f, inputs, o), _triton_backend)


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


def _run_compile_op(f: Facts, inputs: tuple[Any, ...], o: Options) -> torch.Tensor:
    prep = _prep_checked(f, inputs, o)
    red = prep.reduction
    return OP(list(prep.inputs), f.form.kind, f.form.key, red.name)[0]  # type: ignore[no-any-return]


def _run_autodiff(f: Facts, inputs: tuple[Any, ...], o: Options) -> torch.Tensor:
    prep = _prep_checked(f, inputs, o)
    value = _eager.forward(AutodiffForm(f.form), torch, prep, False).value
    factor_t = _factor(prep, f)
    return value if factor_t is None else value * factor_t.to(value.dtype)  # type: ignore[no-any-return]


def _run_composite(f: Facts, inputs: tuple[Any, ...], o: Options) -> torch.Tensor:
    prep = _prep_checked(f, inputs, o)
    return _carrier.composite(f.form, prep, _factor(prep, f))


def _eager_blocked(form: Form, prep: Prepared, need_grad: bool) -> Result:
    return _eager.forward_blocked(form, torch, prep, need_grad)


def _eager_backend(form: Form, prep: Prepared, need_grad: bool) -> Result:
    return _eager.forward(form, torch, prep, need_grad)


def _run_eager_blocked(f: Facts, inputs: tuple[Any, ...], o: Options) -> torch.Tensor:
    return _through_carrier(f, _prep_checked(f, inputs, o), _eager_blocked)


def _run_eager(f: Facts, inputs: tuple[Any, ...], o: Options) -> torch.Tensor:
    return _through_carrier(f, _prep_checked(f, inputs, o), _eager_backend)


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
    f = facts_of(form, inputs, options)
    if TABLE._forced or TABLE._env:
        route = TABLE.choose(f)
    else:  # TABLE.choose, written out: this runs on every call
        for route in _ROUTES:
            if route.when(f) is None:
                break
    out = route.run(f, inputs, options)
    while out is None:  # the weights' values: on down the table
        route = TABLE.after(route, f)
        out = route.run(f, inputs, options)
    return out  # type: ignore[no-any-return]


_ROUTES = TABLE.routes


def explain_call(form: Form, inputs: tuple[Any, ...], options: Options) -> Explanation:
    if options.reduction.all_reduced and not _distributed.initialised():
        options = options._replace(reduction=get_reduction("mean"))
    return TABLE.explain(facts_of(form, inputs, options))
