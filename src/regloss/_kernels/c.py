"""CPU kernels generated from the traced definitions, compiled by the system C compiler.

For a loss and a dtype, :func:`kernel` emits one C loop that reads prediction and target
once, evaluates ρ and ψ of the definition's own graph (``trace.py``) and writes ψ·scale
while accumulating Σρ in double: one pass over memory instead of the ~20 eager passes of
the overflow-safe branch forms. The loop is vectorised by the compiler (branches are
selects; transcendental functions come from glibc's libmvec through ``omp declare simd``)
and split over threads with OpenMP.

Compiled libraries are cached on disk (``$REGLOSS_CACHE_DIR``, else
``$XDG_CACHE_HOME/regloss/kernels`` or ``~/.cache/regloss/kernels``) under a hash of the
source, the compiler and the CPU's flags, and written atomically: a second process or run
loads the library in milliseconds. Without a compiler, or when compiling fails, or with
``REGLOSS_KERNELS=0``, there is no kernel and regloss computes eagerly — same results, more
passes; :func:`status` says why.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..losses import Loss
from .trace import Emitter, Untraceable, trace

__all__ = ["CKernel", "NLLSpec", "kernel", "status"]

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
PARALLEL_FROM = 1 << 16


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
    def __init__(self, dtype: str) -> None:
        super().__init__()
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


def source(loss: Loss, dtype: str) -> str:
    """The C source of ``loss``'s kernels in ``dtype`` ('float32' or 'float64')."""
    rho, psi = trace(loss.rho), trace(loss.psi)
    psi_prime = trace(loss.psi_prime)
    bodies = {}
    for label, outs in (("fwd", (rho, psi)), ("val", (rho,)), ("elem", (rho, psi, psi_prime))):
        e = _Emitter(dtype)
        names = [e.value(o) for o in outs]
        bodies[label] = (e, names)
    t = _CTYPE[dtype]
    used = set().union(*(e.used for e, _ in bodies.values()))
    head = _Emitter(dtype)
    head.used = used
    parallel = _PARALLEL
    fwd_e, (f_rho, f_psi) = bodies["fwd"]
    val_e, (v_rho,) = bodies["val"]
    el_e, (e_rho, e_psi, e_dpsi) = bodies["elem"]
    return f"""/* regloss kernel: {loss!r}, {dtype}; generated from the definition's graph */
#include <math.h>
#include <stdint.h>
{head.declarations()}

double rl_fwd(const {t}* restrict p, const {t}* restrict q, {t}* restrict g, int64_t n,
              {t} gs, int nt) {{
  double acc = 0.0;
  {parallel}
  for (int64_t i = 0; i < n; i++) {{
      const {t} r = p[i] - q[i];
{chr(10).join(fwd_e.lines)}
      acc += (double){f_rho};
      g[i] = {f_psi} * gs;
  }}
  return acc;
}}

double rl_val(const {t}* restrict p, const {t}* restrict q, int64_t n, int nt) {{
  double acc = 0.0;
  {parallel}
  for (int64_t i = 0; i < n; i++) {{
      const {t} r = p[i] - q[i];
{chr(10).join(val_e.lines)}
      acc += (double){v_rho};
  }}
  return acc;
}}

double rl_fwd_w(const {t}* restrict p, const {t}* restrict q, const {t}* restrict w,
                {t}* restrict g, int64_t n, int nt, double* restrict out, double num) {{
{_weighted_head(t)}
  {_PARALLEL_W}
  for (int64_t i = 0; i < n; i++) {{
      const {t} r = p[i] - q[i];
{chr(10).join(fwd_e.lines)}
{_weight_step(t)}
      acc += (double)({f_rho} * f);
      g[i] = {f_psi} * f;
  }}
{_normalise(t, "g")}
{_WEIGHTED_TAIL}
}}

double rl_val_w(const {t}* restrict p, const {t}* restrict q, const {t}* restrict w, int64_t n,
                int nt, double* restrict out) {{
{_weighted_head(t)}
  {_PARALLEL_W}
  for (int64_t i = 0; i < n; i++) {{
      const {t} r = p[i] - q[i];
{chr(10).join(val_e.lines)}
{_weight_step(t)}
      acc += (double)({v_rho} * f);
  }}
{_WEIGHTED_TAIL}
}}

void rl_elem(const {t}* restrict x, {t}* restrict rho, {t}* restrict psi,
             {t}* restrict dpsi, int64_t n) {{
  #pragma omp simd
  for (int64_t i = 0; i < n; i++) {{
      const {t} r = x[i];
{chr(10).join(el_e.lines)}
      rho[i] = {e_rho};
      psi[i] = {e_psi};
      dpsi[i] = {e_dpsi};
  }}
}}
"""


@dataclass(frozen=True)
class NLLSpec:
    """An NLL loss and whether its third input is a logarithm: the key of its kernel."""

    nll: Any
    log_input: bool
    name: str = "nll"

    def __repr__(self) -> str:
        return f"{self.nll!r}{' log input' if self.log_input else ''}"


def nll_source(spec: NLLSpec, dtype: str) -> str:
    """The C source of an NLL loss's kernels: r = p − q, v = max(s, floor) (the floor is
    eps, or log eps for a log input; NaN passes), Σ value(r, v) in double, d/dr and d/dv."""
    from ..losses._nll import in_form

    fns = in_form(spec.nll, spec.log_input)
    value = trace(fns.value, ("r", "v"))
    d_r, d_v = trace(fns.grad, ("r", "v"))
    t = _CTYPE[dtype]
    fwd, val = _Emitter(dtype), _Emitter(dtype)
    f_val, f_dr, f_dv = fwd.value(value), fwd.value(d_r), fwd.value(d_v)
    v_val = val.value(value)
    head = _Emitter(dtype)
    head.used = fwd.used | val.used
    floor = head.literal(math.log(spec.nll.eps) if spec.log_input else spec.nll.eps)
    load = f"      const {t} r = p[i] - q[i];\n      const {t} v = s[i] < {floor} ? {floor} : s[i];"
    return f"""/* regloss NLL kernel: {spec!r}, {dtype}; generated from the definition's graph */
#include <math.h>
#include <stdint.h>
{head.declarations()}

double rl_nll_fwd(const {t}* restrict p, const {t}* restrict q, const {t}* restrict s,
                  {t}* restrict dr, {t}* restrict dv, int64_t n, {t} gs, int nt) {{
  double acc = 0.0;
  {_PARALLEL}
  for (int64_t i = 0; i < n; i++) {{
{load}
{chr(10).join(fwd.lines)}
      acc += (double){f_val};
      dr[i] = {f_dr} * gs;
      dv[i] = {f_dv} * gs;
  }}
  return acc;
}}

double rl_nll_fwd_w(const {t}* restrict p, const {t}* restrict q, const {t}* restrict s,
                    const {t}* restrict w, {t}* restrict dr, {t}* restrict dv, int64_t n,
                    int nt, double* restrict out, double num) {{
{_weighted_head(t)}
  {_PARALLEL_W}
  for (int64_t i = 0; i < n; i++) {{
{load}
{chr(10).join(fwd.lines)}
{_weight_step(t)}
      acc += (double)({f_val} * f);
      dr[i] = {f_dr} * f;
      dv[i] = {f_dv} * f;
  }}
{_normalise(t, "dr", "dv")}
{_WEIGHTED_TAIL}
}}

double rl_nll_val_w(const {t}* restrict p, const {t}* restrict q, const {t}* restrict s,
                    const {t}* restrict w, int64_t n, int nt, double* restrict out) {{
{_weighted_head(t)}
  {_PARALLEL_W}
  for (int64_t i = 0; i < n; i++) {{
{load}
{chr(10).join(val.lines)}
{_weight_step(t)}
      acc += (double)({v_val} * f);
  }}
{_WEIGHTED_TAIL}
}}

double rl_nll_val(const {t}* restrict p, const {t}* restrict q, const {t}* restrict s,
                  int64_t n, int nt) {{
  double acc = 0.0;
  {_PARALLEL}
  for (int64_t i = 0; i < n; i++) {{
{load}
{chr(10).join(val.lines)}
      acc += (double){v_val};
  }}
  return acc;
}}
"""


@dataclass(frozen=True)
class CKernel:
    """A compiled kernel for one loss and dtype; pointers are raw addresses of contiguous
    arrays of that dtype (the callers check)."""

    lib: Any
    dtype: str
    compile_s: float

    def fwd(self, p: int, t: int, g: int, n: int, gscale: float, threads: int) -> float:
        """Σρ(p − t) in double; writes ψ(p − t)·gscale into g."""
        return float(self.lib.rl_fwd(p, t, g, n, gscale, threads))

    def val(self, p: int, t: int, n: int, threads: int) -> float:
        return float(self.lib.rl_val(p, t, n, threads))

    def elem(self, r: int, rho: int, psi: int, dpsi: int, n: int) -> None:
        self.lib.rl_elem(r, rho, psi, dpsi, n)

    def nll_fwd(
        self, p: int, t: int, s: int, dr: int, dv: int, n: int, threads: int, gscale: float = 1.0
    ) -> float:
        """Σ value(p − t, floored s) in double; writes d/dr and d/ds."""
        return float(self.lib.rl_nll_fwd(p, t, s, dr, dv, n, gscale, threads))

    def nll_val(self, p: int, t: int, s: int, n: int, threads: int) -> float:
        return float(self.lib.rl_nll_val(p, t, s, n, threads))

    def weighted(
        self, fn: str, *pointers: int, n: int, threads: int, num: float | None = None
    ) -> Weighted:
        """A weighted kernel (``fwd_w``, ``val_w``, ``nll_fwd_w``, ``nll_val_w``): Σ f·value
        and the weights' sum and extremes; outputs written times f, and (the gradient
        kernels, ``num`` given and not 0) times ``num / Σ f`` when the weights are valid."""
        out = (ctypes.c_double * 4)()
        more = () if num is None else (num,)
        total = float(getattr(self.lib, f"rl_{fn}")(*pointers, n, threads, out, *more))
        return Weighted(total, out[0], out[1], out[2], bool(out[3]))


@dataclass(frozen=True)
class Weighted:
    """A weighted kernel's sums: Σ f·value, Σ f, min f, max f, and whether any f was NaN or
    negative."""

    total: float
    weight_sum: float
    lo: float
    hi: float
    bad: bool


_LOCK = threading.Lock()
_KERNELS: dict[tuple[Any, ...], Any] = {}
_PER_CLASS: dict[type, int] = {}
_STATUS: dict[str, str] = {}


def enabled() -> bool:
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


def _build(src: str, dtype: str) -> CKernel:
    lib, seconds = _compile(src)
    t = ctypes.c_float if dtype == "float32" else ctypes.c_double
    vp, i64, ci, dbl = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_double
    _declare(
        lib,
        {
            "rl_fwd": (dbl, [vp, vp, vp, i64, t, ci]),
            "rl_val": (dbl, [vp, vp, i64, ci]),
            "rl_elem": (None, [vp, vp, vp, vp, i64]),
            "rl_nll_fwd": (dbl, [vp, vp, vp, vp, vp, i64, t, ci]),
            "rl_nll_val": (dbl, [vp, vp, vp, i64, ci]),
            "rl_fwd_w": (dbl, [vp, vp, vp, vp, i64, ci, vp, dbl]),
            "rl_val_w": (dbl, [vp, vp, vp, i64, ci, vp]),
            "rl_nll_fwd_w": (dbl, [vp, vp, vp, vp, vp, vp, i64, ci, vp, dbl]),
            "rl_nll_val_w": (dbl, [vp, vp, vp, vp, i64, ci, vp]),
        },
    )
    return CKernel(lib, dtype, seconds)


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


def library(
    name: str,
    src: str,
    signatures: dict[str, tuple[Any, list[Any]]],
    *,
    wait: bool = False,
) -> Any | None:
    """A hand-written C library (``src``, functions declared by ``signatures``), built like
    the loss kernels: in the background on first request (None meanwhile), cached on disk,
    None for good when there is no compiler or ``REGLOSS_KERNELS=0``."""
    if not enabled():
        _STATUS["all"] = "disabled by REGLOSS_KERNELS=0"
        return None

    def make() -> Any:
        lib, seconds = _compile(src)
        _declare(lib, signatures)
        return lib, seconds

    return _request(("library", name, src), name, make, wait)


def kernel(loss: Loss, dtype: str, *, wait: bool = False) -> CKernel | None:
    """The compiled kernel of ``loss`` in ``dtype`` ('float32'/'float64'), or None.

    The first request starts the build (about 0.2 s; milliseconds from the disk cache) on a
    background thread and returns None, so the caller computes eagerly meanwhile and a
    user's first steps never wait for a compiler; later requests get the kernel. With
    ``wait=True`` the build runs now (tests, benchmarks).
    """
    if not enabled():  # checked on every call: REGLOSS_KERNELS=0 turns built kernels off too
        _STATUS["all"] = "disabled by REGLOSS_KERNELS=0"
        return None
    try:  # the hot path: the loss object itself as the key (repr costs ~10 us a call)
        ready = _READY.get((loss, dtype))
    except TypeError:  # an unhashable parameter (a tensor): the repr key below
        ready = None
    if ready is not None:
        return ready

    def admit() -> bool:  # under the lock, once per new parameter setting
        if _PER_CLASS.get(type(loss), 0) >= MAX_PER_CLASS:
            _STATUS[loss.name] = f"more than {MAX_PER_CLASS} parameter settings: eager"
            return False
        _PER_CLASS[type(loss)] = _PER_CLASS.get(type(loss), 0) + 1
        return True

    def make() -> tuple[CKernel, float]:
        src = nll_source(loss, dtype) if isinstance(loss, NLLSpec) else source(loss, dtype)
        built = _build(src, dtype)
        return built, built.compile_s

    found = _request((type(loss), repr(loss), dtype), f"{loss!r} {dtype}", make, wait, admit)
    if not isinstance(found, CKernel):
        return None
    try:
        if len(_READY) > 4 * MAX_PER_CLASS:
            _READY.clear()
        _READY[(loss, dtype)] = found
    except TypeError:
        pass
    return found


#: built kernels by (loss object, dtype): frozen dataclasses hash by their parameters
_READY: dict[tuple[Any, str], CKernel] = {}


def _request(
    key: tuple[Any, ...],
    label: str,
    make: Any,
    wait: bool,
    admit: Any = None,
) -> Any:
    """The built object of ``key``; on the first request ``make()`` (returning the object
    and its build seconds) starts on a background thread, and None is returned meanwhile."""
    done = _KERNELS.get(key, _MISSING)
    if done is not _MISSING:
        return done
    with _LOCK:
        if key in _KERNELS:
            return _KERNELS[key]
        pending = _PENDING.get(key)
        if pending is None:
            if admit is not None and not admit():
                _KERNELS[key] = None
                return None
            pending = threading.Thread(
                target=_build_into, args=(key, label, make), name="regloss-kernel", daemon=True
            )
            _PENDING[key] = pending
            pending.start()
    if wait:
        pending.join()
        return _KERNELS.get(key)
    return None


_MISSING = object()
_PENDING: dict[tuple[Any, ...], threading.Thread] = {}


def _after_fork_in_child() -> None:
    """A forked child (DataLoader workers, multiprocessing) has none of the parent's
    threads: a lock held or a build pending at the fork would otherwise never be released
    or finish there. Built kernels stay loaded; pending ones are requested again."""
    global _LOCK
    _LOCK = threading.Lock()
    for key in list(_PENDING):
        _PENDING.pop(key)
        if isinstance(key[0], type):  # a loss kernel (libraries are not counted per class)
            _PER_CLASS[key[0]] = max(0, _PER_CLASS.get(key[0], 1) - 1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _build_into(key: tuple[Any, ...], label: str, make: Any) -> None:
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
    with _LOCK:
        _KERNELS[key] = result
        _PENDING.pop(key, None)


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
