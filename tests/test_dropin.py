"""Drop-in where we say drop-in: PyTorch's signatures and conventions, one name per quantity
in every front-end, the inputs users really pass (positional, legacy, float var, masked
arrays, integer residuals, arrays of parameters, traced parameters)."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import regloss
import regloss.torch as rt
from regloss import jax as rjax
from regloss import numpy as rnp
from regloss.losses import get_loss
from regloss.torch import functional as rtf


def _data(shape: tuple[int, ...] = (6, 4)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    return torch.randn(shape, generator=g) * 2, torch.randn(shape, generator=g)


# --- PyTorch signatures -------------------------------------------------------------------

TORCH_PAIRS = [
    ("mse_loss", F.mse_loss),
    ("l1_loss", F.l1_loss),
    ("huber_loss", F.huber_loss),
    ("smooth_l1_loss", F.smooth_l1_loss),
]


@pytest.mark.parametrize(("name", "theirs"), TORCH_PAIRS)
def test_functional_signature_is_torchs(name: str, theirs: Any) -> None:
    """PyTorch's parameters, in PyTorch's order and kinds; ours add keyword-only extras."""
    ours = inspect.signature(getattr(rtf, name)).parameters
    torch_params = list(inspect.signature(theirs).parameters.values())
    for p in torch_params:
        assert p.name in ours, f"{name} lacks torch's {p.name}"
        q = ours[p.name]
        assert (q.kind, q.default) == (p.kind, p.default), (name, p.name)
    positional = [p.name for p in ours.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == [p.name for p in torch_params if p.kind is p.POSITIONAL_OR_KEYWORD]


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            lambda a, b: rtf.huber_loss(a, b, "sum", 2.0),
            lambda a, b: F.huber_loss(a, b, "sum", 2.0),
        ),
        (
            lambda a, b: rtf.mse_loss(a, b, None, None, "sum"),
            lambda a, b: F.mse_loss(a, b, None, None, "sum"),
        ),
        (
            lambda a, b: rtf.l1_loss(a, b, None, None, "none"),
            lambda a, b: F.l1_loss(a, b, None, None, "none"),
        ),
        (
            lambda a, b: rtf.smooth_l1_loss(a, b, None, None, "sum", 0.5),
            lambda a, b: F.smooth_l1_loss(a, b, None, None, "sum", 0.5),
        ),
        (
            lambda a, b: rt.HuberLoss("sum", 2.0)(a, b),
            lambda a, b: torch.nn.HuberLoss("sum", 2.0)(a, b),
        ),
        (
            lambda a, b: rt.MSELoss(None, None, "sum")(a, b),
            lambda a, b: torch.nn.MSELoss(None, None, "sum")(a, b),
        ),
        (
            lambda a, b: rt.SmoothL1Loss(None, None, "sum", 0.5)(a, b),
            lambda a, b: torch.nn.SmoothL1Loss(None, None, "sum", 0.5)(a, b),
        ),
    ],
    ids=["huber", "mse", "l1", "smooth_l1", "HuberLoss", "MSELoss", "SmoothL1Loss"],
)
def test_positional_calls_match_torch(call: Any, expected: Any) -> None:
    a, b = _data()
    torch.testing.assert_close(call(a, b), expected(a, b))


@pytest.mark.parametrize(
    ("kwargs", "reduction"),
    [
        ({"size_average": False}, "sum"),
        ({"reduce": False}, "none"),
        ({"size_average": True}, "mean"),
    ],
)
def test_legacy_size_average_and_reduce_map_as_torch_with_its_warning(
    kwargs: dict, reduction: str
) -> None:
    a, b = _data()
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        ours = rtf.mse_loss(a, b, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = F.mse_loss(a, b, **kwargs)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(ours, rtf.mse_loss(a, b, reduction=reduction))
    with pytest.warns(UserWarning, match="size_average and reduce"):
        module = rt.L1Loss(**kwargs)
    assert module.reduction == reduction


def test_modules_are_torch_losses_with_their_attributes() -> None:
    a, b = _data()
    huber, smooth = rt.HuberLoss(delta=0.5), rt.SmoothL1Loss(beta=0.3)
    for module in (huber, smooth, rt.MSELoss(), rt.CauchyLoss(c=2.0)):
        assert isinstance(module, torch.nn.modules.loss._Loss)
    assert (huber.delta, huber.reduction, smooth.beta) == (0.5, "mean", 0.3)
    huber.delta = 2.0  # as torch.nn.HuberLoss reads self.delta at every call
    torch.testing.assert_close(huber(a, b), F.huber_loss(a, b, delta=2.0))
    huber.reduction = "sum"
    torch.testing.assert_close(huber(a, b), F.huber_loss(a, b, reduction="sum", delta=2.0))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: rtf.mse_loss([1.0, 2.0], torch.zeros(2)),
            r"input must be a torch\.Tensor, got list",
        ),
        (
            lambda: rtf.huber_loss(torch.zeros(2), np.zeros(2)),
            r"target must be a torch\.Tensor, got ndarray",
        ),
        (
            lambda: rtf.mse_loss(torch.zeros(2), torch.zeros(2), weight=[1.0, 1.0]),
            r"weight must be a torch\.Tensor, got list; convert it with torch\.as_tensor\(weight\)",
        ),
        (lambda: rt.HuberLoss()(torch.zeros(2), 3.0), r"target must be a torch\.Tensor, got float"),
        (
            lambda: rt.gaussian_nll_loss(torch.zeros(2), torch.zeros(2), "1"),
            r"var must be a torch\.Tensor, got str",
        ),
    ],
    ids=["input-list", "target-ndarray", "weight-list", "module-float", "var-str"],
)
def test_non_tensor_argument_is_a_type_error_naming_it(call: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        call()


# --- gaussian_nll_loss's var rules --------------------------------------------------------


@pytest.mark.parametrize(
    "var_shape", [(5,), (5, 1), (5, 5), ()], ids=["per-row", "column", "full", "scalar"]
)
def test_gaussian_var_shapes_follow_torch(var_shape: tuple[int, ...]) -> None:
    a, b = _data((5, 5))
    var = torch.rand(var_shape) + 0.5
    if var_shape == ():
        var = 0.7  # a Python float, as torch accepts
    torch.testing.assert_close(rt.gaussian_nll_loss(a, b, var), F.gaussian_nll_loss(a, b, var))


def test_gaussian_var_one_dimension_short_is_per_row_in_every_front_end() -> None:
    a, b = _data((5, 5))
    var = torch.rand(5, dtype=torch.float64) + 0.5
    expected = float(F.gaussian_nll_loss(a.double(), b.double(), var))
    assert float(rnp.gaussian_nll(a.double().numpy(), b.double().numpy(), var.numpy())) == (
        pytest.approx(expected)
    )
    got = rjax.gaussian_nll(
        jnp.asarray(a.double().numpy()), jnp.asarray(b.double().numpy()), jnp.asarray(var.numpy())
    )
    assert float(got) == pytest.approx(expected)


@pytest.mark.parametrize("var", [-0.5, "tensor"])
def test_negative_var_message_is_torchs(var: Any) -> None:
    a, b = _data()
    v = -torch.rand(6, 4) if var == "tensor" else var
    with pytest.raises(ValueError, match=r"^var has negative entry/entries"):
        rt.gaussian_nll_loss(a, b, v)
    with pytest.raises(ValueError, match=r"^var has negative entry/entries"):
        F.gaussian_nll_loss(a, b, v)


# --- one name per quantity ------------------------------------------------------------------


@pytest.mark.parametrize("module", [rnp, rjax], ids=["numpy", "jax"])
def test_nll_third_input_is_named_as_in_torch(module: Any) -> None:
    g = inspect.signature(module.gaussian_nll).parameters
    lap = inspect.signature(module.laplace_nll).parameters
    assert list(g)[:3] == ["prediction", "target", "var"] and "log_var" in g
    assert list(lap)[:3] == ["prediction", "target", "scale"] and "log_scale" in lap
    assert "var" in inspect.signature(rt.gaussian_nll_loss).parameters


def test_nll_losses_are_discoverable() -> None:
    assert regloss.available_nll_losses() == ["gaussian_nll", "laplace_nll"]
    assert regloss.get_nll_loss("gaussian_nll", full=True).full is True
    assert "available_nll_losses" in (regloss.available_losses.__doc__ or "")


# --- NumPy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mse", "mae", "huber"])
def test_numpy_masked_arrays_leave_masked_entries_out(name: str) -> None:
    p = np.ma.array([1.0, 2.0, 30.0, 4.0], mask=[False, False, True, False])
    t = np.array([0.0, 2.5, 0.0, 3.0])
    expected = rnp.loss(name, p.data, t, mask=~p.mask)
    assert rnp.loss(name, p, t) == pytest.approx(expected)
    v, g = rnp.value_and_grad(name, p, t)
    assert g[2] == 0.0 and v == pytest.approx(expected)


def test_numpy_matrix_is_refused() -> None:
    with pytest.raises(
        TypeError, match=r"prediction is an np\.matrix, whose \* is a matrix product"
    ):
        rnp.mse(np.matrix([[1.0, 2.0]]), np.array([[0.0, 0.0]]), reduction="none")


@pytest.mark.parametrize("name", regloss.available_losses())
def test_loss_objects_return_floating_point_for_integer_input(name: str) -> None:
    loss = get_loss(name)
    ints = np.array([-3, 0, 2])
    for method in (loss.rho, loss.psi, loss.psi_prime, loss.weight):
        for r in (ints, ints.tolist(), torch.tensor([-3, 0, 2])):
            out = method(r)
            assert "float" in str(out.dtype)
        np.testing.assert_allclose(method(ints), method(ints.astype(float)))


# --- parameters as arrays, sequences and traced values ---------------------------------------


@pytest.mark.parametrize(
    "levels", [[0.1, 0.9], (0.1, 0.9), np.array([0.1, 0.9]), torch.tensor([0.1, 0.9])]
)
def test_quantile_levels_from_any_sequence_or_array(levels: Any) -> None:
    assert get_loss("quantile", q=levels).q == pytest.approx((0.1, 0.9))


def test_barron_alpha_and_scale_per_element_with_gradients() -> None:
    """As Barron's lossfun: alpha and scale broadcast per element and get gradients."""
    p, t = (x.double() for x in _data((6, 3)))
    p.requires_grad_()
    alpha = torch.tensor([0.5, 1.0, -1.5], dtype=torch.float64, requires_grad=True)
    scale = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64, requires_grad=True)
    loss = rtf.barron_loss(p, t, alpha=alpha, scale=scale)
    g_p, g_a, g_s = torch.autograd.grad(loss, (p, alpha, scale))
    # column by column with scalar parameters: the same loss
    cols = [
        rtf.barron_loss(p[:, j], t[:, j], "sum", alpha=float(alpha[j]), scale=float(scale[j]))
        for j in range(3)
    ]
    torch.testing.assert_close(loss, sum(cols) / p.numel())
    # gradients in alpha and scale against central differences
    for param, g in ((alpha, g_a), (scale, g_s)):
        for j in range(3):
            h = 1e-6
            up, down = param.detach().clone(), param.detach().clone()
            up[j] += h
            down[j] -= h
            kw = {"alpha": alpha.detach(), "scale": scale.detach()}
            name = "alpha" if param is alpha else "scale"
            f_up = rtf.barron_loss(p.detach(), t, **{**kw, name: up})
            f_down = rtf.barron_loss(p.detach(), t, **{**kw, name: down})
            assert float(g[j]) == pytest.approx(float(f_up - f_down) / (2 * h), rel=1e-5, abs=1e-9)
    # NumPy value and gradient, JAX gradient in alpha: the same numbers
    v, g = rnp.value_and_grad(
        "barron",
        p.detach().numpy(),
        t.numpy(),
        alpha=alpha.detach().numpy(),
        scale=scale.detach().numpy(),
    )
    assert v == pytest.approx(float(loss))
    np.testing.assert_allclose(g, g_p.numpy(), rtol=1e-10)
    ga = jax.grad(
        lambda a: rjax.barron(
            jnp.asarray(p.detach().numpy()),
            jnp.asarray(t.numpy()),
            alpha=a,
            scale=jnp.asarray(scale.detach().numpy()),
        )
    )(jnp.asarray(alpha.detach().numpy()))
    np.testing.assert_allclose(np.asarray(ga), g_a.numpy(), rtol=1e-8)


def test_barron_array_parameters_are_checked() -> None:
    with pytest.raises(
        ValueError, match="barron: parameter scale given as an array must be finite and > 0"
    ):
        get_loss("barron", scale=np.array([1.0, -1.0]))


def test_jax_parameters_may_be_traced_under_jit() -> None:
    p, t = jnp.array([0.3, -2.0, 5.0]), jnp.zeros(3)
    traces = []

    @jax.jit
    def step(delta: Any) -> Any:
        traces.append(1)  # runs only while tracing
        return rjax.huber(p, t, delta=delta)

    for delta in np.linspace(0.2, 3.0, 40):  # an annealed parameter
        assert float(step(delta)) == pytest.approx(float(rjax.huber(p, t, delta=float(delta))))
    assert len(traces) == 1
    assert float(jax.jit(rjax.huber)(p, t, delta=0.5)) == pytest.approx(
        float(F.huber_loss(torch.tensor([0.3, -2.0, 5.0]), torch.zeros(3), delta=0.5))
    )
    d = jax.grad(lambda dl: rjax.huber(p, t, delta=dl))(1.0)  # d/d delta exists
    h = 1e-4
    fd = (rjax.huber(p, t, delta=1.0 + h) - rjax.huber(p, t, delta=1.0 - h)) / (2 * h)
    assert float(d) == pytest.approx(float(fd), rel=1e-5)


def test_jax_eager_distinct_parameters_do_not_grow_a_cache() -> None:
    from regloss.jax import _elementwise

    p, t = jnp.array([0.3, -2.0]), jnp.zeros(2)
    for delta in np.linspace(0.1, 5.0, 400):
        rjax.huber(p, t, delta=float(delta))
    assert _elementwise.cache_info().currsize <= 128


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [("huber", "delta", 0.7), ("cauchy", "c", 1.5), ("barron", "alpha", 0.5)],
)
def test_jax_elementwise_helpers_take_traced_parameters(name: str, key: str, value: float) -> None:
    r = jnp.array([-3.0, -0.2, 0.0, 0.4, 7.0])
    rho = jax.jit(lambda v: rjax.rho(name, r, **{key: v}))(value)
    psi = jax.jit(lambda v: rjax.psi(name, r, **{key: v}))(value)
    np.testing.assert_allclose(rho, rjax.rho(name, r, **{key: value}), rtol=1e-6)
    np.testing.assert_allclose(psi, rjax.psi(name, r, **{key: value}), rtol=1e-6, atol=1e-12)
