"""PyTorch front-end: agreement with torch.nn.functional, analytic autograd, dtypes, compile."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tests.settings import params as loss_settings

import regloss
from regloss.torch import functional as rtf
from regloss.torch import modules as rtm

# (ours, torch's, parameter name, parameter values, supports weight= in torch 2.13)
PEERS: list[Any] = [
    pytest.param(rtf.mse_loss, F.mse_loss, None, [None], True, id="mse"),
    pytest.param(rtf.l1_loss, F.l1_loss, None, [None], True, id="l1"),
    pytest.param(rtf.huber_loss, F.huber_loss, "delta", [1.0, 0.3, 4.0], True, id="huber"),
    pytest.param(
        rtf.smooth_l1_loss, F.smooth_l1_loss, "beta", [1.0, 0.0, 2.5], False, id="smooth_l1"
    ),
]


@pytest.mark.parametrize(("ours", "peer", "pname", "pvalues", "has_weight"), PEERS)
@given(data=st.data())
def test_same_loss_and_gradients_as_torch(
    ours: Any,
    peer: Any,
    pname: str | None,
    pvalues: list[Any],
    has_weight: bool,
    data: st.DataObject,
) -> None:
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=5), label="shape")
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]), label="dtype")
    reduction = data.draw(st.sampled_from(["none", "sum", "mean"]), label="reduction")
    value = data.draw(st.sampled_from(pvalues), label="param")
    use_weight = has_weight and data.draw(st.booleans(), label="weight")
    floats = st.floats(-100, 100, allow_nan=False, width=32)
    p_np = data.draw(hnp.arrays(np.float64, shape, elements=floats))
    t_np = data.draw(hnp.arrays(np.float64, shape, elements=floats))
    kw: dict[str, Any] = {} if pname is None else {pname: value}
    w = None
    if use_weight:
        w_np = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(0.0625, 5, width=32)))
        w = torch.tensor(w_np, dtype=dtype)

    def run(f: Any) -> tuple[torch.Tensor, ...]:
        p = torch.tensor(p_np, dtype=dtype, requires_grad=True)
        t = torch.tensor(t_np, dtype=dtype, requires_grad=True)
        extra = {"weight": w} if w is not None else {}
        out = f(p, t, reduction=reduction, **kw, **extra)
        gp, gt = torch.autograd.grad(out.sum(), (p, t))
        return out.detach(), gp, gt

    if peer is F.huber_loss and w is not None and reduction == "mean":
        # torch 2.13's huber_loss(weight=) 'mean' divides by N, unlike its mse/l1 (sum of
        # weights); regloss uses the sum of weights everywhere: compare with sum / sum(w).
        weight = w

        def peer(a: torch.Tensor, b: torch.Tensor, **k: Any) -> torch.Tensor:
            k["reduction"] = "sum"
            return F.huber_loss(a, b, **k) / weight.sum()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only inputs torch accepts without a warning
        expected = run(peer)
    got = run(ours)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-11, "atol": 1e-11}
    for g, e, what in zip(got, expected, ["loss", "grad input", "grad target"]):
        assert g.dtype == e.dtype, what
        assert g.shape == e.shape, what
        torch.testing.assert_close(g, e, **tol, msg=what)


LOSSES = loss_settings()
OPTIONS = [
    pytest.param({}, id="plain"),
    pytest.param({"weight": "full"}, id="weight"),
    pytest.param({"weight": "sample"}, id="sample-weight"),
    pytest.param({"mask": "full"}, id="mask"),
    pytest.param({"mask": "sample", "weight": "full"}, id="sample-mask+weight"),
]


def _inputs(
    options: dict[str, str], seed: int = 0, avoid: tuple[float, ...] = ()
) -> tuple[Any, ...]:
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(5, 3, generator=g, dtype=torch.float64)
    r = torch.rand(5, 3, generator=g, dtype=torch.float64) * 3 + 0.05  # |r| clear of 0
    r = r * torch.where(torch.rand(5, 3, generator=g) > 0.5, 1.0, -1.0).double()
    for b in avoid:  # and clear of the loss's breakpoints, where derivatives jump
        r = torch.where((r - b).abs() < 0.02, r + 0.05, r)
    t = (p - r).detach()
    kw: dict[str, Any] = {}
    if "weight" in options:
        shape = (5, 3) if options["weight"] == "full" else (5,)
        kw["weight"] = torch.rand(shape, generator=g, dtype=torch.float64) + 0.1
    if "mask" in options:
        shape = (5, 3) if options["mask"] == "full" else (5,)
        kw["mask"] = torch.rand(shape, generator=g) > 0.3
        kw["mask"].view(-1)[0] = True
    return p.requires_grad_(), t.requires_grad_(), kw


@pytest.mark.parametrize(("name", "params"), LOSSES)
@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
def test_gradcheck_and_gradgradcheck(
    name: str, params: dict, options: dict, reduction: str
) -> None:
    p, t, kw = _inputs(options, avoid=regloss.get_loss(name, **params).breakpoints())

    def f(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return rtf.loss(name, a, b, reduction, **kw, **params)

    assert torch.autograd.gradcheck(f, (p, t))
    assert torch.autograd.gradgradcheck(f, (p, t))


@pytest.mark.parametrize(("name", "params"), LOSSES)
def test_double_backward_is_psi_prime(name: str, params: dict) -> None:
    p, t, _ = _inputs({}, avoid=regloss.get_loss(name, **params).breakpoints())
    out = rtf.loss(name, p, t, "sum", **params)
    (g,) = torch.autograd.grad(out, p, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), p)
    expected = regloss.get_loss(name, **params).psi_prime((p - t).detach())
    torch.testing.assert_close(h, expected)


def test_torch_huber_weighted_mean_divides_by_n_but_regloss_by_the_weights() -> None:
    p, t = torch.zeros(2), torch.tensor([1.0, 3.0])
    w = torch.tensor([0.5, 1.0])
    rho = torch.tensor([0.5, 2.5])
    assert F.huber_loss(p, t, weight=w).item() == pytest.approx((w * rho).sum().item() / 2)
    assert F.mse_loss(p, t, weight=w).item() == pytest.approx((w * t**2).sum().item() / 1.5)
    assert rtf.huber_loss(p, t, weight=w).item() == pytest.approx((w * rho).sum().item() / 1.5)


def test_masked_nan_targets_have_zero_gradient_not_nan() -> None:
    p = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    t = torch.tensor([1.5, float("nan"), float("inf")])
    mask = torch.tensor([True, False, False])
    for name in regloss.available_losses():
        p.grad = None
        rtf.loss(name, p, t, mask=mask).backward()
        assert p.grad is not None
        assert torch.equal(p.grad[1:], torch.zeros(2))
        assert torch.isfinite(p.grad).all()


def test_output_masking_trap_is_real_for_torch_and_avoided_by_regloss() -> None:
    p = torch.tensor([1.0, 2.0], requires_grad=True)
    t = torch.tensor([1.5, float("nan")])
    mask = torch.tensor([True, False])
    F.huber_loss(p, t, reduction="none")[mask].sum().backward()
    assert p.grad is not None and torch.isnan(p.grad[1])  # the well-known trap
    p.grad = None
    rtf.huber_loss(p, t, "sum", mask=mask).backward()
    assert p.grad is not None and p.grad[1] == 0.0


def test_everything_masked_is_zero_with_zero_gradient() -> None:
    p = torch.ones(4, requires_grad=True)
    out = rtf.mse_loss(p, torch.zeros(4), mask=torch.zeros(4, dtype=torch.bool))
    out.backward()
    assert out.item() == 0.0
    assert p.grad is not None and torch.equal(p.grad, torch.zeros(4))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_does_not_overflow(dtype: torch.dtype) -> None:
    p = torch.tensor([300.0, 1.0], dtype=dtype, requires_grad=True)
    t = torch.zeros(2, dtype=dtype)
    out = rtf.mse_loss(p, t, reduction="sum")
    assert out.dtype == torch.float32
    assert out.item() == 90001.0
    assert torch.isinf(F.mse_loss(p.detach().half(), t.half(), reduction="sum"))
    out.backward()
    assert p.grad is not None and p.grad.dtype == dtype
    torch.testing.assert_close(p.grad.float(), torch.tensor([600.0, 2.0]))


def test_autocast_returns_float32_loss_and_input_dtype_gradient() -> None:
    lin = torch.nn.Linear(4, 1)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = lin(x)
        assert pred.dtype == torch.bfloat16
        out = rtf.mse_loss(pred, y)
    assert out.dtype == torch.float32
    out.backward()
    assert lin.weight.grad is not None and torch.isfinite(lin.weight.grad).all()
    ref = F.mse_loss(pred.detach().float(), y)
    torch.testing.assert_close(out.detach(), ref)


def test_torch_compile_runs() -> None:
    model = torch.nn.Linear(3, 1).double()
    crit = rtm.HuberLoss(delta=0.5)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return crit(model(x), y)

    compiled = torch.compile(step, backend="eager")
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 1, dtype=torch.float64)
    out = compiled(x, y)
    out.backward()
    torch.testing.assert_close(out, F.huber_loss(model(x), y, delta=0.5))
    assert model.weight.grad is not None


def test_no_grad_and_eval_paths() -> None:
    p, t = torch.randn(10), torch.randn(10)
    with torch.no_grad():
        out = rtf.mse_loss(p.requires_grad_(), t)
    assert not out.requires_grad
    torch.testing.assert_close(out, F.mse_loss(p.detach(), t))


def test_target_gradient_only() -> None:
    p = torch.randn(5, dtype=torch.float64)
    t = torch.randn(5, dtype=torch.float64, requires_grad=True)
    rtf.mse_loss(p, t).backward()
    assert t.grad is not None
    torch.testing.assert_close(t.grad, -2 * (p - t.detach()) / 5)


def test_broadcast_opt_in_matches_torch_broadcasting() -> None:
    p = torch.randn(8, 1, dtype=torch.float64, requires_grad=True)
    t = torch.randn(8, dtype=torch.float64, requires_grad=True)
    ours = rtf.mse_loss(p, t, broadcast=True)
    gp, gt = torch.autograd.grad(ours, (p, t))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = F.mse_loss(p, t)
    rp, rt = torch.autograd.grad(ref, (p, t))
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(gp, rp)
    torch.testing.assert_close(gt, rt)


def test_large_input_uses_blocks_and_matches_torch() -> None:
    n = 5 * (1 << 18) + 123  # above the blocking threshold, with a ragged last block
    g = torch.Generator().manual_seed(0)
    p = torch.randn(n, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(n, generator=g, dtype=torch.float64)
    for ours, peer in [
        (rtf.mse_loss, F.mse_loss),
        (rtf.huber_loss, F.huber_loss),
        (rtf.l1_loss, F.l1_loss),
        (rtf.smooth_l1_loss, F.smooth_l1_loss),
    ]:
        a = ours(p, t)
        (ga,) = torch.autograd.grad(a, p)
        b = peer(p, t)
        (gb,) = torch.autograd.grad(b, p)
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(ga, gb)


@pytest.mark.parametrize(
    ("ours", "peer", "kw"),
    [
        (rtm.MSELoss, torch.nn.MSELoss, {}),
        (rtm.L1Loss, torch.nn.L1Loss, {}),
        (rtm.HuberLoss, torch.nn.HuberLoss, {"delta": 2.0}),
        (rtm.SmoothL1Loss, torch.nn.SmoothL1Loss, {"beta": 0.5}),
    ],
)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_modules_are_drop_in(ours: Any, peer: Any, kw: dict, reduction: str) -> None:
    p, t = torch.randn(4, 3) * 3, torch.randn(4, 3)
    mine = ours(reduction=reduction, **kw)
    assert isinstance(mine, torch.nn.Module)
    torch.testing.assert_close(mine(p, t), peer(reduction=reduction, **kw)(p, t))
    assert reduction in repr(mine)


def test_module_takes_weight_mask_and_nan_policy() -> None:
    crit = rtm.MSELoss(nan_policy="omit")
    p = torch.tensor([1.0, 2.0, 3.0])
    t = torch.tensor([1.5, float("nan"), 3.0])
    torch.testing.assert_close(crit(p, t), torch.tensor(0.125))
    torch.testing.assert_close(
        crit(p, t, weight=torch.tensor([1.0, 5.0, 3.0])), torch.tensor(0.25 / 4)
    )
    assert "nan_policy='omit'" in repr(crit)


def test_rule_based_aliases_exist() -> None:
    from regloss.torch import MaeLoss, MseLoss, mae_loss

    assert mae_loss is rtf.l1_loss or mae_loss.__name__ == "mae_loss"
    assert issubclass(MseLoss, rtm.RegressionLoss) and issubclass(MaeLoss, rtm.RegressionLoss)
    with pytest.raises(AttributeError):
        rtf.not_a_loss  # noqa: B018


@pytest.mark.parametrize("name", regloss.available_losses())
def test_no_warning_when_every_input_requires_grad(name: str) -> None:
    """Learned targets, weights and variances are tensors that require grad: no call may
    warn about them (PyTorch's float() of such a tensor does), on any option or path,
    including the weight checks' error messages and the NLLs' variance check."""
    import warnings

    from regloss import _eager
    from regloss.torch import nll

    g = torch.Generator().manual_seed(11)

    def leaf(*shape: int, low: float = 0.0) -> torch.Tensor:
        return (torch.rand(*shape, generator=g) + low).requires_grad_()

    x, t, w = leaf(64, 3), leaf(64, 3), leaf(64, 3, low=0.1)
    kinds: list[dict[str, Any]] = [
        {}, {"reduction": "sum"}, {"reduction": "none"}, {"weight": w}, {"mask": t > 0.5},
        {"weight": w, "reduction": "sum"}, {"nan_policy": "omit"},
    ]  # fmt: skip
    always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)  # PyTorch warns once per process otherwise
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for kw in kinds:
                rtf.loss(name, x, t, **kw).sum().backward()
            n = 4 * _eager.BLOCK + 1  # the CPU's blocked eager path
            rtf.loss(name, leaf(n), torch.zeros(n)).backward()
            with pytest.raises(ValueError, match="negative"):
                rtf.loss(name, x, t, weight=(w - 2.0).detach().requires_grad_())
            for fn in (nll.gaussian_nll_loss, nll.laplace_nll_loss):
                fn(x, t, leaf(64, 3, low=0.1)).backward()
                fn(x, t, leaf(64, 3, low=0.1), weight=w).backward()
                with pytest.raises(ValueError, match="negative"):
                    fn(x, t, (leaf(64, 3) - 2.0).detach().requires_grad_())
    finally:
        torch.set_warn_always(always)
