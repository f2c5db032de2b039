"""PyTorch's fused kernels, where regloss calls them (``regloss.torch._native``).

Every entry of ``NATIVE``, for every parameter setting it accepts, is held to the same
contract as the definitions: values and gradients over the whole floating-point range
against the 60-digit mpmath reference (as ``test_range``), every reduction, double backward
and torch.func equal to regloss's own path, meta and FakeTensor. Calls that are not
eligible are shown to take regloss's path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from tests.settings import SETTINGS, params
from tests.test_range import EXTREMES, RTOL, _as_computed, _check, _grid, _reference
from torch._subclasses import FakeTensorMode

import regloss
from regloss._validate import prepare
from regloss.losses import get_loss
from regloss.torch import functional as rtf
from regloss.torch._autograd import apply_loss
from regloss.torch._native import NATIVE, native_call, native_weighted_call

NAMES = {cls.name for cls in NATIVE}
CASES = [(n, p) for n, p in SETTINGS + EXTREMES if n in NAMES]
TORCH = {np.float32: torch.float32, np.float64: torch.float64}


def _accepted(name: str, p: dict[str, Any]) -> bool:
    x = torch.zeros(2)
    return native_call(get_loss(name, **p), x, x, "mean") is not None


ACCEPTED = params([c for c in CASES if _accepted(*c)])
DECLINED = params([c for c in CASES if not _accepted(*c)])


def test_every_native_entry_is_a_registered_loss_with_settings() -> None:
    registered = set(regloss.available_losses())
    assert registered >= NAMES
    assert {n for n, _ in SETTINGS} >= NAMES, "add the loss's settings to tests/settings.py"


def test_declined_settings_are_the_documented_ones() -> None:
    """smooth_l1 below beta = 1/2 (PyTorch's 0.5 r²/beta underflows early) and nothing else."""
    assert {(n, tuple(p.items())) for n, p in (d.values for d in DECLINED)} == {
        ("smooth_l1", (("beta", 0.0),)),
        ("smooth_l1", (("beta", 1e-18),)),
    }


def _general(
    loss: Any, x: torch.Tensor, t: torch.Tensor, reduction: str, weight: Any = None
) -> torch.Tensor:
    """regloss's own path for the same call."""
    return apply_loss(loss, prepare(torch, x, t, reduction=reduction, weight=weight))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "p"), ACCEPTED)
def test_native_values_and_gradients_over_the_whole_range(name: str, p: dict, dtype: Any) -> None:
    loss = get_loss(name, **p)
    r = _grid(dtype, loss)
    x = torch.tensor(r, requires_grad=True)
    t = torch.zeros_like(x)
    with torch.no_grad():
        rho = native_call(loss, x, t, "none")
    g_sum = native_call(loss, x, t, "sum")
    assert rho is not None and g_sum is not None
    (psi,) = torch.autograd.grad(g_sum, x)
    key = tuple(sorted(_as_computed(p, dtype).items()))
    ref = _reference(name, key, tuple(float(v) for v in r))
    _check(f"{name} rho (torch kernel)", rho.numpy(), ref[0], r, dtype, RTOL[dtype])
    _check(f"{name} psi (torch kernel)", psi.numpy(), ref[1], r, dtype, RTOL[dtype])


def _data(n: int, dtype: torch.dtype, shape: tuple[int, ...] | None = None) -> Any:
    g = torch.Generator().manual_seed(n)
    shape = shape or (n,)
    x = (3 * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
    t = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    return x.requires_grad_(), t


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "p"), ACCEPTED)
def test_native_equals_the_definition_with_double_backward(
    name: str, p: dict, dtype: torch.dtype, reduction: str
) -> None:
    loss = get_loss(name, **p)
    tol = {"rtol": 2e-6, "atol": 1e-30} if dtype == torch.float32 else {"rtol": 1e-13, "atol": 0}
    for shape in [(), (1,), (7, 3), (70_001,)]:
        x, t = _data(max(1, int(np.prod(shape))), dtype, shape)
        t.requires_grad_()
        outs = []
        for f in (native_call, _general):
            v = f(loss, x, t, reduction)
            assert v is not None
            w = torch.linspace(0.5, 1.5, v.numel(), dtype=dtype).reshape(v.shape)
            gx, gt = torch.autograd.grad((v * w).sum(), (x, t), create_graph=True)
            # double backward: the Hessian-vector product along u
            u = torch.cos(torch.arange(x.numel(), dtype=dtype)).reshape(x.shape)
            (hx,) = torch.autograd.grad((gx * u).sum(), x, allow_unused=True)
            hx = torch.zeros_like(x) if hx is None else hx
            outs.append([v.detach(), gx.detach(), gt.detach(), hx])
        for a, b, what in zip(*outs, ["value", "grad input", "grad target", "double backward"]):
            torch.testing.assert_close(a, b, **tol, msg=lambda m, w=what: f"{w}: {m}")  # type: ignore[misc]


@pytest.mark.parametrize(("name", "p"), ACCEPTED)
def test_native_under_torch_func_equals_the_definition(name: str, p: dict) -> None:
    loss = get_loss(name, **p)
    x, t = _data(6, torch.float64, (2, 3))
    x = x.detach()

    def ours(a: torch.Tensor) -> torch.Tensor:
        return rtf.loss(loss, a, t)

    def general(a: torch.Tensor) -> torch.Tensor:
        return _general(loss, a, t, "mean")

    for transform in (torch.func.grad, torch.func.hessian):
        torch.testing.assert_close(transform(ours)(x), transform(general)(x))
    batched = torch.func.vmap(torch.func.grad(ours))(torch.stack([x, 2 * x]))
    torch.testing.assert_close(batched[1], torch.func.grad(general)(2 * x))


@pytest.mark.parametrize("where", ["meta", "fake"])
@pytest.mark.parametrize(("name", "p"), ACCEPTED)
def test_native_runs_on_meta_and_fake_tensors(name: str, p: dict, where: str) -> None:
    def run() -> None:
        device = "meta" if where == "meta" else "cpu"
        x = torch.randn(5, 2, device=device, requires_grad=True)
        out = rtf.loss(name, x, torch.randn(5, 2, device=device), **p)
        assert out.grad_fn is not None and "Regloss" not in type(out.grad_fn).__name__
        out.backward()
        assert x.grad is not None and x.grad.shape == x.shape
        assert x.grad.device.type == device

    if where == "fake":
        with FakeTensorMode():
            run()
    else:
        run()


def _grad_fn(name: str, p: dict, x: Any, t: Any, **kw: Any) -> str:
    return type(rtf.loss(name, x, t, **p, **kw).grad_fn).__name__


@pytest.mark.parametrize(("name", "p"), ACCEPTED)
def test_eligible_calls_take_the_torch_kernel_and_others_do_not(name: str, p: dict) -> None:
    x = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3)
    native = _grad_fn(name, p, x, t)
    assert native.endswith("Backward0") and "LossFunction" not in native, native
    for reduction in ("none", "sum"):
        assert _grad_fn(name, p, x, t, reduction=reduction) != "_LossFunctionBackward"
    general = {
        "mask": _grad_fn(name, p, x, t, mask=torch.rand(4, 3) > 0.5),
        "omit": _grad_fn(name, p, x, t, nan_policy="omit"),
        "broadcast": _grad_fn(name, p, x, t[:1], broadcast=True),
        "float16": _grad_fn(name, p, x.detach().half().requires_grad_(), t.half()),
        "mixed dtypes": _grad_fn(name, p, x, t.double()),
        "batchmean": _grad_fn(name, p, x, t, reduction="batchmean"),
    }
    assert all(v == "_LossFunctionBackward" for v in general.values()), general


@pytest.mark.parametrize(("name", "p"), DECLINED)
def test_declined_settings_take_regloss_path(name: str, p: dict) -> None:
    x = torch.randn(4, requires_grad=True)
    assert _grad_fn(name, p, x, torch.randn(4)) == "_LossFunctionBackward"


def test_invalid_calls_still_get_regloss_errors() -> None:
    """Ineligible calls fall through to the checks: the messages are regloss's."""
    empty = torch.zeros(0)
    with pytest.raises(ValueError, match="prediction is empty"):
        rtf.mse_loss(empty, empty)
    with pytest.raises(ValueError, match="target has shape"):
        rtf.mse_loss(torch.zeros(3), torch.zeros(2))
    with pytest.raises(TypeError, match="prediction has dtype int64"):
        rtf.l1_loss(torch.zeros(3, dtype=torch.int64), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="reduction"):
        rtf.huber_loss(torch.zeros(3), torch.zeros(3), reduction="avg")


def _weights(shape: tuple[int, ...], dtype: torch.dtype, kind: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    w = torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)
    if kind == "with zeros":
        w = torch.where(w < 0.3, 0.0, w)
    return w


@pytest.mark.parametrize("kind", ["positive", "with zeros"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "p"), ACCEPTED)
def test_native_weighted_equals_the_definition_with_double_backward(
    name: str, p: dict, dtype: torch.dtype, reduction: str, kind: str
) -> None:
    loss = get_loss(name, **p)
    tol = {"rtol": 2e-6, "atol": 1e-30} if dtype == torch.float32 else {"rtol": 1e-13, "atol": 0}
    for shape in [(2,), (7, 3), (70_001,)]:
        x, t = _data(int(np.prod(shape)), dtype, shape)
        w = _weights(shape, dtype, kind)
        w[0] = 0.5  # not all zero (all-zero weights take regloss's path: tested below)
        outs = []
        for f in (native_weighted_call, _general):
            v = (
                f(loss, x, t, reduction=reduction, weight=w)
                if f is _general
                else f(loss, x, t, w, reduction)
            )
            assert v is not None
            gx = torch.autograd.grad(v.sum(), x, create_graph=True)[0]
            u = torch.cos(torch.arange(x.numel(), dtype=dtype)).reshape(x.shape)
            (hx,) = torch.autograd.grad((gx * u).sum(), x, allow_unused=True)
            hx = torch.zeros_like(x) if hx is None else hx
            outs.append([v.detach(), gx.detach(), hx])
        for a, b in zip(*outs):
            torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize(("name", "p"), ACCEPTED)
def test_weighted_calls_outside_the_native_range_take_regloss_path(name: str, p: dict) -> None:
    """All-zero weights, weights whose largest is tiny or huge (regloss divides by it),
    weights needing a gradient, per-sample weights, another dtype: regloss's path, with its
    values (a weighted mean of all-zero weights is 0)."""
    x = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3)
    w = torch.rand(4, 3) + 0.5
    loss = get_loss(name, **p)
    assert native_weighted_call(loss, x, t, w, "mean") is not None
    for other in (
        torch.zeros(4, 3),
        w * 1e-12,
        w * 1e12,
        w.clone().requires_grad_(),
        w[:, 0],
        w.double(),
    ):
        assert native_weighted_call(loss, x, t, other, "mean") is None
    assert rtf.loss(name, x, t, weight=torch.zeros(4, 3), **p).item() == 0.0
    small = rtf.loss(name, x, t, weight=w * 1e-12, **p)
    torch.testing.assert_close(small, rtf.loss(name, x, t, weight=w, **p))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (float("nan"), "1 non-finite value"),
        (float("inf"), "1 non-finite value"),
        (-1.0, "1 negative"),
    ],
)
def test_bad_weights_get_regloss_errors_on_the_native_route(bad: float, message: str) -> None:
    w = torch.ones(5)
    w[2] = bad
    with pytest.raises(ValueError, match=message):
        rtf.mse_loss(torch.zeros(5), torch.ones(5), weight=w)


def test_traced_weighted_mean_takes_regloss_path_and_sum_the_kernel() -> None:
    with FakeTensorMode():
        x = torch.randn(5, requires_grad=True)
        t, w = torch.randn(5), torch.rand(5)
        assert native_weighted_call(get_loss("mse"), x, t, w, "mean") is None
        out = native_weighted_call(get_loss("mse"), x, t, w, "sum")
        assert out is not None and out.shape == ()
