"""The autograd contract of regloss.torch, for every registered loss and the NLLs.

* memory: after backward nothing a loss saved stays alive through a kept loss tensor
  (weakrefs), and the bytes still held by 20 kept losses are within torch's own;
* in-place changes of an input after the forward raise, as in PyTorch's losses;
* torch.func grad / vmap(grad) / jacrev / jacfwd / hessian work and agree with PyTorch's
  own losses and with regloss's backward and double backward;
* every code path runs on the meta device and under FakeTensorMode (no host sync, every
  allocation on the inputs' device);
* torch.compile(fullgraph=True) traces every loss and option without a graph break;
* a weight that requires grad gets its gradient (as torch's F.mse_loss(weight=)).
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from tests.settings import SETTINGS, params
from torch._subclasses import FakeTensorMode
from torch.func import grad, hessian, jacfwd, jacrev, vmap
from torch.utils._python_dispatch import TorchDispatchMode

import regloss
import regloss.torch as rt
from regloss.torch import functional as rtf

ALL = params()
DEFAULTS = [pytest.param(n, {}, id=n) for n in regloss.available_losses()]
BIG = (1 << 20) + 1  # past 4 blocks: the blocked path


def _options(shape: tuple[int, ...], device: str = "cpu") -> list[Any]:
    n = shape[0]
    return [
        pytest.param({}, id="plain"),
        pytest.param({"weight": torch.rand(shape, device=device) + 0.1}, id="weight"),
        pytest.param({"weight": torch.rand(n, device=device) + 0.1}, id="weight-per-sample"),
        pytest.param({"mask": torch.rand(shape, device=device) > 0.3}, id="mask"),
        pytest.param({"nan_policy": "omit"}, id="omit"),
    ]


OPTION_IDS = ["plain", "weight", "weight-per-sample", "mask", "omit"]


def _option(kind: str, shape: tuple[int, ...], device: str = "cpu", dtype: Any = None) -> dict:
    dtype = dtype or torch.float32
    n = shape[0]
    return {
        "plain": {},
        "weight": {"weight": torch.rand(shape, device=device, dtype=dtype) + 0.1},
        "weight-per-sample": {"weight": torch.rand(n, device=device, dtype=dtype) + 0.1},
        "mask": {"mask": torch.rand(shape, device=device) > 0.3},
        "omit": {"nan_policy": "omit"},
    }[kind]


# --- memory -------------------------------------------------------------------------------


def _no_graph(*grads: torch.Tensor | None) -> None:
    for g in grads:
        assert g is not None
        assert g.grad_fn is None and not g.requires_grad, "the gradient carries a graph"


@pytest.mark.parametrize("kernels", ["eager", "generated"])
@pytest.mark.parametrize("name", [*regloss.available_losses(), *regloss.available_nll_losses()])
def test_gradients_carry_no_graph(monkeypatch: pytest.MonkeyPatch, name: str, kernels: str) -> None:
    """Without create_graph a gradient is a plain tensor, on every option and reduction:
    no grad_fn, not requiring grad. (A second mark_non_differentiable call replaced the
    first, so wherever the reduction's scale was a tensor, e.g. a weighted or masked mean,
    the gradient buffer handed on was a differentiable output: x.grad required grad and
    held the loss's graph and saved inputs until the next zero_grad.)"""
    import contextlib

    nll = name in regloss.available_nll_losses()

    # 'generated': the routes a user gets (the generated kernel where it serves)
    def forced() -> Any:
        return rt.use_route("eager") if kernels == "eager" else contextlib.nullcontext()

    fn = getattr(rt, f"{name}_loss") if nll else None
    shape = (16, 3)
    for kind in OPTION_IDS:
        for reduction in ("mean", "sum", "batchmean"):
            context = forced()
            context.__enter__()
            x = torch.randn(shape, requires_grad=True)
            t = torch.randn(shape, requires_grad=True)
            kw = {"reduction": reduction, **_option(kind, shape)}
            if nll:
                v = (torch.rand(shape) + 0.5).requires_grad_()
                assert fn is not None
                fn(x, t, v, **kw).backward()
                _no_graph(x.grad, t.grad, v.grad)
                _no_graph(*torch.autograd.grad(fn(x, t, v, **kw), (x, v)))
            else:
                rtf.loss(name, x, t, **kw).backward()
                _no_graph(x.grad, t.grad)
                _no_graph(*torch.autograd.grad(rtf.loss(name, x, t, **kw), (x, t)))
            context.__exit__(None, None, None)


@pytest.mark.parametrize("kind", OPTION_IDS)
@pytest.mark.parametrize(("name", "p"), ALL)
def test_kept_loss_does_not_keep_prediction_or_psi(name: str, p: dict, kind: str) -> None:
    x = torch.randn(6, 4, requires_grad=True)
    target = torch.randn(6, 4)
    pred = x * 1.5  # a non-leaf model output, as in training
    ref = weakref.ref(pred)
    loss = rtf.loss(name, pred, target, **p, **_option(kind, (6, 4)))
    loss.backward()
    del pred
    gc.collect()
    assert ref() is None, "the kept loss holds the prediction after backward"
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()  # the saved tensors are freed: nothing is pinned


@pytest.mark.parametrize(
    ("fn", "extra"),
    [
        pytest.param(rt.gaussian_nll_loss, {}, id="gaussian_nll"),
        pytest.param(rt.laplace_nll_loss, {}, id="laplace_nll"),
        pytest.param(rt.gaussian_nll_loss, {"log_var": True}, id="gaussian_nll-log"),
    ],
)
def test_kept_nll_loss_does_not_keep_its_inputs(fn: Callable[..., Any], extra: dict) -> None:
    x = torch.randn(6, 4, requires_grad=True)
    pred, var = x * 1.5, (x * 0.1).exp()
    refs = [weakref.ref(pred), weakref.ref(var)]
    loss = fn(pred, torch.randn(6, 4), var, **extra)
    loss.backward()
    del pred, var
    gc.collect()
    assert all(r() is None for r in refs)


def _held_bytes(loss_fn: Callable[..., torch.Tensor], n: int = 1 << 20, keep: int = 20) -> int:
    """Bytes of saved tensors still alive when ``keep`` losses of an n-element model output
    are kept after their backward (``history.append(loss)``)."""
    saved: list[weakref.ref[torch.Tensor]] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(weakref.ref(t))
        return t

    target = torch.randn(n)
    history = []
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        for _ in range(keep):
            x = torch.randn(n, requires_grad=True)
            loss = loss_fn(x * 2.0, target)
            loss.backward()
            history.append(loss)
            del x
    gc.collect()
    alive = {t.untyped_storage().data_ptr(): t.nbytes for w in saved if (t := w()) is not None}
    alive.pop(target.untyped_storage().data_ptr(), None)  # the caller's own target
    return sum(alive.values())


@pytest.mark.parametrize(
    ("name", "torch_fn"),
    [("mse", F.mse_loss), ("huber", F.huber_loss), ("mae", F.l1_loss), ("cauchy", F.mse_loss)],
)
def test_memory_held_by_kept_losses_is_within_torchs(name: str, torch_fn: Any) -> None:
    ours = _held_bytes(lambda p, t: rtf.loss(name, p, t))
    theirs = _held_bytes(torch_fn)
    assert ours <= theirs, f"20 kept losses hold {ours} bytes, torch's {theirs}"


class _Allocations(TorchDispatchMode):
    """Records the storages of the n-element tensors each operation returns."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.storages = n, []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.numel() == self.n:
                self.storages.append((str(func), t.untyped_storage().data_ptr()))
        return out


@pytest.mark.parametrize("kernels", ["eager", "generated"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize(("name", "p"), DEFAULTS)
def test_backward_allocates_no_second_gradient_buffer(
    name: str, p: dict, reduction: str, kernels: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training step allocates one n-element buffer: the forward's psi (its scale folded
    in), which the backward hands on as the gradient. Neither the zero gradients autograd
    materialises for unused outputs (0.6 ms at 2^20) nor a psi * grad product is allowed."""
    n = 4096
    x = torch.randn(n, requires_grad=True)
    target = torch.randn(n)
    if kernels == "generated" and name not in ("mse", "mae", "huber", "smooth_l1"):
        assert rtf.explain(name, x, target, reduction, **p).route == "c_kernel"
    with _Allocations(n) as fwd:
        if kernels == "eager":
            with rt.use_route("eager"):
                loss = rtf.loss(name, x, target, reduction=reduction, **p)
        else:
            loss = rtf.loss(name, x, target, reduction=reduction, **p)
    with _Allocations(n) as bwd:
        loss.backward()
    assert x.grad is not None
    if name in ("mse", "mae", "huber", "smooth_l1"):
        return  # PyTorch's own fused kernels (the native route): their backward allocates
    made_in_forward = {ptr for _, ptr in fwd.storages}
    assert x.grad.untyped_storage().data_ptr() in made_in_forward
    fresh = [(op, ptr) for op, ptr in bwd.storages if ptr not in made_in_forward]
    assert not fresh, fresh


@pytest.mark.parametrize(("name", "p"), DEFAULTS)
def test_gradient_buffer_handed_on_is_right_on_every_later_backward(name: str, p: dict) -> None:
    """The buffer the first backward hands on (and that the user may then change in place)
    is never read again: a retained graph's later backwards recompute psi."""
    x = torch.randn(64, requires_grad=True)
    target = torch.randn(64)
    want = torch.autograd.grad(rtf.loss(name, x, target, **p), x)[0]
    loss = rtf.loss(name, x, target, **p)
    (3.0 * loss).backward(retain_graph=True)
    assert x.grad is not None
    torch.testing.assert_close(x.grad, 3.0 * want)
    x.grad.zero_()  # the user (an optimiser's zero_grad(set_to_none=False)) writes into it
    loss.backward(retain_graph=True)
    torch.testing.assert_close(x.grad, want)
    loss.backward()
    torch.testing.assert_close(x.grad, 2.0 * want)


# --- in-place -----------------------------------------------------------------------------


@pytest.mark.parametrize("create_graph", [False, True], ids=["backward", "create_graph"])
@pytest.mark.parametrize(("name", "p"), DEFAULTS)
def test_inplace_change_after_forward_is_never_silently_wrong(
    name: str, p: dict, create_graph: bool
) -> None:
    """An input changed in place after the forward either raises (a saved input's version
    check) or leaves the gradient that of the forward's values (PyTorch's l1_loss saves
    the difference, not the inputs); never the gradient at the new values."""
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    expected = torch.autograd.grad(rtf.loss(name, x * 1.0, torch.zeros(2), **p), x)[0]
    y = x * 1.0
    loss = rtf.loss(name, y, torch.zeros(2), **p)
    y.mul_(-3.0)
    if name == "mae":  # PyTorch's l1_loss (the kernel regloss calls) saves the difference
        got = torch.autograd.grad(loss, x, create_graph=create_graph)[0]
        torch.testing.assert_close(got.detach(), expected, rtol=0, atol=0)
        return
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(loss, x, create_graph=create_graph)


def test_inplace_change_of_nll_input_raises() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1.0
    loss = rt.gaussian_nll_loss(y, torch.zeros(2), torch.ones(2))
    y.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(loss, x)


# --- torch.func -----------------------------------------------------------------------------

PEERS = [
    pytest.param(rtf.mse_loss, F.mse_loss, id="mse"),
    pytest.param(rtf.huber_loss, F.huber_loss, id="huber"),
    pytest.param(rtf.l1_loss, F.l1_loss, id="l1"),
    pytest.param(rtf.smooth_l1_loss, F.smooth_l1_loss, id="smooth_l1"),
    pytest.param(
        lambda a, b: rtf.huber_loss(a, b, delta=0.3),
        lambda a, b: F.huber_loss(a, b, delta=0.3),
        id="huber-0.3",
    ),
]
TRANSFORMS = {
    "grad": lambda f, p, t: grad(lambda a: f(a, t))(p),
    "jacrev": lambda f, p, t: jacrev(lambda a: f(a, t))(p),
    "jacfwd": lambda f, p, t: jacfwd(lambda a: f(a, t))(p),
    "hessian": lambda f, p, t: hessian(lambda a: f(a, t))(p),
    "vmap-grad": lambda f, p, t: vmap(grad(f))(p, t),  # per-sample gradients
    "jacrev-target": lambda f, p, t: jacrev(lambda b: f(p, b))(t),
}


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    p = torch.randn(5, 3, dtype=torch.float64, generator=g) * 2
    return p, torch.randn(5, 3, dtype=torch.float64, generator=g)


@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize(("ours", "theirs"), PEERS)
def test_torch_func_agrees_with_torch(ours: Any, theirs: Any, transform: str) -> None:
    p, t = _data()
    run = TRANSFORMS[transform]
    torch.testing.assert_close(run(ours, p, t), run(theirs, p, t))


@pytest.mark.parametrize(("name", "p"), ALL)
def test_torch_func_agrees_with_regloss_autograd(name: str, p: dict) -> None:
    x, t = _data()

    def f(a: torch.Tensor, b: torch.Tensor = t) -> torch.Tensor:
        return rtf.loss(name, a, b, **p)

    # reference: the fast path's backward and analytic double backward
    xr = x.clone().requires_grad_()
    (g_ref,) = torch.autograd.grad(f(xr), xr, create_graph=True)
    h_ref = torch.stack(
        [torch.autograd.grad(gi, xr, retain_graph=True)[0] for gi in g_ref.reshape(-1)]
    ).reshape(5, 3, 5, 3)
    torch.testing.assert_close(grad(f)(x), g_ref.detach())
    torch.testing.assert_close(hessian(f)(x), h_ref)
    torch.testing.assert_close(jacfwd(f)(x), g_ref.detach())
    per_sample = vmap(grad(lambda a, b: rtf.loss(name, a, b, **p)))(x, t)
    assert per_sample.shape == x.shape and torch.isfinite(per_sample).all()


def test_torch_func_nll() -> None:
    p, t = _data()
    v = torch.rand(5, 3, dtype=torch.float64) + 0.5
    f = lambda a, s: rt.gaussian_nll_loss(a, t, s)  # noqa: E731
    g = lambda a, s: F.gaussian_nll_loss(a, t, s)  # noqa: E731
    for tr in (grad, jacrev, jacfwd):
        torch.testing.assert_close(tr(f, argnums=(0, 1))(p, v), tr(g, argnums=(0, 1))(p, v))
    torch.testing.assert_close(hessian(f)(p, v), hessian(g)(p, v))


# --- devices: meta and FakeTensorMode -----------------------------------------------------


def _run_everywhere(name: str, p: dict, kind: str, n: int, device: str) -> None:
    x = torch.randn(n, 2, device=device, requires_grad=True)
    t = torch.randn(n, 2, device=device)
    loss = rtf.loss(name, x, t, **p, **_option(kind, (n, 2), device))
    loss.backward()
    assert loss.device.type == x.device.type and x.grad is not None
    assert x.grad.shape == x.shape and x.grad.device.type == x.device.type


@pytest.mark.parametrize("n", [3, BIG // 2 + 1], ids=["small", "blocked"])
@pytest.mark.parametrize("kind", OPTION_IDS)
@pytest.mark.parametrize(("name", "p"), DEFAULTS)
def test_every_path_runs_on_the_meta_device(name: str, p: dict, kind: str, n: int) -> None:
    _run_everywhere(name, p, kind, n, "meta")


@pytest.mark.parametrize("n", [3, BIG // 2 + 1], ids=["small", "blocked"])
@pytest.mark.parametrize("kind", OPTION_IDS)
@pytest.mark.parametrize(("name", "p"), DEFAULTS)
def test_every_path_runs_under_fake_tensors(name: str, p: dict, kind: str, n: int) -> None:
    """FakeTensorMode raises on any data-dependent host synchronisation (.item(), bool())."""
    with FakeTensorMode():
        _run_everywhere(name, p, kind, n, "cpu")


@pytest.mark.parametrize(("name", "p"), DEFAULTS)
def test_cache_blocking_is_for_the_cpu_only(
    name: str, p: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocking keeps temporaries in a CPU cache; on another device every block is a round of
    kernel launches (on an H200 the blocked eager Cauchy took 300x the unblocked time at
    2^26). The meta device stands in for CUDA: the blocked path must not run there."""
    from regloss import _eager

    calls: list[str] = []
    blocked = _eager.forward_blocked

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(str(args[2].prediction.device))
        return blocked(*args, **kwargs)

    monkeypatch.setattr(_eager, "forward_blocked", spy)
    monkeypatch.setenv("REGLOSS_KERNELS", "0")  # else the generated kernel serves the CPU
    for device in ("meta", "cpu"):
        x = torch.zeros(BIG, device=device, requires_grad=True)
        rtf.loss(name, x, torch.zeros(BIG, device=device), **p).backward()
        assert x.grad is not None and x.grad.device.type == device
    loss = regloss.get_loss(name, **p)
    # PyTorch's own kernel serves the native ones; a linear psi needs no temporary to block
    native = name in ("mse", "mae", "huber", "smooth_l1")
    cpu_blocks = not native and loss.psi_slope is None
    assert calls == (["cpu"] if cpu_blocks else [])


@pytest.mark.parametrize("device", ["meta", "fake"])
def test_nll_and_adaptive_run_on_meta_and_fake(device: str) -> None:
    def run() -> None:
        dev = "meta" if device == "meta" else "cpu"
        x = torch.randn(4, 3, device=dev, requires_grad=True)
        t = torch.randn(4, 3, device=dev)
        with torch.device(dev):  # parameters created on the device (and inside the mode)
            adaptive = rt.AdaptiveRobustLoss(num_dims=3)
        for loss in (
            rt.gaussian_nll_loss(x, t, x.exp()),
            rt.gaussian_nll_loss(x, t, x, log_var=True),
            rt.laplace_nll_loss(x, t, x.exp()),
            adaptive(x, t),
        ):
            loss.backward()
        assert x.grad is not None and x.grad.shape == x.shape
        assert all(p.grad is not None for p in adaptive.parameters())

    if device == "fake":
        with FakeTensorMode():
            run()
    else:
        run()


def test_meta_and_fake_inputs_skip_value_checks_but_refuse_nan_raise() -> None:
    x = torch.randn(3, device="meta")
    with pytest.raises(ValueError, match="nan_policy='raise' cannot inspect values while tracing"):
        rtf.mse_loss(x, x, nan_policy="raise")


# --- torch.compile ----------------------------------------------------------------------------


def _compiled_equals_eager(name: str, p: dict, kind: str, reduction: str) -> None:
    torch._dynamo.reset()
    x0 = torch.randn(6, 3, dtype=torch.float64)
    t = torch.randn(6, 3, dtype=torch.float64)
    opts = _option(kind, (6, 3), dtype=torch.float64)

    def f(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return rtf.loss(name, a, b, reduction=reduction, **p, **opts).sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    xc, xe = x0.clone().requires_grad_(), x0.clone().requires_grad_()
    lc, le = compiled(xc, t), f(xe, t)
    lc.backward()
    le.backward()
    torch.testing.assert_close(lc, le)
    torch.testing.assert_close(xc.grad, xe.grad)


@pytest.mark.parametrize(
    ("name", "p", "kind", "reduction"),
    [
        ("mse", {}, "plain", "mean"),
        ("huber", {"delta": 0.5}, "weight", "sum"),
        ("tukey", {}, "mask", "mean"),
        ("barron", {"alpha": 0.5}, "omit", "none"),
    ],
)
def test_compile_fullgraph_representative(name: str, p: dict, kind: str, reduction: str) -> None:
    _compiled_equals_eager(name, p, kind, reduction)


REDUCTIONS = ["mean", "sum", "none", "batchmean"]
# Every loss (default parameters) with every option, the reduction rotating so that each
# option meets every reduction; then every other parameter setting once (84 compiles).
COMPILE_MATRIX = [
    pytest.param(n, {}, kind, REDUCTIONS[(i + j) % 4], id=f"{n}-{kind}-{REDUCTIONS[(i + j) % 4]}")
    for i, n in enumerate(regloss.available_losses())
    for j, kind in enumerate(OPTION_IDS)
] + [
    pytest.param(n, p, "plain", REDUCTIONS[i % 4], id=f"{c.id}-{REDUCTIONS[i % 4]}")
    for i, ((n, p), c) in enumerate(zip(SETTINGS, ALL))
    if p
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "p", "kind", "reduction"), COMPILE_MATRIX)
def test_compile_fullgraph_every_loss_and_option(
    name: str, p: dict, kind: str, reduction: str
) -> None:
    _compiled_equals_eager(name, p, kind, reduction)


@pytest.mark.slow
@pytest.mark.parametrize("log_var", [False, True])
def test_compile_fullgraph_nll_and_modules(log_var: bool) -> None:
    torch._dynamo.reset()
    t = torch.randn(4, 3)
    crit = rt.HuberLoss(delta=0.5)

    def f(a: torch.Tensor) -> torch.Tensor:
        var = a if log_var else a.exp()
        return rt.gaussian_nll_loss(a, t, var, log_var=log_var) + crit(a, t)

    x = torch.randn(4, 3, requires_grad=True)
    out = torch.compile(f, fullgraph=True, backend="aot_eager")(x)
    out.backward()
    xe = x.detach().clone().requires_grad_()
    f(xe).backward()
    torch.testing.assert_close(x.grad, xe.grad)


# --- weight gradients ---------------------------------------------------------------------


@pytest.mark.parametrize("pred_requires_grad", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("ours", "theirs"), [(rtf.mse_loss, F.mse_loss), (rtf.l1_loss, F.l1_loss)])
def test_weight_that_requires_grad_gets_torchs_gradient(
    ours: Any, theirs: Any, reduction: str, pred_requires_grad: bool
) -> None:
    p, t = _data()
    w = torch.rand(5, 3, dtype=torch.float64) + 0.1
    grads = []
    for fn in (ours, theirs):
        pp = p.clone().requires_grad_(pred_requires_grad)
        ww = w.clone().requires_grad_()
        fn(pp, t, reduction=reduction, weight=ww).sum().backward()
        grads.append((ww.grad, pp.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    if pred_requires_grad:
        torch.testing.assert_close(grads[0][1], grads[1][1])


@pytest.mark.parametrize(("name", "p"), ALL)
def test_weight_gradient_is_the_derivative_of_the_weighted_mean(name: str, p: dict) -> None:
    x, t = _data()
    w = (torch.rand(5, dtype=torch.float64) + 0.1).requires_grad_()
    loss = rtf.loss(name, x, t, weight=w, **p)
    (gw,) = torch.autograd.grad(loss, w)
    rho = rtf.loss(name, x, t, reduction="none", **p).sum(dim=1)  # per-sample sums
    expected = (rho - loss.detach() * 3) / (w.detach().sum() * 3)  # d/dw of sum(w rho)/sum(3w)
    torch.testing.assert_close(gw, expected)


def test_nll_weight_that_requires_grad_gets_its_gradient() -> None:
    p, t = _data()
    var = torch.rand(5, 3, dtype=torch.float64) + 0.5
    w = (torch.rand(5, dtype=torch.float64) + 0.1).requires_grad_()
    loss = rt.gaussian_nll_loss(p, t, var, weight=w)
    (gw,) = torch.autograd.grad(loss, w)
    per_sample = rt.gaussian_nll_loss(p, t, var, reduction="none").sum(dim=1)
    expected = (per_sample - loss.detach() * 3) / (w.detach().sum() * 3)
    torch.testing.assert_close(gw, expected)


def test_jax_differentiates_weights_by_the_same_rule() -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from regloss import jax as rjax

    p, t = _data()
    w = torch.rand(5, 3, dtype=torch.float64) + 0.1
    wt = w.clone().requires_grad_()
    rtf.cauchy_loss(p, t, weight=wt).backward()
    gj = jax.grad(
        lambda ww: rjax.cauchy(jnp.asarray(p.numpy()), jnp.asarray(t.numpy()), weight=ww)
    )(jnp.asarray(w.numpy()))
    np.testing.assert_allclose(np.asarray(gj), wt.grad.numpy(), rtol=1e-10)
