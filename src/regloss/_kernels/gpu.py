"""GPU kernels generated from the traced definitions, in Triton.

For a form (:mod:`regloss.losses._form`), :func:`source` writes one Triton module from the
definition's graph (``trace.py``), the same graph the C kernels come from:

* ``rl_fwd``: reads the k inputs (prediction, target, an NLL's scale input) and the
  optional weight and mask once; an element the mask (or ``nan_policy='omit'`` on a NaN
  target) drops is evaluated at the form's neutral arguments and weighed 0; writes each
  argument's gradient times f·s (f = weight × keep, s = num/den the reduction's scale
  where it is known before the pass: 1/N for an unweighted mean), the value times f for
  ``reduction='none'``, and one partial sum of value·f·s (stored in float64) and of f per
  block of ``BLOCK`` elements, which the finishing program adds in float64. A training
  step is then one launch forward and one multiplication by the incoming gradient
  backward;
* ``rl_elem``: value, gradients and Hessian of given arguments (the double-backward
  factors; the range tests).

Inputs may be float32, float64, float16 or bfloat16; the arithmetic runs in float64 for
float64 inputs and float32 otherwise, which is also the dtype of the written gradients.

Transcendental functions and the square root come from ``libdevice`` on the GPU (full
precision; ``tl.exp`` and ``tl.log`` are approximate, ``tl.sqrt_rn`` is float32 only).
Triton's interpreter (``TRITON_INTERPRET=1``), which runs the kernels on the CPU for
testing, has no libdevice: there the same names are bound to NumPy's functions.
Everything else — loads, masks, selects, the block sums — is the generated
kernel's own code, run by the interpreter exactly as written.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import sys
from typing import Any

import numpy as np

from .._backend import Result, compute_dtype, factor
from .._thresholds import value as threshold
from .._validate import Prepared
from ..losses import Form
from .trace import Emitter, Untraceable, trace_form

__all__ = ["BLOCK", "elementwise", "forward", "run", "scale_into", "serves", "source"]

#: elements per program, and warps per program: measured by ``benchmarks/tune_gpu.py`` on
#: an H200 at 2^26 elements, 4,096 x 8 moved 0.90-0.94 of copy bandwidth for the cheap
#: losses against 0.78-0.79 with 1,024 x 4, and no loss lost more than 0.01
BLOCK = 4096
NUM_WARPS = 8
#: partial sums the finishing program adds per step: 2,048 float64 loads in flight kept the
#: kernel at 64 registers at 1,024 x 4 (4,096 took 94, fewer programs per multiprocessor)
RBLOCK = 2048
#: up to this many blocks (2^26 elements) the finishing program adds the partial sums (at
#: most 8 steps), saving the host two launches where the host bounds the step; beyond,
#: PyTorch's parallel sum of the partials is the shorter tail
FINAL_MAX_BLOCKS = 1 << 14
#: below this many elements the backward multiplies by the incoming gradient with PyTorch's
#: ``mul_``: its launch costs the host less than a Triton launch (measured 1.07-1.22x on an
#: H200 from 2^10 to 2^20), and what ``rl_scale`` saves the device (8 bytes an element
#: where the incoming gradient is 1) is a few microseconds there
SCALE_ON_DEVICE_FROM = threshold("gpu_scale_on_device")

#: functions taken from libdevice on the GPU (and NumPy in the interpreter)
_MATH = ("exp", "expm1", "log", "log1p", "sinh", "tanh", "pow", "sqrt")


class _Emitter(Emitter):
    def __init__(self, leaves: tuple[str, ...]) -> None:
        super().__init__(leaves)

    def literal(self, x: float) -> str:
        if math.isnan(x):
            raise Untraceable("NaN constant")
        if math.isinf(x):
            return "INF" if x > 0 else "(-INF)"
        return repr(float(x))

    def const(self, x: float) -> str:
        # typed as the compute dtype (a bare literal in tl.where would make it float32)
        return f"(zero + {self.literal(x)})"

    def assign(self, name: str, expr: str, boolean: bool) -> str:
        return f"    {name} = {expr}"

    def call(self, fn: str, args: list[str]) -> str:
        if fn in ("abs", "floor"):
            return f"tl.{fn}({args[0]})"
        return f"M_{fn}({', '.join(args)})"

    def select(self, cond: str, a: str, b: str) -> str:
        return f"tl.where({cond}, {a}, {b})"

    def negate(self, cond: str) -> str:
        return f"({cond} == 0)"

    def isfinite(self, v: str) -> str:
        return f"(({v} == {v}) & (tl.abs({v}) != INF))"


_OFFSETS = """    pid = tl.program_id(0)
    if I64:  # 64-bit offsets: pid * BLOCK passes 2^31 from 2^31 elements (8 GiB of float32)
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:  # fewer address instructions where 32 bits hold every offset
        offs = pid * BLOCK + tl.arange(0, BLOCK)"""

_PROLOGUE = (
    _OFFSETS
    + """
    m = offs < n
    if F64:
        zero = tl.zeros([BLOCK], dtype=tl.float64)
    else:
        zero = tl.zeros([BLOCK], dtype=tl.float32)"""
)


def source(form: Form) -> str:
    """The Triton module of ``form``'s kernels (``rl_fwd``, ``rl_elem``)."""
    g = trace_form(form)
    k, m = len(g.inputs), len(g.args)
    fwd = _Emitter(g.inputs + g.args)
    arg_names = [fwd.value(a) for a in g.arguments]
    # a dropped element is evaluated at the neutral arguments (finite), then weighed 0
    fwd.lines += [
        f"    a{j} = tl.where(keep, {name}, zero + {float(n)!r})"
        for j, (name, n) in enumerate(zip(arg_names, form.neutral, strict=True))
    ]
    f_val = fwd.value(g.value)
    f_grads = [fwd.value(x) for x in g.grads]
    el = _Emitter(g.args)
    e_outs = [el.value(x) for x in (g.value, *g.grads, *g.hess)]
    binds = "\n".join(f"M_{n} = _FNS['{n}']" for n in _MATH)
    ins = ", ".join(f"in{i}_ptr" for i in range(k))
    gs = ", ".join(f"g{j}_ptr" for j in range(m))
    loads = "\n".join(
        f"    x{i} = tl.load(in{i}_ptr + offs, mask=m, other=0.0).to(zero.dtype)" for i in range(k)
    )
    stores = "\n".join(
        f"        tl.store(g{j}_ptr + offs, ({x} * f * s.to(zero.dtype))"
        f".to(g{j}_ptr.dtype.element_ty), mask=m)"
        for j, x in enumerate(f_grads)
    )
    el_ins = ", ".join(f"a{j}_ptr" for j in range(m))
    el_outs = ", ".join(f"o{j}_ptr" for j in range(len(e_outs)))
    el_loads = "\n".join(
        f"    a{j} = tl.load(a{j}_ptr + offs, mask=m, other=0.0).to(zero.dtype)" for j in range(m)
    )
    el_stores = "\n".join(
        f"    tl.store(o{j}_ptr + offs, ({x}).to(o{j}_ptr.dtype.element_ty), mask=m)"
        for j, x in enumerate(e_outs)
    )
    return f'''"""regloss Triton kernels for {form!r}; generated from the definition's graph."""
import triton
import triton.language as tl

from regloss._kernels.gpu import math_functions as _math_functions

_FNS = _math_functions()
{binds}
INF = tl.constexpr(float("inf"))


@triton.jit
def rl_fwd({ins}, w_ptr, k_ptr, {gs}, v_ptr, part_ptr, fpart_ptr, out_ptr, cnt_ptr,
           n, num, den, HAS_W: tl.constexpr, HAS_K: tl.constexpr, OMIT: tl.constexpr,
           WANT_G: tl.constexpr, WANT_V: tl.constexpr, WANT_F: tl.constexpr,
           FINAL: tl.constexpr, F64: tl.constexpr, I64: tl.constexpr, BLOCK: tl.constexpr,
           RBLOCK: tl.constexpr):
{_PROLOGUE}
    # correctly rounded, as Python's num / den (tl.cast: an argument equal to 1 arrives as a
    # constexpr Python int, which has no .to)
    s = tl.cast(num, tl.float64) / tl.cast(den, tl.float64)
{loads}
    keep = m
    if HAS_K:
        keep = keep & (tl.load(k_ptr + offs, mask=m, other=0) != 0)
    if OMIT:
        keep = keep & (x1 == x1)
    f = tl.where(keep, zero + 1.0, zero)
    if HAS_W:
        f = f * tl.load(w_ptr + offs, mask=m, other=0.0).to(zero.dtype)
{chr(10).join(fwd.lines)}
    value = {f_val}
    if WANT_G:
{stores}
    if WANT_V:
        tl.store(v_ptr + offs, (value * f).to(v_ptr.dtype.element_ty), mask=m)
    part = tl.sum(tl.where(m, value * f, zero), axis=0)
    tl.store(part_ptr + pid, part.to(tl.float64) * s)
    if WANT_F:  # a second block reduction only where the count is asked for
        tl.store(fpart_ptr + pid, tl.sum(f, axis=0))
    if FINAL:
        # The program that finishes last (the counter's acq_rel atomic orders every other
        # program's partial before it) adds the partials in index order, in float64, and
        # writes the total in the output dtype; then it resets the counter for the next
        # launch on this stream. Deterministic, and no launch left for the sum and cast.
        nprog = tl.num_programs(0)
        if tl.atomic_add(cnt_ptr, 1, sem="acq_rel") == nprog - 1:
            acc = tl.zeros([RBLOCK], dtype=tl.float64)
            for start in range(0, nprog, RBLOCK):
                idx = start + tl.arange(0, RBLOCK)
                acc += tl.load(part_ptr + idx, mask=idx < nprog, other=0.0, cache_modifier=".cg")
            total = tl.sum(acc, axis=0)
            if out_ptr.dtype.element_ty.primitive_bitwidth == 16:
                total = total.to(tl.float32)  # as PyTorch casts a double to a half dtype
            tl.store(out_ptr, total.to(out_ptr.dtype.element_ty))
            tl.store(cnt_ptr, 0)


@triton.jit
def rl_elem({el_ins}, {el_outs}, n, F64: tl.constexpr, I64: tl.constexpr,
            BLOCK: tl.constexpr):
{_PROLOGUE}
{el_loads}
{chr(10).join(el.lines)}
{el_stores}
'''


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def math_functions() -> dict[str, Any]:
    """libdevice's functions on the GPU; NumPy's under Triton's interpreter."""
    if not interpreting():
        from triton.language.extra import libdevice

        return {n: getattr(libdevice, n) for n in _MATH}
    import triton.language as tl
    from triton.runtime.interpreter import TensorHandle

    def wrap(fn: Any) -> Any:
        def op(*args: Any) -> Any:
            x = args[0]
            data = [a.handle.data for a in args]
            with np.errstate(all="ignore"):
                out = fn(*data).astype(data[0].dtype, copy=False)
            return tl.core.tensor(TensorHandle(out, x.handle.dtype.scalar), x.type)

        return op

    table = {n: getattr(np, n) for n in ("exp", "expm1", "log", "log1p", "sinh", "tanh", "sqrt")}
    table["pow"] = np.power
    return {n: wrap(fn) for n, fn in table.items()}


_MODULES: dict[tuple[str, bool], Any] = {}


def module(form: Form) -> Any:
    """The imported kernel module of ``form`` (generated on first use; cached by content)."""
    key = (form.kind + " " + form.key + type(form.definition).__qualname__, interpreting())
    mod = _MODULES.get(key)
    if mod is None:
        mod = _MODULES[key] = _load(source(form))
    return mod


def _load(src: str) -> Any:
    """Import the Triton module ``src`` from a file named by its content (``triton.jit``
    reads a kernel's source back from its file)."""
    digest = hashlib.sha256(src.encode()).hexdigest()[:24]
    from .c import _cache_dir

    folder = _cache_dir().parent / "triton"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"rl_{digest}.py"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(src, encoding="utf-8")
        os.replace(tmp, path)
    name = f"regloss_triton_{digest}_{int(interpreting())}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


#: The backward's multiplication by the incoming gradient g, decided on the device: each
#: program reads g and, where it is exactly 1 (``loss.backward()``), loads and stores
#: nothing. A training step then moves 12 bytes per float32 element (prediction and target
#: read, ψ·f·s written once as the gradient) instead of 20, with no host synchronisation.
SCALE_SOURCE = f'''"""regloss Triton kernel: the gradient buffer times the incoming gradient."""
import triton
import triton.language as tl


@triton.jit
def rl_scale(g_ptr, s_ptr, n, I64: tl.constexpr, BLOCK: tl.constexpr):
{_OFFSETS}
    s = tl.load(s_ptr)
    m = offs < tl.where(s == 1, 0, n)  # every lane off where s is 1
    g = tl.load(g_ptr + offs, mask=m, other=0.0)
    tl.store(g_ptr + offs, g * s.to(g_ptr.dtype.element_ty), mask=m)
'''

_SCALE: dict[bool, Any] = {}


def scale_into(g: Any, s: Any) -> None:
    """``g *= s`` for a contiguous torch tensor ``g`` and a 0-d tensor ``s`` on its device,
    a no-op pass (nothing loaded or stored) where ``s`` is exactly 1."""
    key = interpreting()
    mod = _SCALE.get(key)
    if mod is None:
        mod = _SCALE[key] = _load(SCALE_SOURCE)
    n = g.numel()
    blocks, i64 = _grid(n)
    mod.rl_scale[(blocks,)](g, s, n, I64=i64, BLOCK=BLOCK, num_warps=NUM_WARPS)


#: one zeroed int32 counter per (device, stream) for the finishing-program reduction; each
#: launch leaves it at 0 again, and launches on one stream never overlap
_COUNTERS: dict[tuple[Any, int], Any] = {}

#: offsets up to this need no 64-bit arithmetic (Triton's int32 indices)
_I32_LIMIT = 2**31 - 1


def _grid(n: int) -> tuple[int, bool]:
    """Programs for ``n`` elements in blocks of BLOCK, and whether offsets need 64 bits."""
    blocks = max(1, -(-n // BLOCK))
    return blocks, blocks * BLOCK > _I32_LIMIT


def _counter(device: Any) -> Any:
    import torch

    if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        # inside a CUDA graph's capture: a counter of the graph's own, zeroed in it (a cached
        # one first allocated here would be zeroed only when the graph is replayed)
        return torch.zeros(1, dtype=torch.int32, device=device)
    stream = torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0
    key = (device, stream)
    c = _COUNTERS.get(key)
    if c is None:
        c = _COUNTERS[key] = torch.zeros(1, dtype=torch.int32, device=device)
    return c


def forward(
    form: Form,
    inputs: tuple[Any, ...],
    *,
    weight: Any = None,
    keep: Any = None,
    omit: bool = False,
    want_grad: bool = True,
    want_value: bool = False,
    scale: tuple[int, int] = (1, 1),
    want_count: bool = True,
    total_dtype: Any = None,
) -> tuple[Any, Any, tuple[Any, ...], Any]:
    """``(Σvalue·f·s, Σf, (each argument's gradient·f·s) or Nones, value·f or None)`` for
    contiguous torch tensors of one shape (weight and keep too, keep boolean), with
    ``s = scale[0] / scale[1]``. Σvalue·f·s is a 0-d tensor of ``total_dtype`` (float64 by
    default), added in float64 by the kernel itself, or None where ``want_value`` (then
    value·f is what is asked for); Σf is a float64 0-d tensor or None unless
    ``want_count``; the gradients and value·f are in the compute dtype (float64 for
    float64 inputs, float32 otherwise)."""
    import torch

    mod = module(form)
    prediction = inputs[0]
    n = prediction.numel()
    f64 = prediction.dtype == torch.float64
    blocks, i64 = _grid(n)
    acc = torch.float64 if f64 else torch.float32  # the compute dtype
    device = prediction.device
    part = torch.empty(blocks, dtype=torch.float64, device=device)
    fpart = torch.empty(blocks, dtype=acc, device=device) if want_count else part
    grads = tuple(
        torch.empty_like(prediction, dtype=acc) if want_grad else None for _ in range(form.n_args)
    )
    v = torch.empty_like(prediction, dtype=acc) if want_value else None
    final = not want_value and blocks <= FINAL_MAX_BLOCKS
    total = torch.empty((), dtype=total_dtype or torch.float64, device=device) if final else None
    # an absent input or output is passed as the prediction: its flag keeps it unused
    mod.rl_fwd[(blocks,)](
        *inputs,
        weight if weight is not None else prediction,
        keep.view(torch.uint8) if keep is not None else prediction,
        *(g if g is not None else prediction for g in grads),
        v if v is not None else prediction,
        part,
        fpart,
        total if total is not None else part,
        _counter(device) if final else part,
        n,
        scale[0],
        scale[1],
        HAS_W=weight is not None,
        HAS_K=keep is not None,
        OMIT=omit,
        WANT_G=want_grad,
        WANT_V=want_value,
        WANT_F=want_count,
        FINAL=final,
        F64=f64,
        I64=i64,
        BLOCK=BLOCK,
        RBLOCK=RBLOCK,
        num_warps=NUM_WARPS,
    )
    count = fpart.sum(dtype=torch.float64) if want_count else None
    if total is None and not want_value:
        total = part.sum()
        if total_dtype is not None and total_dtype != torch.float64:
            total = total.to(total_dtype)
    return total, count, grads, v


def serves(form: Form, prep: Prepared) -> bool:
    """Whether the generated Triton kernel covers ``prep`` (metadata only): a registered,
    position-independent form; every input plain, of one dtype and of the broadcast shape
    (no broadcasting: the kernel indexes one flat range)."""
    import torch

    if not form.registered or form.depends_on_position() or form.params_need_grad():
        return False
    p = prep.inputs[0]
    shape = tuple(prep.shape)
    return all(
        type(x) is torch.Tensor and x.dtype == p.dtype and tuple(x.shape) == shape
        for x in prep.inputs
    )


def run(form: Form, prep: Prepared, need_grad: bool) -> Result:
    """The backend contract from the generated Triton kernel — every option (weight, mask,
    nan_policy, all reductions) in one pass — for inputs :func:`serves` accepts."""
    import torch

    dtype = compute_dtype(torch, prep)
    f = factor(torch, prep, dtype)
    weight = None if f is None else torch.broadcast_to(f, prep.shape).contiguous()
    keep = None if prep.keep is None else torch.broadcast_to(prep.keep, prep.shape).contiguous()
    red = prep.reduction
    # Without weights or a mask the reduction's scale is known now (1/N for 'mean'): the
    # kernel folds it into the gradients and the partial sums, so nothing is left to launch.
    ratio = red.ratio(prep.shape) if f is None else (1, 1)
    total, _, grads, value = forward(
        form,
        tuple(x.contiguous() for x in prep.inputs),
        weight=weight,
        keep=keep,
        want_grad=need_grad,
        want_value=red.elementwise,
        scale=ratio,
        want_count=False,
        total_dtype=dtype,
    )
    if red.elementwise:
        return Result(value, grads, 1.0, 1.0)
    scale = 1.0 if f is None else red.scale(torch, prep.shape, f)
    return Result(total, grads, scale, scale)


def elementwise(form: Form, *args: Any) -> tuple[Any, ...]:
    """Value, gradients and Hessian (upper triangle) of flat contiguous torch tensors of
    the form's arguments."""
    import torch

    mod = module(form)
    a = args[0]
    n = a.numel()
    m = form.n_args
    out = [torch.empty_like(a) for _ in range(1 + m + m * (m + 1) // 2)]
    blocks, i64 = _grid(n)
    mod.rl_elem[(blocks,)](
        *args, *out, n, F64=a.dtype == torch.float64, I64=i64, BLOCK=BLOCK, num_warps=NUM_WARPS
    )
    return tuple(out)
