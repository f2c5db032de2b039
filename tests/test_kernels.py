"""Generated CPU kernels (regloss._kernels): traced from the definitions, held to the same
numerical contract, equal to the eager paths, used only where they apply.

The suite runs with kernels on, as users get them (conftest.py builds them first); the
eager references here turn them off with REGLOSS_KERNELS=0, which every call obeys.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import torch
from tests.settings import SETTINGS, params
from tests.test_range import EXTREMES, _grid, check_contract

import regloss
from regloss import numpy as rnp
from regloss._kernels import c, cpu
from regloss._kernels.trace import Sym, Untraceable, trace
from regloss._thresholds import value as threshold
from regloss.losses import form_of, get_loss, get_nll_loss
from regloss.torch import functional as rtf

CASES = [(n, p) for n, p in SETTINGS + EXTREMES if not get_loss(n, **p).depends_on_position()]
DTYPES = {np.float32: "float32", np.float64: "float64"}


@pytest.fixture(autouse=True)
def _kernels_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGLOSS_KERNELS", "1")


@pytest.fixture(scope="module")
def built() -> dict[tuple[str, str], c.CKernel]:
    """Every case's kernel in both dtypes, built in parallel (cold: ~0.25 s each; past the
    per-class cap of one process, which the extreme settings exceed)."""
    jobs = [(form_of(get_loss(n, **p)), dt) for n, p in CASES for dt in DTYPES.values()]
    with ThreadPoolExecutor(max_workers=4) as pool:
        kernels = pool.map(lambda j: c._build(c.source(j[0], j[1]), j[1], 2, 1), jobs)
        return {(repr(f.definition), dt): k for (f, dt), k in zip(jobs, kernels)}


def _kernel_on(built: dict[tuple[str, str], c.CKernel], loss: Any, dtype: Any) -> c.CKernel:
    """Make the built kernel the one the front-ends find."""
    dt = DTYPES[dtype]
    k = built[(repr(loss), dt)]
    form = form_of(loss)
    c._READY[(form, dt)] = k
    assert cpu.kernel_for(form, np.dtype(dtype)) is k
    return k


def _elem(k: c.CKernel, r: np.ndarray) -> tuple[np.ndarray, ...]:
    """rho, psi and psi' of a residual kernel at r."""
    out = tuple(np.empty_like(r) for _ in range(3))
    k.elem((r.ctypes.data,), tuple(o.ctypes.data for o in out), r.size)
    return out


def test_every_registered_loss_traces() -> None:
    """A new loss whose definition uses an operation the tracer lacks fails here: add the
    operation to trace.py (and its C form to c.py) rather than losing the kernel."""
    for name in regloss.available_losses():
        loss = get_loss(name)
        for method in ("rho", "psi", "psi_prime"):
            assert isinstance(trace(getattr(loss, method)), Sym), (name, method)


def test_untraceable_operations_are_refused() -> None:
    with pytest.raises(Untraceable, match="branched in Python"):
        trace(lambda r: 1.0 if r > 0 else 0.0)
    from regloss._namespace import namespace

    with pytest.raises(Untraceable, match=r"xp\.arctan"):
        trace(lambda r: namespace(r).arctan(r))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "p"), params(CASES))
def test_generated_kernels_keep_the_contract_over_the_whole_range(
    built: Any, name: str, p: dict, dtype: Any
) -> None:
    """The kernel's rho, psi and psi' against 60-digit mpmath, exactly as test_range holds
    the definitions: from 0 and the subnormals to finfo.max, default and extreme params."""
    loss = get_loss(name, **p)
    k = built[(repr(loss), DTYPES[dtype])]
    r = _grid(dtype, loss)
    rho, psi, dpsi = _elem(k, r)
    check_contract(name, loss.params, dtype, r, rho, psi, dpsi)


@pytest.mark.parametrize(("name", "p"), params(CASES))
def test_generated_kernels_propagate_nan_and_inf_as_the_definition(
    built: Any, name: str, p: dict
) -> None:
    loss = get_loss(name, **p)
    r = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0])
    rho, psi, dpsi = _elem(built[(repr(loss), "float64")], r)
    with np.errstate(all="ignore"):
        ref = (loss.rho(r), loss.psi(r), loss.psi_prime(r))
    for got, want in zip((rho, psi, dpsi), ref):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        finite = np.isfinite(want)
        np.testing.assert_array_equal(
            got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)]
        )
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12, atol=0)


def _eager(monkeypatch: pytest.MonkeyPatch, fn: Any) -> Any:
    with monkeypatch.context() as m:
        m.setenv("REGLOSS_KERNELS", "0")
        return fn()


@pytest.mark.parametrize("n", [5, 70_001], ids=["short", "threads"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", regloss.available_losses())
def test_front_ends_with_kernels_equal_eager(
    built: Any, monkeypatch: pytest.MonkeyPatch, name: str, dtype: Any, n: int
) -> None:
    """NumPy value, value_and_grad (with and without out=) and PyTorch forward+backward and
    double backward: the kernel's results equal the eager definition's within rounding."""
    loss = get_loss(name)
    _kernel_on(built, loss, dtype)
    rng = np.random.default_rng(n)
    pred = (rng.standard_normal(n) * 4).astype(dtype)
    target = rng.standard_normal(n).astype(dtype)
    rtol = 2e-6 if dtype == np.float32 else 1e-12
    for reduction in ("mean", "sum"):
        v_k, g_k = rnp.value_and_grad(loss, pred, target, reduction=reduction)
        v_e, g_e = _eager(
            monkeypatch,
            lambda red=reduction: rnp.value_and_grad(loss, pred, target, reduction=red),
        )
        np.testing.assert_allclose(v_k, v_e, rtol=rtol)
        np.testing.assert_allclose(g_k, g_e, rtol=rtol, atol=0)
        out = np.empty_like(pred)
        v_o, _ = rnp.value_and_grad(loss, pred, target, reduction=reduction, out=out)
        np.testing.assert_allclose(v_o, v_e, rtol=rtol)
        np.testing.assert_allclose(out, g_e, rtol=rtol, atol=0)
        np.testing.assert_allclose(
            rnp.loss(loss, pred, target, reduction=reduction), v_e, rtol=rtol
        )

    def torch_step() -> tuple[torch.Tensor, ...]:
        x = torch.from_numpy(pred.copy()).requires_grad_()
        value = rtf.loss(loss, x, torch.from_numpy(target))
        (g,) = torch.autograd.grad(value, x, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), x, allow_unused=True)
        return value.detach(), g.detach(), torch.zeros_like(x) if h is None else h

    for a, b in zip(torch_step(), _eager(monkeypatch, torch_step)):
        torch.testing.assert_close(a, b, rtol=rtol, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "p"), params(CASES))
def test_weighted_kernels_equal_eager(
    built: Any, monkeypatch: pytest.MonkeyPatch, name: str, p: dict, dtype: Any
) -> None:
    """Weights in one generated pass (value, gradient, the weights' sum and range found on
    the way) equal the eager weighted definition in NumPy and PyTorch, for every reduction;
    weights the eager path must rescale (a mean whose largest weight lies outside
    [2^-30, 2^30]) or explain (NaN, negative) leave the kernel unused, all-zero ones too."""
    loss = get_loss(name, **p)
    k = _kernel_on(built, loss, dtype)
    n = 70_001
    rng = np.random.default_rng(3)
    pred = (rng.standard_normal(n) * 4).astype(dtype)
    target = rng.standard_normal(n).astype(dtype)
    rtol = 4e-6 if dtype == np.float32 else 1e-12
    used: list[bool] = []
    real = cpu.forward

    def spy(*args: Any, **kwargs: Any) -> Any:
        got = real(*args, **kwargs)
        used.append(got is not None)
        return got

    monkeypatch.setattr(cpu, "forward", spy)
    cases = [
        (rng.random(n).astype(dtype), ("mean", "sum", "batchmean"), True),
        ((rng.random(n) * 2.0**40).astype(dtype), ("sum",), True),
        ((rng.random(n) * 2.0**40).astype(dtype), ("mean",), False),  # rescaled eagerly
        (np.zeros(n, dtype), ("sum",), False),
    ]
    for w, reductions, kernel in cases:
        for reduction in reductions:
            used.clear()
            v_k, g_k = rnp.value_and_grad(loss, pred, target, reduction=reduction, weight=w)
            # a linear psi keeps the residual: the route table sends it to eager
            assert used == ([kernel] if loss.psi_slope is None else []), (reduction, used)
            v_e, g_e = _eager(
                monkeypatch,
                lambda red=reduction, wt=w: rnp.value_and_grad(
                    loss, pred, target, reduction=red, weight=wt
                ),
            )
            np.testing.assert_allclose(v_k, v_e, rtol=rtol)
            finite = np.abs(g_e[np.isfinite(g_e)])
            scale = float(np.max(finite, initial=0.0)) or 1.0  # extreme settings overflow
            np.testing.assert_allclose(g_k, g_e, rtol=rtol, atol=rtol * scale)

            def torch_step(red: str = reduction, wt: Any = w) -> tuple[torch.Tensor, ...]:
                x = torch.from_numpy(pred.copy()).requires_grad_()
                value = rtf.loss(
                    loss, x, torch.from_numpy(target), reduction=red, weight=torch.from_numpy(wt)
                )
                return value.detach(), torch.autograd.grad(value, x)[0]

            for a, b in zip(torch_step(), _eager(monkeypatch, torch_step)):
                torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * scale, equal_nan=True)
    bad = rng.random(n).astype(dtype)
    bad[7] = np.nan
    ins = (int(pred.ctypes.data), int(target.ctypes.data))
    assert k.val_w(ins, int(bad.ctypes.data), n, 2).bad  # the caller's cue for eager
    with pytest.raises(ValueError, match="non-finite"):
        rnp.loss(loss, pred, target, weight=bad)


def _error_or_value(fn: Any) -> tuple[str, Any]:
    try:
        return "value", fn()
    except (ValueError, TypeError) as e:
        return type(e).__name__, str(e)


_BAD_WEIGHTS = {
    "nan": lambda w: np.where(np.arange(w.size) == 3, np.nan, w),
    "inf": lambda w: np.where(np.arange(w.size) == 3, np.inf, w),
    "negative": lambda w: np.where(np.arange(w.size) == 3, -0.5, w),
    "zero": np.zeros_like,
    "tiny": lambda w: w * 2.0**-60,
}


@pytest.mark.parametrize("n", [5, 70_001], ids=["short", "threads"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_weights_checked_by_the_kernel_give_the_eager_results_and_errors(
    monkeypatch: pytest.MonkeyPatch, dtype: Any, n: int
) -> None:
    """On the CPU, prepare leaves the weights' value check to the generated weighted kernel,
    which finds their extremes in its own pass. For every loss and NLL, NumPy and PyTorch,
    'mean', 'sum' and 'batchmean', and weights with a NaN, an inf, a negative value, all
    zero or tiny (a mean the eager path rescales), the result or error (type and message)
    is the one the eager path gives with the check made up front."""
    rng = np.random.default_rng(5)
    pred = (rng.standard_normal(n) * 3).astype(dtype)
    target = rng.standard_normal(n).astype(dtype)
    var = (rng.random(n) + 0.5).astype(dtype)
    good = (rng.random(n) + 0.5).astype(dtype)
    for name in regloss.available_losses():
        assert c.kernel(form_of(get_loss(name)), DTYPES[dtype]) is not None
    for name in regloss.available_nll_losses():
        assert c.kernel(form_of(get_nll_loss(name)), DTYPES[dtype]) is not None
    calls: dict[str, Any] = {}
    for name in regloss.available_losses():
        calls[f"numpy {name}"] = lambda w, red, nm=name: rnp.value_and_grad(
            nm, pred, target, reduction=red, weight=w
        )
        calls[f"torch {name}"] = lambda w, red, nm=name: _torch_value_and_grad(
            lambda x, wt: rtf.loss(nm, x, torch.from_numpy(target), reduction=red, weight=wt),
            pred,
            w,
        )
    for name in regloss.available_nll_losses():
        calls[f"numpy {name}"] = lambda w, red, nm=name: rnp.nll_value_and_grads(
            nm, pred, target, var, reduction=red, weight=w
        )
        fn = getattr(regloss.torch, f"{name}_loss")
        calls[f"torch {name}"] = lambda w, red, f=fn: _torch_value_and_grad(
            lambda x, wt: f(
                x, torch.from_numpy(target), torch.from_numpy(var), reduction=red, weight=wt
            ),
            pred,
            w,
        )
    errors = 0
    for kind, make in _BAD_WEIGHTS.items():
        w = make(good).astype(dtype)
        for label, call in calls.items():
            for red in ("mean", "sum", "batchmean"):
                run = functools.partial(call, w, red)
                got = _error_or_value(run)
                want = _error_or_value(functools.partial(_checked_first, monkeypatch, run))
                assert got[0] == want[0], (kind, label, red, got, want)
                if got[0] != "value":
                    errors += 1
                    assert got[1] == want[1], (kind, label, red)
                    continue
                for a, b in zip(got[1], want[1]):
                    np.testing.assert_allclose(
                        np.asarray(a, dtype=np.float64),
                        np.asarray(b, dtype=np.float64),
                        rtol=2e-5 if dtype == np.float32 else 1e-11,
                        atol=1e-30,
                        err_msg=f"{kind} {label} {red}",
                    )
    assert errors == 3 * len(calls) * 3  # nan, inf and negative weights, every reduction


def _checked_first(monkeypatch: pytest.MonkeyPatch, fn: Any) -> Any:
    """``fn()`` eagerly, with the weights' values checked in prepare as before deferral."""
    with monkeypatch.context() as m:
        m.setattr("regloss._validate._deferrable", lambda *_: False)
        return _eager(m, fn)


def _torch_value_and_grad(f: Any, pred: Any, w: Any) -> tuple[Any, ...]:
    x = torch.from_numpy(pred.copy()).requires_grad_()
    value = f(x, torch.from_numpy(w))
    (grad,) = torch.autograd.grad(value, x)
    return value.detach().numpy(), grad.numpy()


def _route(x: Any, t: Any, loss: Any = None, **kw: Any) -> str:
    """The torch route of a call (its facts: x requires grad)."""
    return rtf.explain(loss or get_loss("cauchy"), x, t, **kw).route


def test_kernels_apply_only_where_they_are_valid(built: Any) -> None:
    loss = get_loss("cauchy")
    _kernel_on(built, loss, np.float32)
    x, t = torch.randn(8, requires_grad=True), torch.randn(8)
    assert _route(x, t, loss) == "c_kernel"
    assert _route(x[::2], t[::2], loss) == "eager"  # strided
    assert _route(x.double(), t, loss) == "eager"  # mixed dtypes
    assert _route(x.half(), t.half(), loss) == "eager"  # half: computed in float32
    assert _route(x.to("meta"), t.to("meta"), loss) == "eager"
    from torch._subclasses import FakeTensorMode

    with FakeTensorMode():
        xf, tf = torch.randn(8), torch.randn(8)
        assert _route(xf, tf, loss) == "eager"
    mse = get_loss("mse")  # psi = 2r: PyTorch's own kernel, or eager with one pass
    assert _route(x, t, mse, mask=t > 0) == "eager"
    quantile = get_loss("quantile", q=(0.1, 0.9))  # one level per output
    why = rnp.explain(quantile, np.zeros((3, 2)), np.ones((3, 2))).declined
    assert ("c_kernel", "the loss differs by position (per-element parameters)") in why
    assert _route(x, t, loss, weight=torch.rand(8)) == "c_kernel"  # the weighted kernel
    weighted = rtf.loss(loss, x, t, weight=torch.rand(8, dtype=torch.float64))
    assert torch.isfinite(weighted)  # weights of another dtype: eager


def test_kernels_off_no_compiler_and_too_many_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    loss = form_of(get_loss("welsch", c=1.2345))
    monkeypatch.setenv("REGLOSS_KERNELS", "0")
    assert c.kernel(loss, "float32") is None
    assert c.status()["all"] == "disabled by REGLOSS_KERNELS=0"
    monkeypatch.setenv("REGLOSS_KERNELS", "1")
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr(c, "_KERNELS", {})
    monkeypatch.setattr(c, "_READY", {})
    monkeypatch.setattr(c, "_PER_CLASS", {})
    assert c.kernel(loss, "float32") is None
    want = "no kernel: no C compiler (set CC, or install gcc)"
    assert c.status()[f"{loss.key} float32"] == want
    # the eager path still answers
    assert np.isfinite(rnp.welsch(np.ones(3), np.zeros(3), c=1.2345))
    monkeypatch.setattr(c, "_PER_CLASS", {type(loss.definition): c.MAX_PER_CLASS})
    other = form_of(get_loss("welsch", c=2.5))
    assert c.kernel(other, "float64") is None
    want = f"more than {c.MAX_PER_CLASS} parameter settings: eager"
    assert c.status()[f"{other.key} float64"] == want


def test_first_request_builds_before_the_call_and_caches_on_disk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """A kernel is built when first asked for, before that call runs (so a call's route
    never depends on a build finishing elsewhere), and lands on disk atomically, where the
    next process loads it instead of compiling."""
    monkeypatch.setenv("REGLOSS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(c, "_KERNELS", {})
    monkeypatch.setattr(c, "_READY", {})
    monkeypatch.setattr(c, "_PER_CLASS", {})
    loss = form_of(get_loss("tukey", c=3.25))
    k = c.kernel(loss, "float64")  # built now
    assert k is not None and k.compile_s > 0
    assert c.kernel(loss, "float64") is k
    files = list(tmp_path.glob("rl_*.so"))
    assert len(files) == 1 and not [p for p in tmp_path.iterdir() if p.is_dir()]
    again = c._build(c.source(loss, "float64"), "float64", 2, 1)  # "next process": loads it
    assert again.compile_s < k.compile_s and list(tmp_path.glob("rl_*.so")) == files


def test_concurrent_first_requests_build_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("REGLOSS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(c, "_KERNELS", {})
    monkeypatch.setattr(c, "_READY", {})
    monkeypatch.setattr(c, "_PER_CLASS", {})
    loss = form_of(get_loss("fair", c=0.625))
    with ThreadPoolExecutor(max_workers=4) as pool:
        kernels = list(pool.map(lambda _: c.kernel(loss, "float32"), range(8)))
    assert kernels[0] is not None and all(k is kernels[0] for k in kernels)
    assert len(list(tmp_path.glob("rl_*.so"))) == 1


def test_threads_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGLOSS_NUM_THREADS", "3")
    assert c.threads() == 3
    monkeypatch.delenv("REGLOSS_NUM_THREADS")
    assert c.threads() == torch.get_num_threads()


def test_generated_source_is_one_loop_from_the_definition() -> None:
    src = c.source(form_of(get_loss("cauchy", c=2.0)), "float32")
    assert "log1pf" in src and "#pragma omp declare simd" in src
    assert "0x1.0000000000000p+1" in src  # c = 2 as the float32 constant
    # fwd, val, their weighted forms, elem, and the weighted mean's scaling of psi
    assert src.count("for (int64_t i = 0; i < n; i++)") == 6
    assert os.linesep not in src.replace("\n", "")


_CALL = re.compile(r"= (?:exp|expm1|log|log1p|sinh|tanh|pow)f?\(")
_VECTOR_CALL = re.compile(r"call\s+(_ZGV[a-z]N\d+)v+_\w+")


def _assembly(src: str) -> str:
    """The assembly GCC makes of a generated source with the kernels' flags."""
    cc = c._compiler()
    assert cc is not None, "the generated kernels need a C compiler"
    flags = [f for f in c.FLAGS if f not in ("-shared", "-fPIC")]
    cmd = [cc, *flags, "-S", "-o", "-", "-x", "c", "-"]
    return subprocess.run(cmd, input=src, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_each_transcendental_call_is_made_once_per_vector_step(dtype: str) -> None:
    """The vectorised loop of rl_fwd calls libmvec no more often than the generated source
    calls a function. GCC's jump threading once copied a call lying between two selects on
    one condition into both paths, and the vectoriser then made both calls: Cauchy's one
    log1p ran twice, Barron's three calls five (c.FLAGS now turns that copying off)."""
    for name in regloss.available_losses():
        loss = get_loss(name)
        if loss.depends_on_position():
            continue
        src = c.source(form_of(loss), dtype)
        fwd = src[src.index("double rl_fwd") : src.index("double rl_val")]
        in_source = len(_CALL.findall(fwd))
        asm = _assembly(src)
        body = asm.split("rl_fwd._omp_fn.0:", 1)[1].split(".size\trl_fwd._omp_fn.0", 1)[0]
        per_isa: dict[str, int] = {}
        for isa in _VECTOR_CALL.findall(body):  # a main loop and a narrower epilogue
            per_isa[isa] = per_isa.get(isa, 0) + 1
        assert max(per_isa.values(), default=0) <= in_source, (name, in_source, per_isa)


_SCALAR_CALL = re.compile(r"call\s+(?:exp|expm1|log|log1p|sinh|tanh|pow)f?(?:@PLT)?\b")


def _calls_per_parallel_loop(src: str) -> dict[str, tuple[int, int]]:
    """{outlined OpenMP function: (scalar libm calls, libmvec calls)} in the assembly GCC
    makes of ``src``."""
    asm = _assembly(src)
    out: dict[str, tuple[int, int]] = {}
    fn = ""
    for line in asm.splitlines():
        if (m := re.match(r"^([A-Za-z_][\w.]*):", line)) is not None:
            fn = m.group(1)
        if "._omp_fn." not in fn:
            continue
        scalar, vector = out.get(fn, (0, 0))
        out[fn] = (scalar + bool(_SCALAR_CALL.search(line)), vector + ("call\t_ZGV" in line))
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_loops_below_the_thread_threshold_are_vectorised_too(dtype: str) -> None:
    """A kernel called on fewer than PARALLEL_FROM elements runs its loop on one thread, and
    that loop is the vectorised one: the thread threshold's ``if`` clause names
    ``parallel``. Unnamed, it also applied to ``simd``, and GCC added a scalar copy of every
    loop for small inputs, calling scalar libm per element (Cauchy: 27 ns an element below
    2^16, 3 ns above). So the assembly must make exactly the calls it makes with no
    threshold at all, and the transcendental loops must call libmvec."""
    sources = {
        name: c.source(form_of(get_loss(name)), dtype) for name in regloss.available_losses()
    }
    for name in regloss.available_nll_losses():
        for log in (False, True):
            sources[f"{name} log={log}"] = c.source(form_of(get_nll_loss(name), log), dtype)
    threshold = re.compile(r" if\((?:parallel: )?n >= \d+\)")
    vectorised = 0
    for name, src in sources.items():
        assert threshold.search(src), name
        calls = _calls_per_parallel_loop(src)
        assert calls == _calls_per_parallel_loop(threshold.sub("", src)), name
        vectorised += all(vector > 0 for scalar, vector in calls.values() if scalar)
    assert vectorised == len(sources)


# --- negative log-likelihoods ---------------------------------------------------------------

NLLS = [
    pytest.param(name, log, id=f"{name}{'-log' if log else ''}")
    for name in regloss.available_nll_losses()
    for log in (False, True)
]


def _nll_spec(name: str, log: bool, **params: Any) -> Any:
    return form_of(get_nll_loss(name, **params), log)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "log"), NLLS)
def test_generated_nll_kernels_equal_the_definition_over_the_range(
    name: str, log: bool, dtype: Any
) -> None:
    """Each (r, s) pair of a grid from the subnormals to finfo.max (s below eps included:
    the floor) through the kernel, one element per call: the value and both derivatives
    equal the definition's (itself held to mpmath in test_range) to a few ulps."""
    from regloss.losses._nll import in_form

    spec = _nll_spec(name, log, eps=1e-6)
    k = c._build(c.source(spec, DTYPES[dtype]), DTYPES[dtype], 3, 2)
    fi = np.finfo(dtype)
    mags = np.geomspace(float(fi.smallest_normal), float(fi.max) / 4, 25).astype(dtype)
    r = np.concatenate([[0.0], mags, -mags]).astype(dtype)
    s = (
        np.concatenate([np.linspace(-80, 80, 17), [0.0]])
        if log
        else np.concatenate([[0.0, 1e-9], mags])
    )
    s = s.astype(dtype)
    rr, ss = (a.ravel().copy() for a in np.meshgrid(r, s))
    zero = np.zeros_like(rr)
    d_r, d_s = np.empty_like(rr), np.empty_like(rr)
    ins = (rr.ctypes.data, zero.ctypes.data, ss.ctypes.data)
    k.fwd(ins, (d_r.ctypes.data, d_s.ctypes.data), rr.size, 1.0, 1)
    item = rr.itemsize
    value = np.array([k.val(tuple(a + i * item for a in ins), 1, 1) for i in range(rr.size)])
    fns = in_form(spec.nll, log)
    floor = np.log(dtype(spec.nll.eps)) if log else dtype(spec.nll.eps)
    v = np.maximum(ss, floor).astype(dtype)
    with np.errstate(all="ignore"):
        want = [fns.value(rr, v), *fns.grad(rr, v)]
    rtol = 4e-6 if dtype == np.float32 else 1e-13
    for got, ref, what in zip((value, d_r, d_s), want, ("value", "d/dr", "d/ds")):
        ref = ref.astype(np.float64)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), err_msg=what)
        np.testing.assert_array_equal(np.isinf(got), np.isinf(ref), err_msg=what)
        ok = np.isfinite(ref)
        tiny = float(fi.smallest_normal) * rtol
        np.testing.assert_allclose(got[ok], ref[ok], rtol=rtol, atol=tiny, err_msg=what)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "log"), NLLS)
def test_nll_front_ends_with_kernels_equal_eager(
    monkeypatch: pytest.MonkeyPatch, name: str, log: bool, dtype: torch.dtype
) -> None:
    import regloss.torch as rt

    spec = _nll_spec(name, log)
    assert c.kernel(spec, "float32" if dtype == torch.float32 else "float64") is not None
    g = torch.Generator().manual_seed(4)
    x = 3 * torch.randn(70_001, generator=g, dtype=dtype)
    t = torch.randn(70_001, generator=g, dtype=dtype)
    s = (
        torch.randn(70_001, generator=g, dtype=dtype)
        if log
        else torch.rand(70_001, generator=g, dtype=dtype) + 0.05
    )
    flag = {"log_var" if name == "gaussian_nll" else "log_scale": log}
    fn = rt.gaussian_nll_loss if name == "gaussian_nll" else rt.laplace_nll_loss

    w = torch.rand(70_001, generator=g, dtype=dtype)

    def step(reduction: str, weight: torch.Tensor | None = None) -> list[torch.Tensor]:
        xa, sa = x.clone().requires_grad_(), s.clone().requires_grad_()
        value = fn(xa, t, sa, reduction=reduction, weight=weight, **flag)
        return [value.detach(), *torch.autograd.grad(value, (xa, sa))]

    # d/ds crosses zero (1/(2v) - r²/(2v²)): its error is measured against its own scale.
    # The kernel rounds 0.5/v once where PyTorch's eager scalar/tensor rounds twice
    # (reciprocal, then multiply), and libmvec's exp is not PyTorch's: ulp-level
    # differences in both terms, never beyond rtol of the derivative's scale.
    rtol = 4e-6 if dtype == torch.float32 else 1e-12
    for reduction, weight in [(r, wt) for r in ("mean", "sum") for wt in (None, w)]:
        got = step(reduction, weight)  # weighted: the one-pass weighted kernel
        want = _eager(monkeypatch, lambda red=reduction, wt=weight: step(red, wt))
        for a, b in zip(got, want):
            scale = float(b.abs().max())
            torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * scale)
    arrays = [a.numpy() for a in (x, t, s)]
    got_np = rnp.nll_value_and_grads(name, *arrays, **flag)
    want_np = _eager(monkeypatch, lambda: rnp.nll_value_and_grads(name, *arrays, **flag))
    for a, b in zip(got_np, want_np):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * float(np.max(np.abs(b))))


def test_nll_kernels_only_where_they_apply() -> None:
    import regloss.torch as rt
    from regloss.torch._routes import TABLE, facts_of

    x, t, v = torch.randn(6, requires_grad=True), torch.randn(6), torch.rand(6) + 0.5

    def route(*inputs: Any, **kw: Any) -> str:
        spec = get_nll_loss("gaussian_nll", **kw.pop("params", {}))
        from regloss._reduction import MEAN, Options

        form = form_of(spec, kw.pop("log", False))
        return TABLE.choose(facts_of(form, inputs, Options(MEAN, **kw))).name

    assert route(x, t, v) == "c_kernel"
    assert route(x, t, v, params={"beta": 0.5}) == "c_kernel"  # beta-weights: traced too
    assert route(x, t, v, weight=torch.rand(6)) == "c_kernel"  # the weighted kernel
    assert route(x, t, v[:1]) == "eager"  # a broadcast scale input
    assert route(x, t, v.double()) == "eager"  # mixed dtypes
    assert route(x, t, v, mask=t > 0) == "eager"
    # and the values agree with the eager definition there
    for kw in ({"beta": 0.5}, {}):
        got = rt.gaussian_nll_loss(x, t, v, **kw)
        with rt.use_route("eager"):
            want = rt.gaussian_nll_loss(x, t, v, **kw)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=0)


def test_a_forked_child_gets_a_fresh_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a fork the child has none of the parent's threads: a lock one of them held at
    the fork is replaced."""
    held = threading.RLock()
    acquired = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with held:
            acquired.set()
            release.wait(5)

    other = threading.Thread(target=hold)
    other.start()
    acquired.wait(5)
    monkeypatch.setattr(c, "_LOCK", held)
    c._after_fork_in_child()
    try:
        assert c._LOCK is not held and c._LOCK.acquire(timeout=1)
        c._LOCK.release()
    finally:
        release.set()
        other.join()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    ("name", "fn"), [("mae", "l1_loss"), ("huber", "huber_loss"), ("smooth_l1", "smooth_l1_loss")]
)
def test_long_inputs_take_the_generated_kernel_and_equal_pytorch(
    name: str, fn: str, dtype: torch.dtype
) -> None:
    """From its threshold regloss's one-pass kernel replaces PyTorch's own loss, whose
    forward and backward read the inputs twice; below it, and for reduction='none',
    PyTorch's. Values and gradients equal PyTorch's."""
    loss = get_loss(name)
    assert c.kernel(form_of(loss), str(dtype).removeprefix("torch.")) is not None
    size = threshold({"mae": "c_kernel_l1"}.get(name, f"c_kernel_{name}"))
    for n, ours in ((size, True), (size - 1, False)):
        for reduction in ("mean", "sum"):
            x = torch.randn(n, dtype=dtype, requires_grad=True)
            t = torch.randn(n, dtype=dtype)
            value = getattr(rtf, fn)(x, t, reduction=reduction)
            assert (type(value.grad_fn).__name__ == "CarrierBackward") is ours
            (g,) = torch.autograd.grad(value, x)
            xr = x.detach().requires_grad_()
            ref = getattr(torch.nn.functional, fn)(xr, t, reduction=reduction)
            (gr,) = torch.autograd.grad(ref, xr)
            rtol = 2e-6 if dtype == torch.float32 else 1e-13
            torch.testing.assert_close(value, ref, rtol=rtol, atol=0)
            torch.testing.assert_close(g, gr, rtol=rtol, atol=0)
    node = type(getattr(rtf, fn)(x, t, reduction="none").grad_fn).__name__
    assert node != "CarrierBackward"


def test_kernels_off_turns_built_kernels_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """REGLOSS_KERNELS=0 is obeyed at every call, so the eager references above are eager."""
    loss = form_of(get_loss("cauchy"))
    assert c.kernel(loss, "float64") is not None
    monkeypatch.setenv("REGLOSS_KERNELS", "0")
    assert c.kernel(loss, "float64") is None
    x = np.linspace(-3, 3, 11)
    assert rnp.explain("cauchy", x, np.zeros(11)).route == "eager"


def _evaluate(node: Any, r: np.ndarray) -> np.ndarray:
    """A traced graph evaluated with NumPy in r's dtype (each node once)."""
    from regloss._kernels.trace import FUNCTIONS, INFIX

    dt = r.dtype.type
    memo: dict[int, Any] = {}
    binary = {
        **{"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide},
        **{"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal},
        **{"eq": np.equal, "ne": np.not_equal, "and": np.logical_and, "or": np.logical_or},
    }
    assert set(binary) == set(INFIX)

    def ev(x: Any) -> Any:
        if not isinstance(x, Sym):
            return dt(x)
        if id(x) in memo:
            return memo[id(x)]
        a = [ev(v) for v in x.args]
        op = x.op
        if op == "r":
            out = r
        elif op == "const":
            out = np.full_like(r, a[0])
        elif op in binary:
            out = binary[op](a[0], a[1])
        elif op == "where":
            out = np.where(a[0], a[1], a[2])
        elif op == "neg":
            out = -a[0]
        elif op == "not":
            out = np.logical_not(a[0])
        elif op == "isfinite":
            out = np.isfinite(a[0])
        elif op == "sign":
            out = np.sign(a[0])
        else:
            assert op in FUNCTIONS, op
            out = (np.power if op == "pow" else getattr(np, op))(*a)
        memo[id(x)] = out
        return out

    with np.errstate(all="ignore"):
        return np.asarray(ev(node), dtype=r.dtype)


def _count(node: Any, ops: set[str]) -> int:
    seen: dict[int, Any] = {}
    stack = [node]
    while stack:
        x = stack.pop()
        if isinstance(x, Sym) and id(x) not in seen:
            seen[id(x)] = x
            stack.extend(x.args)
    return sum(1 for x in seen.values() if x.op in ops)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "p"), params(CASES))
def test_hoisting_selects_keeps_every_value_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch, name: str, p: dict, dtype: Any
) -> None:
    """where(c, f(a, b), f(d, e)) -> f(where(c, a, d), where(c, b, e)) changes no value: the
    graphs with and without the rewrite agree bit for bit over the whole range."""
    from regloss._kernels import trace as tr

    loss = get_loss(name, **p)
    r = _grid(dtype, loss)
    for method in ("rho", "psi", "psi_prime"):
        hoisted = trace(getattr(loss, method))
        with monkeypatch.context() as m:
            m.setattr(tr, "HOISTED", frozenset())
            plain = trace(getattr(loss, method))
        assert _count(hoisted, set(tr.HOISTED)) <= _count(plain, set(tr.HOISTED)), method
        a, b = _evaluate(hoisted, r), _evaluate(plain, r)
        np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=method)


def test_hoisting_saves_the_second_division_and_keeps_shared_ones() -> None:
    from regloss._kernels import trace as tr

    # Cauchy's psi divides once per side of its overflow-safe where: one division fewer
    loss = get_loss("cauchy")
    with pytest.MonkeyPatch.context() as m:
        m.setattr(tr, "HOISTED", frozenset())
        plain = trace(loss.psi)
    assert _count(trace(loss.psi), {"div"}) == _count(plain, {"div"}) - 1

    # a division used beside the where stays as it is (hoisting would compute it twice)
    def shared(r: Any) -> Any:
        q = r / 3.0
        return q + namespace_where(r > 1.0, q, 1.0 / r)

    g = trace(shared)
    assert _count(g, {"div"}) == 2 and _count(g, {"where"}) == 1
    h = trace(lambda r: namespace_where(r > 1.0, 2.0 / r, 1.0 / (r * r)))
    assert _count(h, {"div"}) == 1 and _count(h, {"where"}) == 2


def namespace_where(c: Any, a: Any, b: Any) -> Any:
    from regloss._namespace import namespace

    return namespace(a).where(c, a, b)
