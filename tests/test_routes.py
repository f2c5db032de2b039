"""Routes: one table per front-end (``regloss/_dispatch.py``), ``explain``, forcing, and the
route-equality matrix.

The matrix forces every route that applies to a call — for every setting of
``tests/settings.py``, every option, float32 and float64, and sizes either side of every
threshold (the thresholds live in one table, so the tests lower them to small sizes; the
real sizes are tested too) — and holds it to the eager definition: values, gradients of
prediction and target, double backward within rounding; the same errors; and a second
backward through a retained graph bit-identical to the first.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from tests.settings import SETTINGS, params
from torch._subclasses import FakeTensorMode

import regloss
import regloss.torch as rt
from regloss import numpy as rnp
from regloss._dispatch import RouteError
from regloss._numpy_routes import TABLE as NUMPY_TABLE
from regloss._reduction import MEAN, TORCH_REDUCTIONS, Options, get_reduction
from regloss._thresholds import THRESHOLDS
from regloss.losses import form_of, get_definition, get_loss, get_nll_loss
from regloss.torch import functional as rtf
from regloss.torch._routes import TABLE, facts_of

TORCH_ROUTES = [r.name for r in TABLE.routes]
F32, F64 = torch.float32, torch.float64
TOL = {F32: {"rtol": 5e-6, "atol": 1e-6}, F64: {"rtol": 1e-12, "atol": 1e-13}}


@pytest.fixture
def small_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every size threshold at 64 elements (eager blocks of 16): the sizes either side of
    it are then cheap; the rows read the table at each call."""
    for key in THRESHOLDS:
        if key in ("c_threads", "gpu_scale_on_device", "triton_over_native"):
            continue  # compiled into the kernels, or GPU-only (tests/test_triton.py)
        size = 16 if key == "eager_block" else 64
        monkeypatch.setitem(THRESHOLDS, key, THRESHOLDS[key]._replace(value=size))


# --- the tables ---------------------------------------------------------------------------


def test_every_front_end_has_one_table_whose_last_row_always_applies() -> None:
    import regloss.jax as rjax

    for table in (TABLE, NUMPY_TABLE, rjax.TABLE):
        names = [r.name for r in table.routes]
        assert len(set(names)) == len(names)
        assert all(r.doc for r in table.routes), table.frontend
    assert TORCH_ROUTES == [
        "torch_native",
        "torch_native_weighted",
        "c_kernel",
        "triton",
        "compile_op",
        "autodiff",
        "composite",
        "eager_blocked",
        "eager",
    ]
    x = torch.randn(4, requires_grad=True)
    facts = facts_of(form_of(get_loss("cauchy")), (x, x), Options(MEAN))
    assert TABLE.routes[-1].when(facts) is None


def test_every_threshold_names_its_row_in_the_results() -> None:
    from pathlib import Path

    results = (Path(__file__).parent.parent / "benchmarks" / "RESULTS.md").read_text()
    for key, t in THRESHOLDS.items():
        assert f"`{t.row}`" in results, (key, t.row)
    read = {k for table in (TABLE, NUMPY_TABLE) for r in table.routes for k in r.thresholds}
    assert read <= set(THRESHOLDS)


def _torch_routes(form: Any, inputs: tuple[Any, ...], **options: Any) -> list[str]:
    """Every torch row that applies to the call."""
    opts = _options(**options)
    f = facts_of(form, inputs, opts)
    return [r.name for r in TABLE.routes if r.when(f) is None]


def _options(**kw: Any) -> Options:
    red = get_reduction(kw.pop("reduction", "mean"), TORCH_REDUCTIONS)
    return Options(red, kw.get("weight"), kw.get("mask"), kw.get("nan_policy", "propagate"))


# --- explain and use_route ----------------------------------------------------------------


def test_explain_names_the_route_and_why_each_earlier_row_declined() -> None:
    x, t = torch.randn(300, requires_grad=True), torch.randn(300)
    e = rtf.explain("cauchy", x, t)
    assert e.route == "c_kernel" and not e.forced
    assert [n for n, _ in e.declined] == ["torch_native", "torch_native_weighted"]
    assert "PyTorch has no loss of this definition" in str(e)
    assert rtf.explain("huber", x, t).route == "torch_native"
    assert rtf.explain("cauchy", x, t, mask=t > 0).route == "eager"
    assert rtf.explain("cauchy", x, t, weight=torch.rand(300)).route == "c_kernel"
    assert rtf.explain("cauchy", x.double(), t).route == "eager"  # mixed dtypes
    # the threshold and its row are in the reason
    big = torch.randn(THRESHOLDS["c_kernel_huber"].value, requires_grad=True)
    e = rtf.explain("huber", big, torch.zeros_like(big))
    assert e.route == "c_kernel"
    assert "faster from 262144 elements (c_kernel_huber)" in e.declined[0][1]
    assert rt.explain is rtf.explain and rt.use_route is rtf.use_route


def test_explain_follows_grad_mode_compiling_and_torch_func() -> None:
    x, t = torch.randn(8), torch.randn(8)
    seen: list[str] = []

    def f(a: torch.Tensor) -> torch.Tensor:
        seen.append(rtf.explain("cauchy", a, t).route)
        return rtf.cauchy_loss(a, t)

    torch.func.grad(f)(x)
    assert seen == ["composite"]
    alpha = torch.tensor(1.5, requires_grad=True)
    assert rtf.explain("barron", x, t, alpha=alpha).route == "autodiff"


def test_use_route_forces_a_route_and_refuses_one_that_does_not_apply() -> None:
    x, t = torch.randn(12, requires_grad=True), torch.randn(12)
    with rt.use_route("eager"):
        assert rtf.explain("huber", x, t).forced
        value = rtf.huber_loss(x, t)
    assert type(value.grad_fn).__name__ == "CarrierBackward"
    with rt.use_route("c_kernel"), pytest.raises(RouteError, match="a mask or nan_policy"):
        rtf.cauchy_loss(x, t, mask=t > 0)
    with pytest.raises(RouteError, match=r"route 'fast' is not a torch route; choose one of"):
        rt.use_route("fast").__enter__()
    with rnp.use_route("eager_blocked"), pytest.raises(RouteError, match="not more than"):
        rnp.cauchy(np.zeros(3), np.zeros(3))
    with rt.use_route("c_kernel"), pytest.raises(RouteError, match="declined these values"):
        rtf.cauchy_loss(x, t, weight=torch.zeros(12))  # all zero: the eager row's 0


def test_regloss_route_environment_variable_forces_a_route() -> None:
    code = (
        "import torch, regloss.torch as rt, regloss.numpy as rnp, numpy as np\n"
        "x = torch.randn(5, requires_grad=True)\n"
        "print(rt.explain('huber', x, x.detach()).route, rt.explain('huber', x, x).forced)\n"
        "print(rnp.explain('cauchy', np.ones(3), np.zeros(3)).route)\n"
    )
    env = {**os.environ, "REGLOSS_ROUTE": "eager"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["eager", "True", "eager"]


# --- the route-equality matrix --------------------------------------------------------------

OPTIONS = ["plain", "sum", "none", "batchmean", "weight", "weight-per-sample", "mask", "omit"]
SHAPES = [(1, 1), (21, 3), (13, 5)]  # 1, 63 and 65 elements: either side of 64


def _option(kind: str, shape: tuple[int, ...], dtype: torch.dtype) -> dict[str, Any]:
    g = torch.Generator().manual_seed(11)
    return {
        "plain": {},
        "sum": {"reduction": "sum"},
        "none": {"reduction": "none"},
        "batchmean": {"reduction": "batchmean"},
        "weight": {"weight": (torch.rand(shape, generator=g) + 0.1).to(dtype)},
        "weight-per-sample": {"weight": torch.rand(shape[0], generator=g).to(dtype)},
        "mask": {"mask": torch.rand(shape, generator=g) > 0.4},
        "omit": {"nan_policy": "omit"},
    }[kind]


def _data(shape: tuple[int, ...], dtype: torch.dtype, kind: str, positive: bool = False) -> Any:
    g = torch.Generator().manual_seed(int(np.prod(shape)))
    x = 3 * torch.randn(shape, generator=g, dtype=F64)
    t = torch.randn(shape, generator=g, dtype=F64)
    if positive:  # a loss of (prediction, target) defined for p, t > -1
        x, t = x.abs(), t.abs()
    if kind == "omit":
        t.view(-1)[::4] = float("nan")
    return x.to(dtype), t.to(dtype)


def _step(call: Any, x: torch.Tensor, t: torch.Tensor, more: tuple[Any, ...]) -> list[Any]:
    """value; the gradients of every input that requires grad, from a first backward and
    from a second one through the retained graph; and a double backward (create_graph)."""
    leaves = [a.detach().clone().requires_grad_() for a in (x, t, *more)]
    value = call(*leaves)
    gs1 = torch.autograd.grad(value.sum() * 3, leaves, retain_graph=True)
    gs2 = torch.autograd.grad(value.sum() * 3, leaves)
    for a, b in zip(gs1, gs2, strict=True):  # bit for bit: the same backend recomputes
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    leaves = [a.detach().clone().requires_grad_() for a in (x, t, *more)]
    value2 = call(*leaves)
    (g,) = torch.autograd.grad(value2.sum(), leaves[0], create_graph=True)
    u = torch.cos(torch.arange(g.numel(), dtype=g.dtype)).reshape(g.shape)
    (h,) = torch.autograd.grad((g * u).sum(), leaves[0], allow_unused=True)
    h = torch.zeros_like(leaves[0]) if h is None else h
    return [value.detach(), *gs1, g.detach(), h]


def _forced(route: str, fn: Any, *args: Any) -> Any:
    with rt.use_route(route):
        return fn(*args)


def _compare(got: list[Any], want: list[Any], dtype: torch.dtype, what: str) -> None:
    tol = TOL[dtype]
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        finite = b[torch.isfinite(b)]
        scale = float(finite.abs().max()) if finite.numel() else 1.0
        torch.testing.assert_close(
            a, b, rtol=tol["rtol"], atol=tol["atol"] * max(scale, 1.0), equal_nan=True,
            msg=lambda m, i=i: f"{what} output {i}: {m}",
        )  # fmt: skip


def _matrix(form: Any, make: Any, dtype: torch.dtype, kind: str, positive: bool = False) -> int:
    """Every applicable route of every shape against the eager route; returns how many
    (shape, route) pairs ran."""
    ran = 0
    for shape in SHAPES:
        x, t = _data(shape, dtype, kind, positive)
        more, call = make(x, t, kind, shape)
        routes = _torch_routes(form, (x.requires_grad_(), t, *more), **_option(kind, shape, dtype))
        x = x.detach()
        assert "eager" in routes, routes
        want = _forced("eager", _step, call, x, t, more)
        for route in routes:
            if route == "eager":
                continue
            got = _forced(route, _step, call, x, t, more)
            _compare(got, want, dtype, f"{form.key} {kind} {shape} {route}")
            ran += 1
        # and the route the table picks
        _compare(_step(call, x, t, more), want, dtype, f"{form.key} {kind} {shape} default")
    return ran


@pytest.mark.usefixtures("small_thresholds")
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", OPTIONS)
@pytest.mark.parametrize(("name", "p"), params())
def test_every_route_equals_the_eager_definition(
    name: str, p: dict, kind: str, dtype: torch.dtype
) -> None:
    form = form_of(get_loss(name, **p))

    def make(x: Any, t: Any, kind: str, shape: Any) -> Any:
        opts = _option(kind, shape, dtype)
        return (), lambda a, b: rtf.loss(name, a, b, **p, **opts)

    _matrix(form, make, dtype, kind)


NLLS = [
    pytest.param(name, log, id=f"{name}{'-log' if log else ''}")
    for name in regloss.available_nll_losses()
    for log in (False, True)
]


@pytest.mark.usefixtures("small_thresholds")
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", OPTIONS)
@pytest.mark.parametrize(("name", "log"), NLLS)
def test_every_nll_route_equals_the_eager_definition(
    name: str, log: bool, kind: str, dtype: torch.dtype
) -> None:
    fn = getattr(rt, f"{name}_loss")
    flag = {"log_var" if name == "gaussian_nll" else "log_scale": log}
    form = form_of(get_nll_loss(name), log)

    def make(x: Any, t: Any, kind: str, shape: Any) -> Any:
        g = torch.Generator().manual_seed(5)
        s = torch.randn(shape, generator=g) if log else torch.rand(shape, generator=g) + 0.2
        opts = _option(kind, shape, dtype)
        return (s.to(dtype),), lambda a, b, c: fn(a, b, c, **flag, **opts)

    _matrix(form, make, dtype, kind)


# --- a loss of (prediction, target), written once here --------------------------------------


class SquaredLogTest(regloss.losses.PairLoss):
    """(log1p p − log1p t)², the squared log error: not a function of p − t. Written as one
    class with no other code, it must get every front-end and route."""

    def value(self, p: Any, t: Any) -> Any:
        xp = _xp(p)
        d = xp.log1p(p) - xp.log1p(t)
        return d * d

    def grad(self, p: Any, t: Any) -> tuple[Any, Any]:
        xp = _xp(p)
        d = xp.log1p(p) - xp.log1p(t)
        return 2.0 * d / (1.0 + p), -2.0 * d / (1.0 + t)

    def hess(self, p: Any, t: Any) -> tuple[Any, Any, Any]:
        xp = _xp(p)
        d = xp.log1p(p) - xp.log1p(t)
        a, b = 1.0 + p, 1.0 + t
        return (2.0 - 2.0 * d) / (a * a), -2.0 / (a * b), (2.0 + 2.0 * d) / (b * b)


def _xp(x: Any) -> Any:
    from regloss._namespace import namespace

    return namespace(x)


SquaredLogTest = __import__("dataclasses").dataclass(frozen=True, kw_only=True, repr=False)(
    SquaredLogTest
)


@pytest.fixture
def squared_log() -> Iterator[str]:
    """The test loss registered for one test (the registry-wide tests never see it)."""
    regloss.register("squared_log_test")(SquaredLogTest)
    try:
        yield "squared_log_test"
    finally:
        regloss.losses.unregister("squared_log_test")


def _msle(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    return (np.log1p(p) - np.log1p(t)) ** 2


@pytest.mark.usefixtures("small_thresholds")
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", OPTIONS)
def test_a_loss_of_prediction_and_target_gets_every_torch_route(
    squared_log: str, kind: str, dtype: torch.dtype
) -> None:
    form = form_of(get_definition(squared_log))
    opts_of = {}

    def make(x: Any, t: Any, kind: str, shape: Any) -> Any:
        opts_of[shape] = _option(kind, shape, dtype)
        return (), lambda a, b: rtf.loss(squared_log, a, b, **opts_of[shape])

    ran = _matrix(form, make, dtype, kind, positive=True)
    # the generated kernel serves these (the others: eager on the CPU, Triton on CUDA)
    assert ran > 0 or kind in ("none", "weight-per-sample", "mask", "omit")
    x = torch.rand(40, dtype=F64) * 3
    t = torch.rand(40, dtype=F64) * 3
    ref = _msle(x.numpy(), t.numpy()).mean()
    assert getattr(rtf, f"{squared_log}_loss")(x, t).item() == pytest.approx(ref, rel=1e-13)
    assert rt.SquaredLogTestLoss()(x, t).item() == pytest.approx(ref, rel=1e-13)


def test_a_loss_of_prediction_and_target_on_numpy_jax_compile_torch_func_and_triton(
    squared_log: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jax
    import jax.numpy as jnp

    import regloss.jax as rjax
    from regloss import _kernels
    from regloss._kernels import gpu

    g = np.random.default_rng(0)
    p, t = g.random(300) * 3, g.random(300) * 3
    want = _msle(p, t).mean()
    want_grad = 2 * (np.log1p(p) - np.log1p(t)) / (1 + p) / p.size
    # NumPy: every route
    for route in ("c_kernel", "eager", "c_kernel_into", "eager_into"):
        out = np.empty_like(p) if route.endswith("into") else None
        with rnp.use_route(route):
            value, grad = rnp.value_and_grad(squared_log, p, t, out=out)
        assert value == pytest.approx(want, rel=1e-13), route
        np.testing.assert_allclose(grad, want_grad, rtol=1e-12, err_msg=route)
    monkeypatch.setitem(THRESHOLDS, "eager_blocks", THRESHOLDS["eager_blocks"]._replace(value=64))
    with rnp.use_route("eager_blocked"):
        assert rnp.loss(squared_log, p, t) == pytest.approx(want, rel=1e-13)
    assert getattr(rnp, squared_log)(p, t) == pytest.approx(want, rel=1e-13)
    # JAX: the analytic custom_jvp, its Hessian included
    jp, jt = jnp.asarray(p), jnp.asarray(t)
    assert float(getattr(rjax, squared_log)(jp, jt)) == pytest.approx(want, rel=1e-13)
    np.testing.assert_allclose(
        jax.grad(lambda a: rjax.loss(squared_log, a, jt))(jp), want_grad, rtol=1e-12
    )
    hess = jax.hessian(lambda a: rjax.loss(squared_log, a, jt[:5]))(jp[:5])
    d = np.log1p(p[:5]) - np.log1p(t[:5])
    np.testing.assert_allclose(np.diag(hess), (2 - 2 * d) / (1 + p[:5]) ** 2 / 5, rtol=1e-12)
    # torch.compile with fullgraph: the custom op
    x, y = torch.from_numpy(p).requires_grad_(), torch.from_numpy(t)
    graphs: list[str] = []

    def backend(gm: Any, example: Any) -> Any:
        graphs.append(str(gm.graph))
        return gm.forward

    torch._dynamo.reset()
    f = torch.compile(lambda a, b: rtf.loss(squared_log, a, b), fullgraph=True, backend=backend)
    value = f(x, y)
    value.backward()
    assert "torch.ops.regloss.forward" in graphs[0]
    assert value.item() == pytest.approx(want, rel=1e-13)
    np.testing.assert_allclose(x.grad.numpy(), want_grad, rtol=1e-12)
    # torch.func: the composite route, analytic Hessian
    hx = torch.func.hessian(lambda a: rtf.loss(squared_log, a, y[:5]))(x.detach()[:5])
    np.testing.assert_allclose(torch.diagonal(hx).numpy(), np.diag(hess), rtol=1e-12)
    # Triton, by its interpreter
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(_kernels, "TRITON_DEVICES", {"cuda", "cpu"})
    calls: list[int] = []
    real = gpu.forward
    monkeypatch.setattr(gpu, "forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    xt = x.detach().requires_grad_()
    value = rtf.loss(squared_log, xt, y)
    value.backward()
    assert calls and value.item() == pytest.approx(want, rel=1e-13)
    np.testing.assert_allclose(xt.grad.numpy(), want_grad, rtol=1e-12)


# --- sizes either side of the real thresholds ----------------------------------------------


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    ("name", "key", "route"),
    [
        ("mae", "c_kernel_l1", "c_kernel"),
        ("huber", "c_kernel_huber", "c_kernel"),
        ("smooth_l1", "c_kernel_smooth_l1", "c_kernel"),
        ("cauchy", "c_threads", "c_kernel"),
        ("welsch", "eager_blocks", "eager_blocked"),
    ],
)
def test_routes_either_side_of_the_real_thresholds(
    name: str, key: str, route: str, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    if route == "eager_blocked":
        monkeypatch.setenv("REGLOSS_KERNELS", "0")  # else the kernel serves before blocks
    size = THRESHOLDS[key].value
    for n in (size - 1, size + 1):
        x, t = _data((n,), dtype, "plain")
        routes = _torch_routes(form_of(get_loss(name)), (x.requires_grad_(), t))
        chosen = TABLE.choose(facts_of(form_of(get_loss(name)), (x, t), Options(MEAN))).name
        if key.startswith("c_kernel_"):
            assert chosen == ("c_kernel" if n > size else "torch_native"), n
        elif key == "eager_blocks":
            assert chosen == ("eager_blocked" if n > size else "eager"), n
        else:
            assert chosen == route
        x = x.detach()
        call = functools.partial(rtf.loss, name)
        want = _forced("eager", _step, call, x, t, ())
        for r in routes:
            _compare(_forced(r, _step, call, x, t, ()), want, dtype, f"{name} n={n} {r}")


# --- the same errors on every route -------------------------------------------------------


def _bad_weights(n: int) -> dict[str, torch.Tensor]:
    w = torch.rand(n, dtype=F64) + 0.5
    out = {}
    for kind, index, v in (("nan", 3, float("nan")), ("inf", 5, float("inf")), ("neg", 7, -1.0)):
        bad = w.clone()
        bad[index] = v
        out[kind] = bad
    out["zero"] = torch.zeros_like(w)
    out["huge"] = w * 2.0**40  # a mean the eager route rescales first
    out["tiny"] = w * 2.0**-40
    return out


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "value", [a.detach() for a in fn()]
    except (ValueError, TypeError) as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("reduction", ["mean", "sum", "batchmean"])
@pytest.mark.parametrize("kind", list(_bad_weights(40)))
@pytest.mark.parametrize("name", ["cauchy", "huber", "mse", "gaussian_nll"])
def test_weights_a_route_declines_give_the_eager_routes_result_or_error(
    name: str, kind: str, reduction: str
) -> None:
    """The kernel finds the weights' extremes in its own pass; weights it declines (or
    PyTorch's weighted route declines) go on down the table: the result or error is the
    eager route's, message for message."""
    x = 3 * torch.randn(40, dtype=F64)
    t = torch.randn(40, dtype=F64)
    w = _bad_weights(40)[kind]
    v = torch.rand(40, dtype=F64) + 0.5

    def run() -> list[torch.Tensor]:
        xr = x.clone().requires_grad_()
        if name == "gaussian_nll":
            value = rt.gaussian_nll_loss(xr, t, v, reduction=reduction, weight=w)
        else:
            value = rtf.loss(name, xr, t, reduction=reduction, weight=w)
        return [value, torch.autograd.grad(value, xr)[0]]

    got = _outcome(run)
    with rt.use_route("eager"):
        want = _outcome(run)
    assert got[0] == want[0], (got, want)
    if got[0] == "value":
        for a, b in zip(got[1], want[1]):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
    else:
        assert got[1] == want[1] and "weight" in got[1]


def test_a_negative_variance_is_the_eager_routes_error() -> None:
    x, t, v = torch.randn(12, requires_grad=True), torch.randn(12), torch.rand(12) + 0.5
    v[4] = -1.0
    with pytest.raises(ValueError, match="var has negative entry") as got:
        rt.gaussian_nll_loss(x, t, v)
    with rt.use_route("eager"), pytest.raises(ValueError, match="var has negative") as want:
        rt.gaussian_nll_loss(x, t, v)
    assert str(got.value) == str(want.value)


def test_invalid_calls_get_reglosss_errors_whatever_the_route() -> None:
    empty = torch.zeros(0)
    with pytest.raises(ValueError, match="prediction is empty"):
        rtf.mse_loss(empty, empty)
    with pytest.raises(ValueError, match="target has shape"):
        rtf.mse_loss(torch.zeros(3), torch.zeros(2))
    with pytest.raises(TypeError, match="prediction has dtype int64"):
        rtf.l1_loss(torch.zeros(3, dtype=torch.int64), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="reduction"):
        rtf.huber_loss(torch.zeros(3), torch.zeros(3), reduction="avg")
    with pytest.raises(TypeError, match=r"target must be a torch\.Tensor"):
        rtf.cauchy_loss(torch.zeros(3), [0.0, 1.0, 2.0])  # type: ignore[arg-type]


# --- reentrancy: gradcheck with nondet_tol=0 ------------------------------------------------


def _gradcheck_routes(name: str, p: dict) -> list[str]:
    x = torch.randn(7, dtype=F64, requires_grad=True)
    return _torch_routes(form_of(get_loss(name, **p)), (x, torch.randn(7, dtype=F64)))


@pytest.mark.parametrize(("name", "p"), params())
def test_gradcheck_reentrant_on_every_route(name: str, p: dict) -> None:
    """torch.autograd.gradcheck with nondet_tol=0 (its reentrancy check computes the
    backward twice and wants the same bits) on every route the call can take."""
    g = torch.Generator().manual_seed(3)
    # residuals of 0.3 to 3 in size, away from the kinks of the kinked losses
    r = (torch.rand(7, generator=g, dtype=F64) * 2.7 + 0.3) * torch.sign(
        torch.randn(7, generator=g, dtype=F64)
    )
    t = torch.randn(7, generator=g, dtype=F64)
    x = (t + r).requires_grad_()
    for route in _gradcheck_routes(name, p):
        with rt.use_route(route):
            ok = torch.autograd.gradcheck(
                lambda a: rtf.loss(name, a, t, **p), (x,), nondet_tol=0.0, eps=1e-6, atol=1e-5
            )
        assert ok, route


@pytest.mark.slow
@pytest.mark.parametrize("name", [*regloss.available_losses(), *regloss.available_nll_losses()])
def test_gradcheck_reentrancy_holds_over_200_runs(name: str) -> None:
    """The check that failed now and then ("Backward is not reentrant": 1 run in 20 for
    cauchy at N = 7): 200 runs of the default route, each on new inputs."""
    nll = name in regloss.available_nll_losses()
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        t = torch.randn(7, generator=g, dtype=F64)
        x = (t + torch.randn(7, generator=g, dtype=F64) + 0.3).requires_grad_()
        if nll:
            v = (torch.rand(7, generator=g, dtype=F64) + 0.5).requires_grad_()
            fn = getattr(rt, f"{name}_loss")
            assert torch.autograd.gradcheck(_with_target(fn, t), (x, v), nondet_tol=0.0, atol=1e-5)
        else:
            call = functools.partial(rtf.loss, name)
            assert torch.autograd.gradcheck(_with_target(call, t), (x,), nondet_tol=0.0, atol=1e-5)


def _with_target(fn: Any, t: torch.Tensor) -> Any:
    """``fn(a, t, *more)`` as a function of ``(a, *more)``."""
    return lambda a, *more: fn(a, t, *more)


# --- what the kernel route does that the others need not ----------------------------------


def test_the_kernel_route_saves_its_inputs_for_version_checks() -> None:
    x, t = torch.randn(16, requires_grad=True), torch.randn(16)
    p = x * 1.0
    value = rtf.cauchy_loss(p, t)
    assert rtf.explain("cauchy", p, t).route == "c_kernel"
    p.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        value.backward()


def test_a_kept_loss_pins_no_gradient_buffer() -> None:
    """After backward the buffer belongs to .grad and the node keeps nothing: a second
    backward without retain_graph is PyTorch's own error."""
    x, t = torch.randn(1000, requires_grad=True), torch.randn(1000)
    value = rtf.welsch_loss(x, t)
    node = value.grad_fn  # a custom Function's node is its ctx
    assert type(node).__name__ == "CarrierBackward" and node.owned[0] is not None
    value.backward()
    assert node.owned == [None] and x.grad is not None
    with pytest.raises(RuntimeError, match="after they have already been freed"):
        _ = node.saved_tensors
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        value.backward()


def test_without_gradients_the_value_comes_alone() -> None:
    x, t, w = torch.randn(50, dtype=F64), torch.randn(50, dtype=F64), torch.rand(50, dtype=F64)
    for weight in (None, w):
        with torch.no_grad():
            got = rtf.cauchy_loss(x.requires_grad_(), t, weight=weight)
        assert got.grad_fn is None and not got.requires_grad
        with rt.use_route("eager"):
            want = rtf.cauchy_loss(x.detach(), t, weight=weight)
        torch.testing.assert_close(got, want, rtol=1e-13, atol=0)


def test_calls_the_kernel_route_does_not_serve() -> None:
    x, t, w = torch.randn(12, requires_grad=True), torch.randn(12), torch.rand(12)

    def route(name: str, a: Any, b: Any, **kw: Any) -> str:
        return rtf.explain(name, a, b, **kw).route

    assert route("cauchy", x, t) == "c_kernel"
    others = {
        "mask": route("cauchy", x, t, mask=t > 0),
        "omit": route("cauchy", x, t, nan_policy="omit"),
        "none": route("cauchy", x, t, reduction="none"),
        "broadcast": route("cauchy", x, t[:1], broadcast=True),
        "mixed dtypes": route("cauchy", x, t.double()),
        "float16": route("cauchy", x.detach().half().requires_grad_(), t.half()),
        "strided": route("cauchy", x[::2], t[::2]),
        "weight of another dtype": route("cauchy", x, t, weight=w.double()),
        "strided weight": route("cauchy", x, t, weight=torch.rand(24)[::2]),
        "weight with grad": route("cauchy", x, t, weight=w.clone().requires_grad_()),
        "tensor parameter with grad": route(
            "barron", x, t, alpha=torch.tensor(1.5, requires_grad=True)
        ),
        "linear psi (mse)": route("mse", x, t, mask=t > 0),
    }
    assert "c_kernel" not in others.values(), others
    assert others["weight with grad"] == "composite"
    assert others["tensor parameter with grad"] == "autodiff"
    # batchmean is served now (one kernel scale), and autocast too (the loss runs in float32)
    assert route("cauchy", x.view(3, 4), t.view(3, 4), reduction="batchmean") == "c_kernel"
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert route("cauchy", x, t) == "c_kernel"


def test_torch_func_takes_the_composite_route_and_equals_the_kernel() -> None:
    x, t = torch.randn(8, dtype=F64), torch.randn(8, dtype=F64)
    want = torch.autograd.grad(rtf.cauchy_loss(x.requires_grad_(), t), x)[0]
    torch.testing.assert_close(torch.func.grad(lambda a: rtf.cauchy_loss(a, t))(x.detach()), want)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_compiled_calls_equal_the_eager_kernel_route(weighted: bool) -> None:
    x, t, w = 3 * torch.randn(32, dtype=F64), torch.randn(32, dtype=F64), torch.rand(32, dtype=F64)
    kw = {"weight": w} if weighted else {}

    def f(a: torch.Tensor) -> torch.Tensor:
        return rtf.cauchy_loss(a, t, **kw)

    torch._dynamo.reset()
    xc = x.detach().requires_grad_()
    value = torch.compile(f, fullgraph=True, backend="aot_eager")(xc)
    value.backward()
    xe = x.detach().requires_grad_()
    assert rtf.explain("cauchy", xe, t, **kw).route == "c_kernel"
    want = f(xe)
    want.backward()
    torch.testing.assert_close(value.detach(), want.detach(), rtol=1e-14, atol=0)
    torch.testing.assert_close(xc.grad, xe.grad, rtol=1e-14, atol=1e-300)


def test_weighted_routes_are_ordered_as_measured() -> None:
    """A weighted 'sum' below its threshold takes PyTorch's weighted route (its backward is
    C++), from there the kernel; a weighted 'mean' takes the kernel at every size; MSE
    (linear psi, no kernel) takes PyTorch's route; both give the same values."""
    small, large = 37, THRESHOLDS["weighted_sum_kernel"].value
    for n, reduction, name, route in (
        (small, "sum", "huber", "torch_native_weighted"),
        (large, "sum", "huber", "c_kernel"),
        (small, "mean", "huber", "c_kernel"),
        (small, "mean", "mse", "torch_native_weighted"),
        (large, "sum", "mse", "torch_native_weighted"),
    ):
        x, t = _data((n,), F64, "plain")
        w = torch.rand(n, dtype=F64) + 0.5
        x.requires_grad_()
        assert rtf.explain(name, x, t, reduction, weight=w).route == route, (n, reduction, name)
        call = functools.partial(rtf.loss, name, reduction=reduction, weight=w)
        got = _step(call, x, t, ())
        want = _forced("eager", _step, call, x, t, ())
        _compare(got, want, F64, f"{name} {reduction} {n}")


# --- PyTorch's own losses: every entry, every accepted setting ------------------------------

NATIVE_NAMES = ("mse", "mae", "huber", "smooth_l1")


def _native_applies(name: str, p: dict) -> bool:
    x = torch.zeros(2)
    return "torch_native" in _torch_routes(form_of(get_loss(name, **p)), (x, x))


#: every setting PyTorch's own loss serves (the others: tested to decline, below)
NATIVE_CASES = [(n, p) for n, p in SETTINGS if n in NATIVE_NAMES and _native_applies(n, p)]


def test_declined_native_settings_are_the_documented_ones() -> None:
    """smooth_l1 below beta = 1/2 (PyTorch's 0.5 r²/beta underflows early) and nothing else."""
    from tests.test_range import EXTREMES

    declined = {
        (n, tuple(p.items()))
        for n, p in SETTINGS + EXTREMES
        if n in NATIVE_NAMES and not _native_applies(n, p)
    }
    assert declined == {("smooth_l1", (("beta", 0.0),)), ("smooth_l1", (("beta", 1e-18),))}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "p"), params(NATIVE_CASES))
def test_native_values_and_gradients_over_the_whole_range(name: str, p: dict, dtype: Any) -> None:
    from tests.test_range import RTOL, _as_computed, _check, _grid, _reference

    loss = get_loss(name, **p)
    r = _grid(dtype, loss)
    x = torch.tensor(r, requires_grad=True)
    t = torch.zeros_like(x)
    with rt.use_route("torch_native"):
        with torch.no_grad():
            rho = rtf.loss(loss, x, t, reduction="none")
        (psi,) = torch.autograd.grad(rtf.loss(loss, x, t, reduction="sum"), x)
    key = tuple(sorted(_as_computed(p, dtype).items()))
    ref = _reference(name, key, tuple(float(v) for v in r))
    _check(f"{name} rho (torch kernel)", rho.numpy(), ref[0], r, dtype, RTOL[dtype])
    _check(f"{name} psi (torch kernel)", psi.numpy(), ref[1], r, dtype, RTOL[dtype])


@pytest.mark.parametrize(("name", "p"), params(NATIVE_CASES))
def test_native_under_torch_func_equals_the_definition(name: str, p: dict) -> None:
    x, t = _data((2, 3), F64, "plain")

    def ours(a: torch.Tensor) -> torch.Tensor:
        return rtf.loss(name, a, t, **p)

    for transform in (torch.func.grad, torch.func.hessian):
        got = transform(ours)(x)
        with rt.use_route("composite"):
            want = transform(ours)(x)
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("where", ["meta", "fake"])
@pytest.mark.parametrize(("name", "p"), params(NATIVE_CASES))
def test_routes_run_on_meta_and_fake_tensors(name: str, p: dict, where: str) -> None:
    def run() -> None:
        device = "meta" if where == "meta" else "cpu"
        x = torch.randn(5, 2, device=device, requires_grad=True)
        for kw in ({}, {"weight": torch.rand(5, 2, device=device), "reduction": "sum"}):
            out = rtf.loss(name, x, torch.randn(5, 2, device=device), **p, **kw)
            out.backward()
            assert x.grad is not None and x.grad.shape == x.shape
            assert x.grad.device.type == device

    if where == "fake":
        with FakeTensorMode():
            run()
    else:
        run()


def test_traced_weighted_mean_declines_the_native_route_and_sum_takes_it() -> None:
    with FakeTensorMode():
        x = torch.randn(5, requires_grad=True)
        t, w = torch.randn(5), torch.rand(5)
        assert rtf.explain("mse", x, t, weight=w).route == "eager"
        assert rtf.explain("mse", x, t, "sum", weight=w).route == "torch_native_weighted"
        out = rtf.mse_loss(x, t, reduction="sum", weight=w)
        assert out.shape == ()


def test_all_zero_tiny_and_huge_weights_give_the_definitions_mean() -> None:
    x, t, w = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3), torch.rand(4, 3) + 0.5
    for name in NATIVE_NAMES:
        assert rtf.loss(name, x, t, weight=torch.zeros(4, 3)).item() == 0.0
        for k in (1e-12, 1e12):
            torch.testing.assert_close(
                rtf.loss(name, x, t, weight=w * k), rtf.loss(name, x, t, weight=w)
            )


# --- NumPy: every route equals the eager one ------------------------------------------------


@pytest.mark.usefixtures("small_thresholds")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "p"), params())
def test_every_numpy_route_equals_the_eager_definition(name: str, p: dict, dtype: Any) -> None:
    from regloss._numpy_routes import facts_of as numpy_facts
    from regloss._numpy_routes import prepare_arrays

    form = form_of(get_loss(name, **p))
    rtol = 5e-6 if dtype == np.float32 else 1e-12
    for shape in SHAPES:
        for kind in ("plain", "sum", "weight", "mask"):
            g = np.random.default_rng(int(np.prod(shape)))
            pred = (3 * g.standard_normal(shape)).astype(dtype)
            target = g.standard_normal(shape).astype(dtype)
            kw = {k: (v.numpy() if isinstance(v, torch.Tensor) else v)
                  for k, v in _option(kind, shape, torch.float64).items()}  # fmt: skip
            if "weight" in kw:
                kw["weight"] = kw["weight"].astype(dtype)
            with rnp.use_route("eager"):
                want = rnp.value_and_grad(name, pred, target, **p, **kw)
            for out in (None, np.empty_like(pred)):
                prep = prepare_arrays(pred, target, _numpy_options(**kw), form)
                f = numpy_facts(form, prep, True, out)
                for route in NUMPY_TABLE.routes:
                    if route.when(f) is not None:
                        continue
                    with rnp.use_route(route.name):
                        got = rnp.value_and_grad(name, pred, target, out=out, **p, **kw)
                    np.testing.assert_allclose(got[0], want[0], rtol=rtol, atol=rtol)
                    scale = float(np.max(np.abs(want[1]))) or 1.0
                    np.testing.assert_allclose(
                        got[1], want[1], rtol=rtol, atol=rtol * scale,
                        err_msg=f"{name} {kind} {shape} {route.name}",
                    )  # fmt: skip


def _numpy_options(**kw: Any) -> Options:
    from regloss._reduction import get_reduction as reduction

    return Options(reduction(kw.get("reduction", "mean")), kw.get("weight"), kw.get("mask"))


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield
