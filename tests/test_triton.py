"""Generated Triton kernels, run on the CPU by Triton's interpreter (TRITON_INTERPRET=1).

CI has no GPU. The interpreter executes each generated kernel as written — loads, masks,
selects, block sums, stores — with NumPy standing in for libdevice's math functions; so
these tests prove the generated code and its wiring into the PyTorch front-end, and
``benchmarks/cuda_check.py`` / ``benchmarks/bench_gpu.py`` prove the same on a real device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from tests.settings import SETTINGS, params
from tests.test_range import EXTREMES, _grid, check_contract

import regloss
from regloss import _kernels
from regloss._kernels import gpu
from regloss._thresholds import THRESHOLDS
from regloss.losses import form_of, get_loss, get_nll_loss
from regloss.torch import functional as rtf

CASES = [(n, p) for n, p in SETTINGS + EXTREMES if not get_loss(n, **p).depends_on_position()]
# The interpreter computes with NumPy, which warns where the range sweep overflows on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture(autouse=True)
def _interpreted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv("REGLOSS_KERNELS", "1")
    monkeypatch.setattr(_kernels, "TRITON_DEVICES", {"cuda", "cpu"})
    # blocks of 1,024 (the default is 4,096): the shapes below then span several blocks
    # with a ragged last one, and the interpreter runs each program as NumPy
    monkeypatch.setattr(gpu, "BLOCK", 1024)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "p"), params(CASES))
def test_generated_triton_kernels_keep_the_contract(name: str, p: dict, dtype: Any) -> None:
    """rl_elem's rho, psi and psi' over the whole range against 60-digit mpmath."""
    loss = get_loss(name, **p)
    r = _grid(dtype, loss)
    rho, psi, dpsi = gpu.elementwise(form_of(loss), torch.from_numpy(r))
    check_contract(name, loss.params, dtype, r, rho.numpy(), psi.numpy(), dpsi.numpy())


def _options(kind: str, shape: tuple[int, int]) -> dict[str, Any]:
    g = torch.Generator().manual_seed(3)
    return {
        "plain": {},
        "sum": {"reduction": "sum"},
        "none": {"reduction": "none"},
        "batchmean": {"reduction": "batchmean"},
        "weight": {"weight": torch.rand(shape, generator=g) + 0.1},
        "weight-per-sample": {"weight": torch.rand(shape[0], generator=g)},
        "mask": {"mask": torch.rand(shape, generator=g) > 0.4},
        "omit": {"nan_policy": "omit"},
    }[kind]


def _run(name: str, x: torch.Tensor, t: torch.Tensor, kw: dict[str, Any]) -> list[torch.Tensor]:
    """value, the training step's gradient (the kernel's ψ), the differentiable gradient
    (create_graph) and the double backward."""
    x = x.detach().requires_grad_()
    value = rtf.loss(name, x, t, **kw)
    (fast,) = torch.autograd.grad(value.sum() * 3, x)  # an incoming gradient other than 1
    value = rtf.loss(name, x, t, **kw)
    (g,) = torch.autograd.grad(value.sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x, allow_unused=True)
    return [value.detach(), fast, g.detach(), torch.zeros_like(x) if h is None else h]


def _compare(
    monkeypatch: pytest.MonkeyPatch, name: str, x: Any, t: Any, kw: dict, tol: dict
) -> None:
    calls: list[int] = []
    real = gpu.forward
    monkeypatch.setattr(gpu, "forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = _run(name, x, t, kw)
    assert calls or _pytorch_kernel_serves(name, x, t, kw), "the Triton kernel did not run"
    with monkeypatch.context() as m:
        m.setenv("REGLOSS_KERNELS", "0")
        want = _run(name, x, t, kw)
    whats = ["value", "training gradient", "gradient", "double backward"]
    for a, b, what in zip(got, want, whats, strict=True):
        assert a.dtype == b.dtype, what
        t_ = tol
        if what == "training gradient" and a.dtype in (torch.float16, torch.bfloat16):
            # both round one float32 product to the half dtype, but the kernel forms
            # ψ·(1/N)·g where eager forms ψ·(g/N): the float32 roundings differ, which can
            # move the half rounding by one unit in the last place
            t_ = {"rtol": torch.finfo(a.dtype).eps, "atol": 1e-7}
        torch.testing.assert_close(a, b, **t_, msg=lambda m, w=what: f"{name} {w}: {m}")  # type: ignore[misc]


def _pytorch_kernel_serves(name: str, x: Any, t: Any, kw: dict[str, Any]) -> bool:
    """PyTorch's own fused loss (the torch_native rows) comes first where it applies."""
    route = rtf.explain(name, x.detach().requires_grad_(), t, **kw).route
    return route in ("torch_native", "torch_native_weighted")


KINDS = ["plain", "sum", "none", "batchmean", "weight", "weight-per-sample", "mask", "omit"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", regloss.available_losses())
def test_torch_front_end_through_triton_equals_eager(
    monkeypatch: pytest.MonkeyPatch, name: str, kind: str
) -> None:
    """Every loss and option: value, gradient and double backward through the generated
    kernel equal regloss's eager path (shapes spanning several blocks, a ragged last one)."""
    if get_loss(name).depends_on_position():
        pytest.skip("quantile depends on the element's position only with several levels")
    g = torch.Generator().manual_seed(1)
    shape = (700, 3)
    x = 3 * torch.randn(shape, generator=g)
    t = torch.randn(shape, generator=g)
    if kind == "omit":
        t[::7, 1] = float("nan")
    _compare(monkeypatch, name, x, t, _options(kind, shape), {"rtol": 2e-6, "atol": 1e-7})


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", regloss.available_losses())
def test_triton_dtypes_equal_eager(
    monkeypatch: pytest.MonkeyPatch, name: str, dtype: torch.dtype
) -> None:
    """float64 computes in float64; half inputs compute in float32 as the eager path does."""
    g = torch.Generator().manual_seed(2)
    x = (3 * torch.randn(2000, generator=g)).to(dtype)
    t = torch.randn(2000, generator=g).to(dtype)
    tol = {"rtol": 1e-12, "atol": 1e-14} if dtype == torch.float64 else {"rtol": 2e-6, "atol": 1e-6}
    _compare(monkeypatch, name, x, t, {}, tol)


def test_triton_is_not_used_where_it_does_not_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "forward", lambda *a, **k: pytest.fail("Triton used"))
    x, t = torch.randn(4, 2), torch.randn(4, 2)
    rtf.quantile_loss(x, t, q=(0.2, 0.8))  # one level per output: position-dependent
    rtf.cauchy_loss(x, t[:1], broadcast=True)  # broadcast target
    rtf.cauchy_loss(x, t.double())  # mixed dtypes
    monkeypatch.setenv("REGLOSS_KERNELS", "0")
    rtf.cauchy_loss(x, t)


def test_generated_triton_source_reads_each_input_once() -> None:
    src = gpu.source(form_of(get_loss("welsch")))
    fwd = src[src.index("def rl_fwd") : src.index("def rl_elem")]
    assert fwd.count("tl.load(in0_ptr") == 1 and fwd.count("tl.load(in1_ptr") == 1
    assert fwd.count("tl.store(g0_ptr") == 1 and "M_exp(" in fwd
    assert "g1_ptr" not in fwd  # one argument, one gradient buffer
    nll = gpu.source(form_of(get_nll_loss("gaussian_nll"), True))
    fwd = nll[nll.index("def rl_fwd") : nll.index("def rl_elem")]
    assert fwd.count("tl.load(in2_ptr") == 1 and fwd.count("tl.store(g1_ptr") == 1


_AOT = """
import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
import regloss
from regloss._kernels import gpu
from regloss.losses import form_of

def signature(fn, types, consts):
    names = fn.arg_names
    sig = {a: ("constexpr" if a in consts else types.get(a, "i32")) for a in names}
    where = {(names.index(k),): v for k, v in consts.items()}
    return ASTSource(fn=fn, signature=sig, constexprs=where)

target = GPUTarget("cuda", 90, 32)  # Hopper, the H100/H200
forms = {name: form_of(regloss.get_loss(name)) for name in regloss.available_losses()}
for name in regloss.available_nll_losses():
    for log in (False, True):
        forms[f"{name}{'-log' if log else ''}"] = form_of(regloss.get_nll_loss(name), log)
for name, form in forms.items():
    mod = gpu.module(form)
    k, m = form.n_inputs, form.n_args
    # bfloat16 inputs, every option on, and the scale's numerator 1: Triton passes an
    # integer argument equal to 1 as a constexpr Python int (a trap the interpreter hides)
    fwd = dict(w_ptr="*fp32", k_ptr="*u8", v_ptr="*fp32", part_ptr="*fp64",
               fpart_ptr="*fp32", out_ptr="*bf16", cnt_ptr="*i32", den="i64")
    fwd |= {f"in{i}_ptr": "*bf16" for i in range(k)} | {f"g{j}_ptr": "*fp32" for j in range(m)}
    # every code path at once (the finishing program's reduction, ρ·f written, 64-bit
    # offsets), and for one loss the 32-bit offsets too
    for i64 in (True, False) if name == "cauchy" else (True,):
        flags = dict(num=1, HAS_W=True, HAS_K=True, OMIT=True, WANT_G=True, WANT_V=True,
                     WANT_F=True, FINAL=True, F64=False, I64=i64, BLOCK=gpu.BLOCK,
                     RBLOCK=gpu.RBLOCK)
        triton.compile(signature(mod.rl_fwd, fwd, flags), target=target,
                       options=dict(num_warps=gpu.NUM_WARPS))
    elem = {f"a{j}_ptr": "*fp64" for j in range(m)}
    elem |= {f"o{j}_ptr": "*fp64" for j in range(1 + m + m * (m + 1) // 2)}
    flags = dict(F64=True, I64=False, BLOCK=gpu.BLOCK)
    triton.compile(signature(mod.rl_elem, elem, flags), target=target,
                   options=dict(num_warps=gpu.NUM_WARPS))
    print("compiled", name, flush=True)
scale = gpu._load(gpu.SCALE_SOURCE).rl_scale
for dtype in ("fp32", "fp64"):
    types = dict(g_ptr="*" + dtype, s_ptr="*" + dtype, n="i64")
    for i64 in (False, True):
        triton.compile(signature(scale, types, dict(I64=i64, BLOCK=gpu.BLOCK)), target=target,
                       options=dict(num_warps=gpu.NUM_WARPS))
print("compiled rl_scale", flush=True)
"""


def test_every_generated_kernel_compiles_for_a_cuda_gpu(tmp_path: Any) -> None:
    """The interpreter runs kernels as Python, so code the GPU compiler rejects can pass it
    (an argument equal to 1 is specialised to a constexpr int; libdevice must resolve every
    math function). Triton compiles for a GPU it does not have: each loss's rl_fwd (float32
    and half paths, every option) and rl_elem (float64) go through ptxas for sm_90, in a
    process without TRITON_INTERPRET (triton.jit decides at import)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env |= {"TRITON_CACHE_DIR": str(tmp_path / "triton"), "REGLOSS_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _AOT], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    compiled = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("compiled")}
    nlls = {f"{n}{s}" for n in regloss.available_nll_losses() for s in ("", "-log")}
    assert compiled == {*regloss.available_losses(), *nlls, "rl_scale"}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("s", [1.0, 3.0, -1.0, 0.0, -0.0, float("nan"), float("inf"), 1e-40])
def test_gradient_scaling_is_decided_on_the_device(dtype: torch.dtype, s: float) -> None:
    """rl_scale multiplies the gradient buffer by the 0-d incoming gradient read on the
    device, and leaves it as it is where that is exactly 1 (``loss.backward()``): its mask
    is empty then, so the pass loads and stores nothing."""
    g = torch.randn(3 * gpu.BLOCK + 17, dtype=dtype, generator=torch.Generator().manual_seed(4))
    g[5] = float("nan")
    want = g * torch.tensor(s, dtype=dtype)
    gpu.scale_into(g, torch.tensor(s, dtype=dtype))
    torch.testing.assert_close(g, want, rtol=0, atol=0, equal_nan=True)
    kernel = gpu.SCALE_SOURCE[gpu.SCALE_SOURCE.index("def rl_scale") :]
    assert "m = offs < tl.where(s == 1, 0, n)" in kernel
    assert kernel.count("mask=m") == 2 and kernel.count("tl.load(g_ptr") == 1


@pytest.mark.parametrize("from_", [4096, 8192])
@pytest.mark.parametrize("incoming", [1.0, 3.0, float("nan")])
def test_training_step_multiplies_on_the_device(
    monkeypatch: pytest.MonkeyPatch, incoming: float, from_: int
) -> None:
    """On a Triton device the backward never reads the incoming gradient on the host: a
    CUDA tensor's ``g == 1`` would synchronise. From SCALE_ON_DEVICE_FROM elements the
    device kernel decides, also for 1; below, PyTorch's mul_ multiplies."""
    calls: list[torch.Tensor] = []
    real = gpu.scale_into
    monkeypatch.setattr(gpu, "scale_into", lambda g, s: calls.append(s) or real(g, s))
    monkeypatch.setattr(gpu, "SCALE_ON_DEVICE_FROM", from_)
    monkeypatch.setattr("regloss.torch._carrier._is_one", lambda g: False)  # as on CUDA
    x = (3 * torch.randn(5000, generator=torch.Generator().manual_seed(5))).requires_grad_()
    t = torch.randn(5000, generator=torch.Generator().manual_seed(6))
    rtf.cauchy_loss(x, t).backward(torch.tensor(incoming))
    with monkeypatch.context() as m:
        m.setenv("REGLOSS_KERNELS", "0")
        xr = x.detach().clone().requires_grad_()
        rtf.cauchy_loss(xr, t).backward(torch.tensor(incoming))
    assert len(calls) == (1 if from_ <= 5000 else 0) and all(s.dim() == 0 for s in calls)
    torch.testing.assert_close(x.grad, xr.grad, rtol=2e-6, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize(("rblock", "final_max"), [(2, 11), (8, 11), (gpu.RBLOCK, 11), (8, 10)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_the_finishing_program_adds_every_partial_sum(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype, rblock: int, final_max: int
) -> None:
    """rl_fwd's last program adds the per-block partial sums in float64 (in steps of RBLOCK,
    here also 2 and 8 so that 11 blocks take several steps with a ragged last one), writes
    the total in the output dtype and leaves the stream's counter at 0 for the next launch;
    past FINAL_MAX_BLOCKS blocks PyTorch adds them (10 here: the same result)."""
    monkeypatch.setattr(gpu, "RBLOCK", rblock)
    monkeypatch.setattr(gpu, "FINAL_MAX_BLOCKS", final_max)
    loss = get_loss("cauchy")
    form = form_of(loss)
    g = torch.Generator().manual_seed(7)
    n = 10 * gpu.BLOCK + 3
    x = (3 * torch.randn(n, generator=g)).to(dtype)
    t = torch.randn(n, generator=g).to(dtype)
    for ratio, out in [((1, 1), dtype), ((1, n), dtype), ((1, n), torch.float64)]:
        total, _, (psi,), _ = gpu.forward(
            form, (x, t), scale=ratio, want_count=False, total_dtype=out
        )
        r = x.double() - t.double()
        want = torch.from_numpy(loss.rho(r.numpy())).sum() * ratio[0] / ratio[1]
        assert total.dtype == out and total.dim() == 0
        # ρ in float32 for float32 and half inputs: a bfloat16 total may round one unit apart
        tol = 2e-6 if out != torch.bfloat16 else torch.finfo(out).eps
        torch.testing.assert_close(total.double(), want.to(out).double(), rtol=tol, atol=0)
        assert int(gpu._counter(x.device)) == 0
    assert psi is not None and psi.shape == x.shape


@pytest.mark.parametrize("name", ["mse", "mae", "huber", "smooth_l1"])
def test_pytorchs_own_losses_yield_to_the_generated_kernel_on_large_gpu_inputs(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """From GENERATED_ON_GPU_FROM float32 elements on a Triton device, mse/l1/huber/
    smooth_l1 take the generated kernel (12 bytes an element per step, not PyTorch's 20),
    with the same value and gradient; below it, for reduction='none' and for float64 (not
    measured on a device), PyTorch's own kernel."""
    small = THRESHOLDS["triton_over_native"]._replace(value=3000)
    monkeypatch.setitem(THRESHOLDS, "triton_over_native", small)
    calls: list[int] = []
    real = gpu.forward
    monkeypatch.setattr(gpu, "forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    g = torch.Generator().manual_seed(8)
    cases = [(4000, "mean", torch.float32, True), (4000, "sum", torch.float32, True),
             (2000, "mean", torch.float32, False), (4000, "none", torch.float32, False),
             (4000, "mean", torch.float64, False)]  # fmt: skip
    for n, reduction, dtype, generated in cases:
        x = (3 * torch.randn(n, generator=g, dtype=dtype)).requires_grad_()
        t = torch.randn(n, generator=g, dtype=dtype)
        calls.clear()
        value = rtf.loss(name, x, t, reduction=reduction)
        value.sum().backward()
        assert bool(calls) == generated, (n, reduction)
        xr = x.detach().clone().requires_grad_()
        want = getattr(torch.nn.functional, {"mae": "l1_loss"}.get(name, f"{name}_loss"))(
            xr, t, reduction=reduction
        )
        want.sum().backward()
        tol = {"rtol": 1e-12, "atol": 1e-14} if dtype == torch.float64 else {}
        torch.testing.assert_close(value, want, **tol)
        torch.testing.assert_close(x.grad, xr.grad, **tol)


NLLS = [
    pytest.param(name, log, id=f"{name}{'-log' if log else ''}")
    for name in regloss.available_nll_losses()
    for log in (False, True)
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("name", "log"), NLLS)
def test_nll_through_triton_equals_eager(
    monkeypatch: pytest.MonkeyPatch, name: str, log: bool, kind: str
) -> None:
    """The NLLs take the generated Triton kernel too (a scale input of the prediction's
    shape): value, gradients of prediction and scale input, double backward, every option."""
    import regloss.torch as rt

    fn = getattr(rt, f"{name}_loss")
    flag = {"log_var" if name == "gaussian_nll" else "log_scale": log}
    g = torch.Generator().manual_seed(9)
    shape = (700, 3)
    x = 3 * torch.randn(shape, generator=g)
    t = torch.randn(shape, generator=g)
    s0 = torch.randn(shape, generator=g) if log else torch.rand(shape, generator=g) + 0.1
    if kind == "omit":
        t[::7, 1] = float("nan")
    kw = {**_options(kind, shape), **flag}

    def run() -> list[torch.Tensor]:
        xa, sa = x.clone().requires_grad_(), s0.clone().requires_grad_()
        value = fn(xa, t, sa, **kw)
        gx, gs = torch.autograd.grad(value.sum() * 3, (xa, sa))
        value = fn(xa, t, sa, **kw)
        dx, ds = torch.autograd.grad(value.sum(), (xa, sa), create_graph=True)
        (h,) = torch.autograd.grad((dx.sum() + ds.sum()), xa, allow_unused=True)
        return [
            value.detach(),
            gx,
            gs,
            dx.detach(),
            ds.detach(),
            torch.zeros_like(xa) if h is None else h,
        ]

    calls: list[int] = []
    real = gpu.forward
    monkeypatch.setattr(gpu, "forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = run()
    assert calls, "the Triton kernel did not run"
    with monkeypatch.context() as m:
        m.setenv("REGLOSS_KERNELS", "0")
        want = run()
    for a, b in zip(got, want, strict=True):
        scale = float(b.abs().max()) or 1.0
        torch.testing.assert_close(a, b, rtol=4e-6, atol=4e-6 * scale)
