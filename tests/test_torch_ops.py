"""The ``regloss::forward`` custom op that compiled graphs call (torch/_ops.py).

torch.library's own checker (``opcheck``: schema, fake implementation, autograd
registration, dispatch) for every loss; the op in a ``fullgraph=True`` graph; values,
gradients and double backward equal to the eager front-end.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch._subclasses import FakeTensorMode

import regloss
from regloss.losses import form_of, get_loss, get_nll_loss
from regloss.torch import _ops
from regloss.torch import functional as rtf
from regloss.torch._routes import OP


def _op(x: Any, t: Any, loss: Any, reduction: str) -> tuple[Any, Any]:
    form = form_of(loss)
    value, grads = OP([x, t], form.kind, form.key, reduction)
    return value, grads[0]


NAMES = [n for n in regloss.available_losses() if not get_loss(n).depends_on_position()]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", NAMES)
def test_opcheck(name: str, reduction: str) -> None:
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, 3, dtype=torch.float64)
    form = form_of(get_loss(name))
    torch.library.opcheck(OP, ([x, t], form.kind, form.key, reduction))


@pytest.mark.parametrize("log_input", [False, True])
@pytest.mark.parametrize("name", regloss.available_nll_losses())
def test_opcheck_nll(name: str, log_input: bool) -> None:
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, 3, dtype=torch.float64)
    s = (torch.rand(5, 3, dtype=torch.float64) + 0.5).requires_grad_()
    form = form_of(get_nll_loss(name), log_input)
    torch.library.opcheck(OP, ([x, t, s], form.kind, form.key, "mean"))


@pytest.mark.parametrize("name", NAMES)
def test_op_equals_the_front_end_with_double_backward(name: str) -> None:
    loss = get_loss(name)
    g = torch.Generator().manual_seed(0)
    x0 = 3 * torch.randn(40, dtype=torch.float64, generator=g)
    t = torch.randn(40, dtype=torch.float64, generator=g)
    results = []
    for via_op in (True, False):
        x = x0.clone().requires_grad_()
        value = _op(x, t, loss, "mean")[0] if via_op else rtf.loss(loss, x, t)
        (gx,) = torch.autograd.grad(value, x, create_graph=True)
        (hx,) = torch.autograd.grad(gx.sum(), x, allow_unused=True)
        results.append([value.detach(), gx.detach(), torch.zeros_like(x) if hx is None else hx])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


def test_keys_rebuild_the_loss() -> None:
    for loss in (get_loss("barron", alpha=float("-inf"), scale=0.5), get_loss("cauchy", c=0.3)):
        form = form_of(loss)
        _ops._FORMS.pop((form.kind, form.key), None)
        assert _ops.form_of_key(form.kind, form.key) == form
    for log in (False, True):
        nll = form_of(get_nll_loss("gaussian_nll", full=True, eps=1e-3, beta=0.5), log)
        _ops._FORMS.pop((nll.kind, nll.key), None)
        assert _ops.form_of_key(nll.kind, nll.key) == nll


def test_fake_implementation_shapes_and_dtypes() -> None:
    with FakeTensorMode():
        x = torch.randn(4, 2, dtype=torch.bfloat16)
        value, (grad,) = OP([x, x], "residual", "cauchy(c=2.385)", "none")
        assert value.shape == (4, 2) and value.dtype == torch.float32
        assert grad.shape == (4, 2) and grad.dtype == torch.float32
        value, _ = OP([x, x], "residual", "cauchy(c=2.385)", "sum")
        assert value.shape == ()


def _graph_of(fn: Any, *args: Any) -> str:
    graphs: list[str] = []

    def backend(gm: torch.fx.GraphModule, example: Any) -> Any:
        graphs.append(str(gm.graph))
        return gm.forward

    torch._dynamo.reset()
    torch.compile(fn, fullgraph=True, backend=backend)(*args)
    assert len(graphs) == 1
    return graphs[0]


@pytest.mark.parametrize("name", NAMES)
def test_compiled_graphs_call_the_op(name: str) -> None:
    """Without options, the compiled graph holds one regloss::forward (or PyTorch's own
    fused loss where regloss calls it); with options, regloss's traced composition."""
    x, t = torch.randn(8, 2, requires_grad=True), torch.randn(8, 2)
    graph = _graph_of(lambda a, b: rtf.loss(name, a, b), x, t)
    if name in ("mse", "mae", "huber", "smooth_l1"):
        assert "regloss.forward" not in graph
        assert any(k in graph for k in ("mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss"))
    else:
        assert graph.count("torch.ops.regloss.forward") == 1
    masked = _graph_of(lambda a, b: rtf.loss(name, a, b, mask=b > 0), x, t)
    assert "regloss.forward" not in masked


def test_compiled_training_step_with_inductor_equals_eager() -> None:
    """The default backend (Inductor) around the op: a small model, loss and gradients."""
    torch._dynamo.reset()
    model = torch.nn.Linear(3, 1).double()
    x, y = torch.randn(64, 3, dtype=torch.float64), torch.randn(64, 1, dtype=torch.float64)

    def step(m: torch.nn.Module) -> torch.Tensor:
        return rtf.cauchy_loss(m(x), y)

    compiled = torch.compile(step, fullgraph=True)
    lc = compiled(model)
    lc.backward()
    grads_c = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    le = step(model)
    le.backward()
    torch.testing.assert_close(lc, le)
    for a, p in zip(grads_c, model.parameters()):
        torch.testing.assert_close(a, p.grad)
