"""CPU kernels generated from the traced definitions, compiled by the system C compiler.

For a form (:mod:`regloss.losses._form`) and a dtype, :func:`kernel` emits one C loop that
reads the inputs once, evaluates the form's arguments, value and gradients from the
definition's own graph (``trace.py``) and writes each gradient times the reduction's scale
while accumulating the value in double: one pass over memory instead of the ~20 eager
passes of the overflow-safe branch forms. The loop is vectorised by the compiler (branches
are selects; transcendental functions come from glibc's libmvec through ``omp declare
simd``) and split over threads with OpenMP.

Compiled libraries are cached on disk (``$REGLOSS_CACHE_DIR``, else
``$XDG_CACHE_HOME/regloss/kernels`` or ``~/.cache/regloss/kernels``) under a hash of the
source, the compiler and the CPU's flags, and written atomically: a second process loads
the library in milliseconds. A kernel is built (or loaded) when it is first asked for,
before that call runs, so which route a call takes never depends on a build finishing in
the background. Without a compiler, or when compiling fails, or with
``REGLOSS_KERNELS=0``, there is no kernel and regloss computes eagerly — same results
within rounding, more passes; :func:`status` says why.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .._thresholds import value as threshold
from ..losses import Form
from .trace import Emitter, Sym, Untraceable, trace_form

__all__ = ["CKernel", "Weighted", "enabled", "kernel", "library", "status", "threads", "warm"]

#: libm functions with a libmvec vector variant (the others are instructions or selects)
_VECTOR_FNS = ("exp", "expm1", "log", "log1p", "sinh", "tanh", "pow")
_FN = {
    "abs": "fabs",
    "exp": "exp",
    "expm1": "expm1",
    "log": "log",
    "log1p": "log1p",
    "sqrt": "sqrt",
    "sinh": "sinh",
    "tanh": "tanh",
    "floor": "floor",
    "pow": "pow",
}
_CTYPE = {"float32": "float", "float64": "double"}

FLAGS = (
    "-O3",
    "-march=native",
    "-fopenmp",
    "-fno-math-errno",  # libm calls are pure: CSE and vectorisation
    "-fno-trapping-math",  # selects instead of branches (no FP exception flags are read)
    "-ffp-contract=off",  # no FMA contraction: the same roundings as the eager definition
    # GCC's jump threading copies a call that sits between two selects on one condition into
    # both paths, and the vectoriser then makes both calls: Cauchy's one log1p became two,
    # Barron's three calls five (measured in the generated assembly, tests/test_kernels.py)
    "--param=max-jump-thread-duplication-stmts=0",
    "-shared",
    "-fPIC",
)
LIBS = ("-lmvec", "-lm")
#: at most this many parameter settings of one loss class are compiled per process (a loss
#: whose parameters change every step would otherwise compile every step)
MAX_PER_CLASS = 16
#: below this many elements a thread team costs more than it saves
PARALLEL_FROM = threshold("c_threads")


def _parallel(reductions: str = "") -> str:
    """The loop pragma: vectorised always, threaded from PARALLEL_FROM elements (the ``if``
    names ``parallel``: unnamed, it would also turn the vectorisation off below)."""
    return (
        f"#pragma omp parallel for simd {reductions}num_threads(nt) "
        f"if(parallel: n >= {PARALLEL_FROM}) schedule(static)"
    )


_PARALLEL = _parallel("reduction(+:acc) ")
#: the weighted kernels also find the weights' extremes (the caller checks their range)
_PARALLEL_W = _parallel("reduction(+:acc,ws) reduction(min:lo) reduction(max:hi) reduction(|:bad) ")


def _weighted_head(t: str) -> str:
    return f"""  double acc = 0.0, ws = 0.0;
  {t} lo = ({t})INFINITY, hi = -({t})INFINITY;
  int bad = 0;"""


def _weight_step(t: str) -> str:
    """One element's weight: f = w[i], its sum, extremes and a NaN/negative flag."""
    return f"""      const {t} f = w[i];
      ws += (double)f;
      lo = f < lo ? f : lo;
      hi = f > hi ? f : hi;
      bad |= !(f >= ({t})0);"""


_WEIGHTED_TAIL = """  out[0] = ws;
  out[1] = (double)lo;
  out[2] = (double)hi;
  out[3] = (double)bad;
  return acc;"""


def _normalise(t: str, *outputs: str) -> str:
    """A weighted mean's scale ``num / Σw`` applied to the gradient outputs once the weights'
    sum is known (num = 0: 'sum', nothing to do). Each element is multiplied in double and
    rounded once; the outputs are still in cache for the sizes where a separate
    multiplication's launch would cost most."""
    scaled = "\n".join(f"      {o}[i] = ({t})((double){o}[i] * sc);" for o in outputs)
    return f"""  if (num != 0.0 && ws > 0.0 && !bad) {{
    const double sc = num / ws;
    {_parallel()}
    for (int64_t i = 0; i < n; i++) {{
{scaled}
    }}
  }}"""


class _Emitter(Emitter):
    def __init__(self, dtype: str, leaves: tuple[str, ...] = ()) -> None:
        super().__init__(leaves)
        self.ctype = _CTYPE[dtype]
        self.suffix = "f" if dtype == "float32" else ""
        self.np_type = np.float32 if dtype == "float32" else np.float64
        self.used: set[str] = set()

    def literal(self, x: float) -> str:
        with np.errstate(over="ignore"):
            v = float(self.np_type(x))  # the constant as the compute dtype sees it
        if v != v:
            raise Untraceable("NaN constant")
        if v in (float("inf"), float("-inf")):
            return f"({'-' if v < 0 else ''}({self.ctype})INFINITY)"
        return f"(({self.ctype}){v.hex()})"

    def assign(self, name: str, expr: str, boolean: bool) -> str:
        return f"      const {'int' if boolean else self.ctype} {name} = {expr};"

    def call(self, fn: str, args: list[str]) -> str:
        base = _FN[fn]
        self.used.add(base)
        return f"{base}{self.suffix}({', '.join(args)})"

    def select(self, cond: str, a: str, b: str) -> str:
        return f"({cond} ? {a} : {b})"

    def negate(self, cond: str) -> str:
        return f"(!{cond})"

    def isfinite(self, v: str) -> str:
        return f"(isfinite({v}) != 0)"

    def declarations(self) -> str:
        out = []
        for base in sorted(self.used & set(_VECTOR_FNS)):
            args = ", ".join([self.ctype] * (2 if base == "pow" else 1))
            out.append(
                f"#pragma omp declare simd notinbranch\n{self.ctype} {base}{self.suffix}({args});"
            )
        return "\n".join(out)


def _declare_row(t: str, names: list[str], const: bool) -> str:
    q = "const " if const else ""
    return ", ".join(f"{q}{t}* restrict {n}" for n in names)


def source(form: Form, dtype: str) -> str:
    """The C source of ``form``'s kernels in ``dtype`` ('float32' or 'float64').

    With k inputs and m arguments (a residual loss: 2 and 1; an NLL: 3 and 2; a loss of
    (prediction, target): 2 and 2): ``rl_fwd`` (Σ value in double, each argument's
    gradient times ``gs`` written), ``rl_val`` (Σ value), their weighted forms ``rl_fwd_w``
    and ``rl_val_w`` (Σ w·value; gradients times w, then times ``num / Σw`` when num is
    not 0; the weights' sum, extremes and a NaN-or-negative flag into ``out``), and
    ``rl_elem`` (value, gradients and Hessian of given arguments, for the range tests)."""
    g = trace_form(form)
    t = _CTYPE[dtype]
    k, m = len(g.inputs), len(g.args)
    ins = [f"in{i}" for i in range(k)]
    grads = [f"g{j}" for j in range(m)]
    loads = "\n".join(f"      const {t} x{i} = in{i}[i];" for i in range(k))

    def body(outs: tuple[Sym, ...]) -> tuple[_Emitter, list[str]]:
        e = _Emitter(dtype, g.inputs + g.args)
        names = [e.value(a) for a in g.arguments]
        e.lines += [f"      const {t} a{j} = {n};" for j, n in enumerate(names)]
        return e, [e.value(o) for o in outs]

    fwd, (f_val, *f_grads) = body((g.value, *g.grads))
    val, (v_val,) = body((g.value,))
    el = _Emitter(dtype, g.args)
    e_outs = [el.value(o) for o in (g.value, *g.grads, *g.hess)]
    head = _Emitter(dtype)
    head.used = fwd.used | val.used | el.used
    n_el = len(e_outs)
    fwd_lines = "\n".join(fwd.lines)
    val_lines = "\n".join(val.lines)
    store = "\n".join(f"      g{j}[i] = {x} * gs;" for j, x in enumerate(f_grads))
    store_w = "\n".join(f"      g{j}[i] = {x} * f;" for j, x in enumerate(f_grads))
    el_loads = "\n".join(f"      const {t} a{j} = x{j}[i];" for j in range(m))
    el_store = "\n".join(f"      o{j}[i] = {x};" for j, x in enumerate(e_outs))
    return f"""/* regloss kernel: {form!r}, {dtype}; generated from the definition's graph */
#include <math.h>
#include <stdint.h>
{head.declarations()}

double rl_fwd({_declare_row(t, ins, True)}, {_declare_row(t, grads, False)}, int64_t n,
              {t} gs, int nt) {{
  double acc = 0.0;
  {_PARALLEL}
  for (int64_t i = 0; i < n; i++) {{
{loads}
{fwd_lines}
      acc += (double){f_val};
{store}
  }}
  return acc;
}}

double rl_val({_declare_row(t, ins, True)}, int64_t n, int nt) {{
  double acc = 0.0;
  {_PARALLEL}
  for (int64_t i = 0; i < n; i++) {{
{loads}
{val_lines}
      acc += (double){v_val};
  }}
  return acc;
}}

double rl_fwd_w({_declare_row(t, ins, True)}, const {t}* restrict w,
                {_declare_row(t, grads, False)}, int64_t n, int nt, double* restrict out,
                double num) {{
{_weighted_head(t)}
  {_PARALLEL_W}
  for (int64_t i = 0; i < n; i++) {{
{loads}
{fwd_lines}
{_weight_step(t)}
      acc += (double)({f_val} * f);
{store_w}
  }}
{_normalise(t, *grads)}
{_WEIGHTED_TAIL}
}}

double rl_val_w({_declare_row(t, ins, True)}, const {t}* restrict w, int64_t n, int nt,
                double* restrict out) {{
{_weighted_head(t)}
  {_PARALLEL_W}
  for (int64_t i = 0; i < n; i++) {{
{loads}
{val_lines}
{_weight_step(t)}
      acc += (double)({v_val} * f);
  }}
{_WEIGHTED_TAIL}
}}

void rl_elem({_declare_row(t, [f"x{j}" for j in range(m)], True)},
             {_declare_row(t, [f"o{j}" for j in range(n_el)], False)}, int64_t n) {{
  #pragma omp simd
  for (int64_t i = 0; i < n; i++) {{
{el_loads}
{chr(10).join(el.lines)}
{el_store}
  }}
}}
"""


_DOUBLES4 = ctypes.c_double * 4
_NEW: Any = tuple.__new__  # a NamedTuple without its Python-level __new__ call


@dataclass(frozen=True)
class CKernel:
    """A compiled kernel for one form and dtype; pointers are raw addresses of contiguous
    arrays of that dtype (the callers check). ``k`` inputs, ``m`` gradient buffers."""

    lib: Any
    dtype: str
    compile_s: float
    k: int
    m: int

    def fwd(self, ins: tuple[int, ...], outs: tuple[int, ...], n: int, gs: float, nt: int) -> float:
        """Σ value in double; writes each argument's gradient times ``gs`` into ``outs``."""
        return float(self.lib.rl_fwd(*ins, *outs, n, gs, nt))

    def val(self, ins: tuple[int, ...], n: int, nt: int) -> float:
        return float(self.lib.rl_val(*ins, n, nt))

    def fwd_w(
        self, ins: tuple[int, ...], w: int, outs: tuple[int, ...], n: int, nt: int, num: float
    ) -> Weighted:
        """Σ w·value and the weights' sums; gradients times w (and num / Σw where num is
        not 0 and the weights are valid)."""
        out = _DOUBLES4()
        total = float(self.lib.rl_fwd_w(*ins, w, *outs, n, nt, out, num))
        got: Weighted = _NEW(Weighted, (total, out[0], out[1], out[2], bool(out[3])))
        return got

    def val_w(self, ins: tuple[int, ...], w: int, n: int, nt: int) -> Weighted:
        out = _DOUBLES4()
        total = float(self.lib.rl_val_w(*ins, w, n, nt, out))
        got: Weighted = _NEW(Weighted, (total, out[0], out[1], out[2], bool(out[3])))
        return got

    def elem(self, args: tuple[int, ...], outs: tuple[int, ...], n: int) -> None:
        """Value, gradients and Hessian (upper triangle) of given arguments."""
        self.lib.rl_elem(*args, *outs, n)


class Weighted(NamedTuple):
    """A weighted kernel's sums: Σ f·value, Σ f, min f, max f, and whether any f was NaN or
    negative."""

    total: float
    weight_sum: float
    lo: float
    hi: float
    bad: bool


_LOCK = threading.RLock()
_KERNELS: dict[tuple[Any, ...], Any] = {}
_PER_CLASS: dict[type, int] = {}
_STATUS: dict[str, str] = {}


#: os.environ's own dict (bytes keys on POSIX): read at every call, a dict lookup instead of
#: the Mapping API's encoding (1 us a call, twice per loss call)
_ENVIRON: Any = getattr(os.environ, "_data", None)


def enabled() -> bool:
    """Whether ``REGLOSS_KERNELS`` allows kernels (read at every call)."""
    if isinstance(_ENVIRON, dict) and os.name == "posix":
        return _ENVIRON.get(b"REGLOSS_KERNELS") != b"0"
    return os.environ.get("REGLOSS_KERNELS", "1") != "0"


def _cache_dir() -> Path:
    explicit = os.environ.get("REGLOSS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "regloss" / "kernels"


def _compiler() -> str | None:
    cc = os.environ.get("CC", "cc")
    return shutil.which(cc)


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return line
    except OSError:
        pass
    import platform

    return platform.processor() + platform.machine()


def _build(src: str, dtype: str, k: int, m: int) -> CKernel:
    lib, seconds = _compile(src)
    t = ctypes.c_float if dtype == "float32" else ctypes.c_double
    vp, i64, ci, dbl = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_double
    ins, outs = [vp] * k, [vp] * m
    n_el = 1 + m + m * (m + 1) // 2
    _declare(
        lib,
        {
            "rl_fwd": (dbl, [*ins, *outs, i64, t, ci]),
            "rl_val": (dbl, [*ins, i64, ci]),
            "rl_fwd_w": (dbl, [*ins, vp, *outs, i64, ci, vp, dbl]),
            "rl_val_w": (dbl, [*ins, vp, i64, ci, vp]),
            "rl_elem": (None, [*outs, *([vp] * n_el), i64]),
        },
    )
    return CKernel(lib, dtype, seconds, k, m)


def _declare(lib: Any, signatures: dict[str, tuple[Any, list[Any]]]) -> None:
    for name, (restype, argtypes) in signatures.items():
        if hasattr(lib, name):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes


def _compile(src: str) -> tuple[Any, float]:
    """(the loaded library, seconds) of C source ``src``, from the disk cache when there."""
    cc = _compiler()
    if cc is None:
        raise OSError("no C compiler (set CC, or install gcc)")
    key = hashlib.sha256(
        "\n".join([src, cc, *FLAGS, *LIBS, _cpu_flags(), sys.platform]).encode()
    ).hexdigest()[:24]
    folder = _cache_dir()
    so = folder / f"rl_{key}.so"
    start = time.perf_counter()
    if not so.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            c_file = Path(tmp) / "k.c"
            c_file.write_text(src, encoding="ascii")
            out = Path(tmp) / "k.so"
            run = subprocess.run(
                [cc, *FLAGS, "-o", str(out), str(c_file), *LIBS],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if run.returncode != 0:
                raise OSError(f"{cc} failed: {run.stderr.strip().splitlines()[-1:]}")
            os.replace(out, so)  # atomic: concurrent builders agree on one file
    return ctypes.CDLL(str(so)), time.perf_counter() - start


def library(name: str, src: str, signatures: dict[str, tuple[Any, list[Any]]]) -> Any | None:
    """A hand-written C library (``src``, functions declared by ``signatures``), built like
    the loss kernels: on first request (the disk cache makes that milliseconds after the
    first process), None for good when there is no compiler or ``REGLOSS_KERNELS=0``."""
    if not enabled():
        _STATUS["all"] = "disabled by REGLOSS_KERNELS=0"
        return None

    def make() -> Any:
        lib, seconds = _compile(src)
        _declare(lib, signatures)
        return lib, seconds

    return _request(("library", name, src), name, make)


def kernel(form: Form, dtype: str) -> CKernel | None:
    """The compiled kernel of ``form`` in ``dtype`` ('float32'/'float64'), or None.

    The first request builds it now (about 0.2 s; milliseconds from the disk cache) and
    later requests get it from memory. None where kernels are off (``REGLOSS_KERNELS=0``),
    no compiler is found, the definition is not traceable, or more than
    :data:`MAX_PER_CLASS` settings of its class were asked for in this process.
    """
    if not enabled():  # checked on every call: REGLOSS_KERNELS=0 turns built kernels off too
        _STATUS["all"] = "disabled by REGLOSS_KERNELS=0"
        return None
    try:  # the hot path: the form itself as the key (repr costs ~10 us a call)
        ready = _READY.get((form, dtype))
    except TypeError:  # an unhashable parameter (an array): the repr key below
        ready = None
    if ready is not None:
        return ready
    cls = type(form.definition)
    label = f"{form.key} {dtype}"

    def admit() -> bool:  # under the lock, once per new parameter setting
        if _PER_CLASS.get(cls, 0) >= MAX_PER_CLASS:
            _STATUS[label] = f"more than {MAX_PER_CLASS} parameter settings: eager"
            return False
        _PER_CLASS[cls] = _PER_CLASS.get(cls, 0) + 1
        return True

    def make() -> tuple[CKernel, float]:
        built = _build(source(form, dtype), dtype, form.n_inputs, form.n_args)
        return built, built.compile_s

    found = _request((cls, form.kind, form.key, dtype), label, make, admit)
    if not isinstance(found, CKernel):
        return None
    try:
        if len(_READY) > 8 * MAX_PER_CLASS:
            _READY.clear()
        _READY[(form, dtype)] = found
    except TypeError:
        pass
    return found


#: built kernels by (form, dtype): frozen dataclasses hash by their parameters
_READY: dict[tuple[Any, str], CKernel] = {}


def _request(key: tuple[Any, ...], label: str, make: Any, admit: Any = None) -> Any:
    """The built object of ``key``, made by ``make()`` (returning the object and its build
    seconds) on the first request, under the lock: a second thread asking meanwhile waits
    for it rather than building it again. A failed build is remembered as None."""
    done = _KERNELS.get(key, _MISSING)
    if done is not _MISSING:
        return done
    with _LOCK:
        if key in _KERNELS:
            return _KERNELS[key]
        if admit is not None and not admit():
            _KERNELS[key] = None
            return None
        result: Any = None
        try:
            result, seconds = make()
            _STATUS[label] = f"ready in {seconds:.3f} s"
        except Untraceable as exc:
            _STATUS[label] = f"not traceable: {exc}"
        except (OSError, subprocess.SubprocessError) as exc:
            _STATUS[label] = f"no kernel: {exc}"
        except Exception as exc:  # a kernel is an optimisation: never fail the user's call
            _STATUS[label] = f"no kernel: {type(exc).__name__}: {exc}"
        _KERNELS[key] = result
        return result


_MISSING = object()


def _after_fork_in_child() -> None:
    """A forked child (DataLoader workers, multiprocessing) has none of the parent's
    threads: a lock held by one of them at the fork would never be released there."""
    global _LOCK
    _LOCK = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def warm(forms: list[Form], dtypes: tuple[str, ...], jobs: int = 2) -> dict[str, float]:
    """Build (or load) the kernels of ``forms`` in ``dtypes`` into the disk cache and this
    process, compiling up to ``jobs`` at a time: what tests and benchmarks run first, so
    that no call waits for a compiler. Returns the build or load seconds per kernel (none
    where kernels are off or a form is not traceable)."""
    from concurrent.futures import ThreadPoolExecutor

    if not enabled():
        return {}

    def compile_one(item: tuple[Form, str]) -> None:
        form, dt = item
        # into the disk cache, outside the build lock; kernel() below records any failure
        with contextlib.suppress(Untraceable, OSError, subprocess.SubprocessError):
            _compile(source(form, dt))

    items = [(f, dt) for f in forms for dt in dtypes]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(compile_one, items))
    out = {}
    for form, dt in items:
        k = kernel(form, dt)
        if k is not None:
            out[f"{form.key} {dt}"] = k.compile_s
    return out


def status() -> dict[str, str]:
    """What happened to each kernel requested in this process (compiled, loaded, or why
    not)."""
    return dict(_STATUS)


def threads() -> int:
    """Threads a kernel call may use: ``$REGLOSS_NUM_THREADS``, else PyTorch's setting when
    PyTorch is loaded, else the CPU count."""
    env = os.environ.get("REGLOSS_NUM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    return os.cpu_count() or 1
