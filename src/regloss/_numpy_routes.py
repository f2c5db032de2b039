"""The NumPy front-end's routes: how a ``regloss.numpy`` call runs, in one table.

Every NumPy entry point (the per-loss functions, ``loss``, ``value_and_grad``, ``nll``,
``nll_value_and_grads``, and the metrics that evaluate losses) checks its inputs with
:func:`regloss._validate.prepare`, describes the call by its :class:`Facts` and runs the
first route of :data:`TABLE` that applies (see :mod:`regloss._dispatch`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import _eager
from ._backend import Result
from ._dispatch import Explanation, Route, Table
from ._eager import sum_to_shape
from ._kernels import cpu
from ._reduction import Options
from ._thresholds import value as threshold
from ._validate import Prepared, check_scale_input, prepare
from .losses import Form

__all__ = ["TABLE", "Facts", "evaluate", "explain_call", "facts_of", "prepare_arrays"]


class Facts(NamedTuple):
    """What a NumPy call is, from metadata: the route table's input."""

    form: Form
    #: the inputs' one dtype ('float32', 'float64', 'float16', ...) or 'mixed'
    dtype: str
    numel: int
    #: every input of one shape (no broadcasting)
    same_shape: bool
    #: every input (and a weight) C-contiguous
    contiguous: bool
    #: 'none', 'full' (the prediction's shape and dtype) or 'other' (per sample, cast)
    weight: str
    #: a mask or NaN omission
    mask: bool
    reduction: str
    grad: bool
    #: 'none'; 'into' where ``out=`` can be written blockwise; 'copy' where it is copied
    out: str


def _out_kind(prep: Prepared, out: Any) -> str:
    if out is None:
        return "none"
    p, t = prep.inputs[0], prep.inputs[1]
    into = (
        prep.plain
        and not prep.reduction.elementwise
        and not prep.upcast
        and out.flags.c_contiguous
        and p.shape == t.shape
        and p.dtype == t.dtype == out.dtype
    )
    return "into" if into else "copy"


def facts_of(form: Form, prep: Prepared, need_grad: bool, out: Any = None) -> Facts:
    """The facts of a checked NumPy call."""
    inputs = prep.inputs
    dt = inputs[0].dtype
    one = all(x.dtype == dt for x in inputs)
    w = prep.weight
    weight = "none"
    if w is not None:
        weight = "full" if w.dtype == dt and w.shape == inputs[0].shape else "other"
    shape = inputs[0].shape
    arrays = (*inputs, *(() if w is None else (w,)))
    return Facts(
        form,
        str(dt) if one else "mixed",
        int(np.prod(prep.shape)),
        all(x.shape == shape for x in inputs) and tuple(shape) == prep.shape,
        all(x.flags.c_contiguous for x in arrays),
        weight,
        prep.keep is not None,
        prep.reduction.name,
        need_grad,
        _out_kind(prep, out),
    )


def _kernel(f: Facts) -> Any:
    return cpu.kernel_for(f.form, np.dtype(f.dtype)) if f.dtype in ("float32", "float64") else None


# --- when each route applies ------------------------------------------------------------


def _when_c_kernel_into(f: Facts) -> str | None:
    if f.out != "into":
        return "no out= that the kernel can write (out=, no option, one shape and dtype)"
    if not f.contiguous:
        return "inputs not all C-contiguous"
    if f.form.depends_on_position():
        return "the loss differs by position (per-element parameters)"
    if _kernel(f) is None:
        return "no generated kernel for this loss and dtype (see regloss._kernels.c.status())"
    return None


def _when_eager_into(f: Facts) -> str | None:
    if f.out != "into":
        return "no out= that can be written blockwise (out=, no option, one shape and dtype)"
    if f.form.depends_on_position():
        return "the loss differs by position (per-element parameters)"
    return None


def _when_c_kernel(f: Facts) -> str | None:
    if f.mask:
        return "a mask or nan_policy='omit' (the kernel has no mask)"
    if f.reduction == "none":
        return "reduction='none' (the kernel reduces)"
    if f.weight == "other":
        return "weights of another shape or dtype than the prediction's"
    if not (f.same_shape and f.contiguous) or f.dtype not in ("float32", "float64"):
        return "inputs not all C-contiguous float32/float64 arrays of one shape and dtype"
    if f.form.slope is not None:
        return "a linear gradient: eager keeps the residual as the gradient, no pass"
    if f.form.depends_on_position():
        return "the loss differs by position (per-element parameters)"
    if _kernel(f) is None:
        return "no generated kernel for this loss and dtype (see regloss._kernels.c.status())"
    return None


def _when_eager_blocked(f: Facts) -> str | None:
    limit = threshold("eager_blocks")
    if f.numel <= limit:
        return f"{f.numel} elements, not more than {limit} (eager_blocks)"
    if f.mask or f.weight != "none" or f.reduction == "none":
        return "a weight, a mask or reduction='none'"
    if not f.same_shape:
        return "broadcast inputs"
    if f.form.slope is not None or f.form.depends_on_position():
        return "a linear gradient (no temporaries to block) or a position-dependent loss"
    return None


def _always(f: Facts) -> str | None:
    return None


# --- how each runs ------------------------------------------------------------------------


def _run_c_kernel_into(form: Form, prep: Prepared, need_grad: bool, out: Any) -> Result:
    k = cpu.kernel_for(form, prep.inputs[0].dtype)
    assert k is not None
    total = cpu.forward_into(k, form, prep, out)
    return Result(out.dtype.type(total), (out,), 1.0, 1.0)


def _run_eager_into(form: Form, prep: Prepared, need_grad: bool, out: Any) -> Result:
    return Result(out.dtype.type(_eager.forward_into(form, prep, out)), (out,), 1.0, 1.0)


def _run_c_kernel(form: Form, prep: Prepared, need_grad: bool, out: Any) -> Result | None:
    k = cpu.kernel_for(form, prep.inputs[0].dtype)
    assert k is not None
    return cpu.forward(k, np, prep, need_grad)


def _run_eager_blocked(form: Form, prep: Prepared, need_grad: bool, out: Any) -> Result:
    return _eager.forward_blocked(form, np, prep, need_grad)


def _run_eager(form: Form, prep: Prepared, need_grad: bool, out: Any) -> Result:
    return _eager.forward(form, np, prep, need_grad)


TABLE = Table(
    "numpy",
    [
        Route(
            "c_kernel_into",
            _when_c_kernel_into,
            _run_c_kernel_into,
            "value_and_grad(out=): the generated C kernel writes the gradient into out",
        ),
        Route(
            "eager_into",
            _when_eager_into,
            _run_eager_into,
            "value_and_grad(out=): eager, in cache-sized blocks written into out",
            ("into_block",),
        ),
        Route(
            "c_kernel",
            _when_c_kernel,
            _run_c_kernel,
            "the generated C kernel: value and gradient in one pass (weights too)",
        ),
        Route(
            "eager_blocked",
            _when_eager_blocked,
            _run_eager_blocked,
            "eager, in blocks that keep the temporaries in cache",
            ("eager_blocks", "eager_block"),
        ),
        Route("eager", _always, _run_eager, "the eager composition of the definition"),
    ],
)


def evaluate(
    form: Form, prep: Prepared, need_grad: bool, out: Any = None, wanted: tuple[int, ...] = (0,)
) -> tuple[Any, tuple[Any, ...]]:
    """``(value, gradients of the inputs in wanted)`` of a checked NumPy call, by the first
    route that applies; a gradient in ``out`` where given."""
    f = facts_of(form, prep, need_grad, out)
    route = TABLE.choose(f)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        res = route.run(form, prep, need_grad, out)
        while res is None:  # the weights' values: on down the table
            route = TABLE.after(route, f)
            res = route.run(form, prep, need_grad, out)
        value = res.value
        value = value[()] if np.ndim(value) == 0 else value
        if not need_grad:
            return value, ()
        grads = tuple(_input_grad(form, prep, res, i, out) for i in wanted)
    return value, grads


def _input_grad(form: Form, prep: Prepared, res: Result, i: int, out: Any) -> Any:
    arg, sign = form.feeds[i]
    g = res.grads[arg]
    assert g is not None
    scale = res.grad_scale
    if g is out and out is not None and sign == 1.0 and isinstance(scale, float) and scale == 1:
        return out  # written by the route
    x = prep.inputs[i]
    if not (sign == 1.0 and isinstance(scale, float) and scale == 1.0):
        g = g * (sign * scale)  # (a kernel folds the scale in: no pass then)
    if tuple(g.shape) != prep.shape:
        g = np.broadcast_to(g, prep.shape)
    g = sum_to_shape(np, g, tuple(x.shape))
    if i == 0:
        if out is not None:
            np.copyto(out, g, casting="same_kind")
            return out
        return np.asarray(g).astype(x.dtype, copy=False)
    return np.asarray(g)


# --- checked inputs -----------------------------------------------------------------------


def _as_array(x: Any, name: str = "input") -> Any:
    if type(x) is np.ndarray:
        return x
    if isinstance(x, np.matrix):
        raise TypeError(
            f"{name} is an np.matrix, whose * is a matrix product; pass np.asarray({name})"
        )
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a masked array only where masked arrays are not accepted; pass "
            f"np.ma.getdata({name}) and its mask as mask="
        )
    return np.asarray(x)


def _unmask(prediction: Any, target: Any, mask: Any) -> tuple[Any, Any, Any]:
    """Masked arrays (np.ma) honoured: their masked entries are left out through ``mask=``
    exactly as a user mask would leave them out (weighted counts, zero gradient)."""
    if not (isinstance(prediction, np.ma.MaskedArray) or isinstance(target, np.ma.MaskedArray)):
        return prediction, target, mask
    hidden = np.ma.getmaskarray(prediction) | np.ma.getmaskarray(target)
    keep = ~hidden if mask is None else np.logical_and(_as_array(mask, "mask"), ~hidden)
    return np.ma.getdata(prediction), np.ma.getdata(target), keep


def prepare_arrays(
    prediction: Any, target: Any, options: Options, form: Form, scale: Any = None
) -> Prepared:
    """The checked inputs of a NumPy call (arrays or array-likes; np.ma honoured); an
    NLL's scale input checked and appended."""
    prediction, target, mask = _unmask(prediction, target, options.mask)
    weight = options.weight
    opts = options._replace(
        weight=None if weight is None else _as_array(weight, "weight"),
        mask=None if mask is None else _as_array(mask, "mask"),
    )
    prep = prepare(np, _as_array(prediction, "prediction"), _as_array(target, "target"), opts)
    if form.n_inputs == 3:
        name = form.definition.scale_input
        s = check_scale_input(
            np,
            name,
            _as_array(scale),
            prep.shape,
            log_input=bool(form.log_input),  # type: ignore[attr-defined]
        )
        prep = prep._replace(inputs=(*prep.inputs, s))
    return prep


def explain_call(form: Form, prep: Prepared, need_grad: bool, out: Any = None) -> Explanation:
    return TABLE.explain(facts_of(form, prep, need_grad, out))
