"""The lean front door (regloss.torch._lean): the generated kernel reached with metadata-only
checks is the general path, bit for bit, for every registered loss it serves, and steps
aside for every call it does not.

Kernels are on here (the rest of the suite runs with REGLOSS_KERNELS=0) and built first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

import regloss
from regloss._kernels import c, loss_kernel
from regloss.losses import get_loss, get_nll_loss
from regloss.torch import _lean
from regloss.torch import functional as rtf
from regloss.torch import nll as rnll

LEAN = "_KernelFunctionBackward"
GENERAL = "_LossFunctionBackward"
DTYPES = {torch.float32: "float32", torch.float64: "float64"}
#: every registered loss the generated kernel serves (nonlinear psi)
SERVED = [n for n in regloss.available_losses() if get_loss(n).psi_slope is None]


@pytest.fixture(autouse=True)
def _kernels_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGLOSS_KERNELS", "1")
    # PyTorch's own kernels out of the way: every call the door serves takes it
    monkeypatch.setattr(rtf, "native_call", lambda *a: None)
    monkeypatch.setattr(rtf, "native_weighted_call", lambda *a: None)
    for dt in DTYPES.values():
        for name in SERVED:
            assert c.kernel(get_loss(name), dt, wait=True) is not None, name
        for name in regloss.available_nll_losses():
            for log_input in (False, True):
                spec = c.NLLSpec(get_nll_loss(name), log_input)
                assert c.kernel(spec, dt, wait=True) is not None, name


@pytest.fixture
def general(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], Any]], Any]:
    """Run a call with the door shut (the general path, same kernels)."""

    def run(fn: Callable[[], Any]) -> Any:
        with monkeypatch.context() as m:
            m.setattr(rtf, "kernel_call", lambda *a: None)
            m.setattr(rnll, "nll_kernel_call", lambda *a: None)
            return fn()

    return run


def _step(
    name: str, x: torch.Tensor, t: torch.Tensor, **kw: Any
) -> tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_fn name, value, d/dx, d/dt) of one forward and backward."""
    xr = x.detach().requires_grad_()
    tr = t.detach().requires_grad_()
    value = rtf.loss(name, xr, tr, **kw)
    node = type(value.grad_fn).__name__
    value.backward()
    assert xr.grad is not None and tr.grad is not None
    return node, value.detach(), xr.grad, tr.grad


def _inputs(n: int, dtype: torch.dtype, seed: int = 0) -> Iterator[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    yield torch.randn(n, generator=gen, dtype=dtype) * 3
    yield torch.randn(n, generator=gen, dtype=dtype)
    yield torch.rand(n, generator=gen, dtype=dtype) + 0.5


@pytest.mark.parametrize("n", [1, 37, c.PARALLEL_FROM + 3], ids=["one", "short", "threads"])
@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES.values()))
@pytest.mark.parametrize("name", SERVED)
def test_the_door_equals_the_general_path_bit_for_bit(
    general: Any, name: str, dtype: torch.dtype, n: int
) -> None:
    """Value and both gradients, 'mean' and 'sum', with and without weights: the same
    kernel, the same scaling, so the same bits; and the door is the route taken."""
    x, t, w = _inputs(n, dtype)
    for reduction in ("mean", "sum"):
        for weight in (None, w):
            kw = {"reduction": reduction, "weight": weight}
            node, *got = _step(name, x, t, **kw)
            other, *want = general(lambda kw=kw: _step(name, x, t, **kw))
            assert (node, other) == (LEAN, GENERAL), (name, reduction, weight is None)
            for a, b in zip(got, want):
                assert a.dtype == b.dtype == dtype
                torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", SERVED)
def test_without_gradients_the_door_returns_the_value_alone(general: Any, name: str) -> None:
    x, t, w = _inputs(50, torch.float64)
    for weight in (None, w):
        with torch.no_grad():
            got = rtf.loss(name, x.requires_grad_(), t, weight=weight)
        want = general(lambda wt=weight: rtf.loss(name, x.detach(), t, weight=wt))
        assert got.grad_fn is None and not got.requires_grad
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["cauchy", "barron", "huber"])
def test_double_backward_retained_graphs_and_scaled_gradients(general: Any, name: str) -> None:
    """The door hands its gradient buffer to the general path's backward: create_graph
    (Hessian-vector products), a second backward through a retained graph, an upstream
    gradient other than 1 and gradients accumulated into .grad all match the general path."""
    x, t, w = _inputs(64, torch.float64)

    def run() -> list[torch.Tensor]:
        out = []
        for weight in (None, w):
            xr = x.detach().requires_grad_()
            value = rtf.loss(name, xr, t, weight=weight)
            (g,) = torch.autograd.grad(value, xr, create_graph=True)
            (hv,) = torch.autograd.grad(g, xr, torch.ones_like(g))
            out += [g.detach(), hv]
            xr = x.detach().requires_grad_()
            value = rtf.loss(name, xr, t, weight=weight)
            (3.0 * value).backward(retain_graph=True)
            value.backward()  # accumulates; the buffer went to the first: recomputed
            assert xr.grad is not None
            out.append(xr.grad)
        return out

    for a, b in zip(run(), general(run)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_door_saves_its_inputs_for_version_checks() -> None:
    x, t, _ = _inputs(16, torch.float32)
    x.requires_grad_()
    p = x * 1.0
    value = rtf.cauchy_loss(p, t)
    assert type(value.grad_fn).__name__ == LEAN
    p.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        value.backward()


def test_a_kept_loss_pins_no_gradient_buffer() -> None:
    """After backward the buffer belongs to .grad and the node keeps nothing: a second
    backward without retain_graph is PyTorch's own error."""
    x, t, _ = _inputs(1000, torch.float32)
    x.requires_grad_()
    value = rtf.welsch_loss(x, t)
    node = value.grad_fn  # a custom Function's node is its ctx
    assert type(node).__name__ == LEAN and node.psi_owned is not None
    value.backward()
    assert node.psi_owned is None and x.grad is not None
    with pytest.raises(RuntimeError, match="after they have already been freed"):
        _ = node.saved_tensors
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        value.backward()


def _bad_weights() -> dict[str, torch.Tensor]:
    w = torch.rand(40, dtype=torch.float64) + 0.5
    out = {}
    for kind, index, v in (("nan", 3, float("nan")), ("inf", 5, float("inf")), ("neg", 7, -1.0)):
        bad = w.clone()
        bad[index] = v
        out[kind] = bad
    out["zero"] = torch.zeros_like(w)
    out["huge"] = w * 2.0**40  # a mean the general path rescales first
    out["tiny"] = w * 2.0**-40
    return out


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize(("kind", "weight"), list(_bad_weights().items()))
def test_weights_the_kernel_refuses_get_the_general_paths_result_or_error(
    general: Any, kind: str, weight: torch.Tensor, reduction: str
) -> None:
    x, t, _ = _inputs(40, torch.float64)

    def run() -> tuple[str, Any]:
        try:
            return "value", _step("cauchy", x, t, reduction=reduction, weight=weight)[1:]
        except (ValueError, TypeError) as exc:
            return type(exc).__name__, str(exc)

    got, want = run(), general(run)
    assert got[0] == want[0], (got, want)
    if got[0] == "value":
        for a, b in zip(got[1], want[1]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    else:
        assert got[1] == want[1]
        assert "weight" in got[1]


def _node(name: str, x: torch.Tensor, t: torch.Tensor, **kw: Any) -> str:
    return type(rtf.loss(name, x, t, **kw).grad_fn).__name__


def test_calls_the_door_does_not_serve_take_the_general_path() -> None:
    x, t, w = _inputs(12, torch.float32)
    x.requires_grad_()
    assert _node("cauchy", x, t) == LEAN
    others = {
        "mask": _node("cauchy", x, t, mask=t > 0),
        "omit": _node("cauchy", x, t, nan_policy="omit"),
        "none": _node("cauchy", x, t, reduction="none"),
        "batchmean": _node("cauchy", x.view(3, 4), t.view(3, 4), reduction="batchmean"),
        "broadcast": _node("cauchy", x, t[:1], broadcast=True),
        "mixed dtypes": _node("cauchy", x, t.double()),
        "float16": _node("cauchy", x.detach().half().requires_grad_(), t.half()),
        "strided": _node("cauchy", x[::2], t[::2]),
        "weight of another dtype": _node("cauchy", x, t, weight=w.double()),
        "strided weight": _node("cauchy", x, t, weight=torch.rand(24)[::2]),
        "weight with grad": _node("cauchy", x, t, weight=w.requires_grad_()),
        "tensor parameter with grad": _node(
            "barron", x, t, alpha=torch.tensor(1.5, requires_grad=True)
        ),
        "linear psi (mse)": _node("mse", x, t, weight=w.detach()),
    }
    assert LEAN not in others.values(), others
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert _node("cauchy", x, t) != LEAN


def test_the_door_is_shut_when_kernels_are_off(monkeypatch: pytest.MonkeyPatch) -> None:
    x, t, _ = _inputs(12, torch.float32)
    monkeypatch.setenv("REGLOSS_KERNELS", "0")
    assert loss_kernel(get_loss("cauchy"), "float32") is None
    assert _lean.kernel_call(get_loss("cauchy"), x, t, None, "mean") is None
    assert _node("cauchy", x.requires_grad_(), t) == GENERAL


def test_torch_func_sees_no_door() -> None:
    """Transforms need the general path's traceable forms: the door steps aside."""
    loss = get_loss("cauchy")
    x, t, _ = _inputs(8, torch.float64)

    def probe(a: torch.Tensor) -> torch.Tensor:
        assert _lean.kernel_call(loss, a, t, None, "mean") is None
        return rtf.cauchy_loss(a, t)

    want = torch.autograd.grad(rtf.cauchy_loss(x.requires_grad_(), t), x)[0]
    torch.testing.assert_close(torch.func.grad(probe)(x.detach()), want)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_compiled_calls_trace_past_the_door_and_equal_it(weighted: bool) -> None:
    """Under torch.compile(fullgraph=True) the door is shut before Dynamo reads any tensor
    property; the compiled value and gradient equal the door's eager ones."""
    x, t, w = _inputs(32, torch.float64)
    kw = {"weight": w} if weighted else {}

    def f(a: torch.Tensor) -> torch.Tensor:
        return rtf.cauchy_loss(a, t, **kw)

    torch._dynamo.reset()
    xc = x.detach().requires_grad_()
    value = torch.compile(f, fullgraph=True, backend="aot_eager")(xc)
    assert type(value.grad_fn).__name__ != LEAN
    value.backward()
    node, *want = _step("cauchy", x, t, **kw)
    assert node == LEAN
    torch.testing.assert_close(value.detach(), want[0], rtol=1e-14, atol=0)
    torch.testing.assert_close(xc.grad, want[1], rtol=1e-14, atol=1e-300)


# --- the NLL door ---------------------------------------------------------------------------

NLL_NODE = "_NLLKernelFunctionBackward"


def _nll_step(
    name: str, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, log_input: bool, **kw: Any
) -> tuple[Any, ...]:
    """(grad_fn name, value, d/dx, d/dt, d/ds) with all three inputs requiring grad."""
    xr, tr, sr = (a.detach().requires_grad_() for a in (x, t, s))
    flag = {("log_var" if name == "gaussian_nll" else "log_scale"): log_input}
    value = getattr(regloss.torch, f"{name}_loss")(xr, tr, sr, **flag, **kw)
    node = type(value.grad_fn).__name__
    value.backward()
    return node, value.detach(), xr.grad, tr.grad, sr.grad


@pytest.mark.parametrize("n", [1, 37, c.PARALLEL_FROM + 3], ids=["one", "short", "threads"])
@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES.values()))
@pytest.mark.parametrize("name", regloss.available_nll_losses())
def test_the_nll_door_equals_the_general_path_bit_for_bit(
    general: Any, name: str, dtype: torch.dtype, n: int
) -> None:
    """Every NLL, the scale input or its logarithm, 'mean'/'sum', with and without
    weights: value and the gradients of prediction, target and scale input."""
    x, t, w = _inputs(n, dtype)
    s = torch.rand(n, dtype=dtype, generator=torch.Generator().manual_seed(1)) + 0.1
    for log_input, scale in ((False, s), (True, s.log())):
        for reduction in ("mean", "sum"):
            for weight in (None, w):
                kw = {"reduction": reduction, "weight": weight}
                node, *got = _nll_step(name, x, t, scale, log_input, **kw)
                other, *want = general(
                    lambda kw=kw, li=log_input, sc=scale: _nll_step(name, x, t, sc, li, **kw)
                )
                assert node == NLL_NODE and other != NLL_NODE, (node, other)
                for a, b in zip(got, want):
                    assert a.dtype == b.dtype == dtype
                    torch.testing.assert_close(a, b, rtol=0, atol=0)
            with torch.no_grad():
                fn = getattr(regloss.torch, f"{name}_loss")
                flag = {("log_var" if name == "gaussian_nll" else "log_scale"): log_input}
                got_v = fn(x, t, scale, **flag, weight=w)
                want_v = general(lambda g=fn, f=flag, sc=scale: g(x, t, sc, **f, weight=w))
            assert got_v.grad_fn is None
            torch.testing.assert_close(got_v, want_v, rtol=0, atol=0)


@pytest.mark.parametrize("name", regloss.available_nll_losses())
def test_the_nll_door_twice_backward_and_create_graph(general: Any, name: str) -> None:
    x, t, w = _inputs(30, torch.float64)
    s = torch.rand(30, dtype=torch.float64) + 0.2
    fn = getattr(regloss.torch, f"{name}_loss")

    def run() -> list[torch.Tensor]:
        out = []
        for weight in (None, w):
            xr, sr = x.detach().requires_grad_(), s.detach().requires_grad_()
            value = fn(xr, t, sr, weight=weight)
            gx, gs = torch.autograd.grad(value, (xr, sr), create_graph=True)
            out += [gx.detach(), gs.detach(), *torch.autograd.grad(gx.sum() + gs.sum(), (xr, sr))]
            xr, sr = x.detach().requires_grad_(), s.detach().requires_grad_()
            value = fn(xr, t, sr, weight=weight)
            (2.5 * value).backward(retain_graph=True)
            value.backward()
            assert xr.grad is not None and sr.grad is not None
            out += [xr.grad, sr.grad]
        return out

    for a, b in zip(run(), general(run)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_nll_calls_the_door_does_not_serve_take_the_general_path(general: Any) -> None:
    x, t, w = _inputs(12, torch.float32)
    v = torch.rand(12) + 0.5
    x.requires_grad_()
    f = regloss.torch.gaussian_nll_loss

    def node(*a: Any, **kw: Any) -> str:
        return type(f(*a, **kw).grad_fn).__name__

    assert node(x, t, v) == NLL_NODE
    others = {
        "beta": node(x, t, v, beta=0.5),
        "python float variance": node(x, t, 0.7),
        "one variance per row": node(x.view(3, 4), t.view(3, 4), v[:3]),
        "mask": node(x, t, v, mask=t > 0),
        "omit": node(x, t, v, nan_policy="omit"),
        "none": node(x, t, v, reduction="none"),
        "variance of another dtype": node(x, t, v.double()),
        "strided variance": node(x, t, (torch.rand(24) + 0.5)[::2]),
    }
    assert NLL_NODE not in others.values(), others
    negative = v.clone()
    negative[4] = -1.0
    with pytest.raises(ValueError, match="var has negative entry") as got:
        f(x, t, negative)
    with pytest.raises(ValueError, match="var has negative entry") as want:
        general(lambda: f(x, t, negative))
    assert str(got.value) == str(want.value)
    bad = w.clone()
    bad[2] = float("nan")
    with pytest.raises(ValueError, match="weight") as got:
        f(x, t, v, weight=bad)
    with pytest.raises(ValueError, match="weight") as want:
        general(lambda: f(x, t, v, weight=bad))
    assert str(got.value) == str(want.value)


def test_weighted_routes_are_ordered_as_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    """A weighted 'sum' below WEIGHTED_SUM_DOOR_FROM takes PyTorch's elementwise route
    (its backward is C++), from there the door; a weighted 'mean' takes the door at every
    size; MSE (linear psi, no kernel) takes PyTorch's route; both give the same values."""
    from regloss.torch import _native

    monkeypatch.setattr(rtf, "native_weighted_call", _native.native_weighted_call)
    small, large = 37, rtf.WEIGHTED_SUM_DOOR_FROM
    for n, reduction, name, door in (
        (small, "sum", "huber", False),
        (large, "sum", "huber", True),
        (small, "mean", "huber", True),
        (small, "mean", "mse", False),
        (large, "sum", "mse", False),
    ):
        x, t, w = _inputs(n, torch.float64)
        node, *got = _step(name, x, t, reduction=reduction, weight=w)
        assert (node == LEAN) is door, (n, reduction, name, node)
        with monkeypatch.context() as m:
            m.setattr(rtf, "kernel_call", lambda *a: None)
            m.setattr(rtf, "native_weighted_call", lambda *a: None)
            _, *want = _step(name, x, t, reduction=reduction, weight=w)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-300)
