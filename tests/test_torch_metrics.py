"""regloss.torch.metrics: against torchmetrics where it has the metric, against
regloss.metrics (NumPy) for every metric and option, on the devices this machine lacks
(meta, FakeTensorMode), and synchronised over 2 and 3 gloo processes with uneven numbers of
updates per rank."""

from __future__ import annotations

import socket
from typing import Any

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
import torch.multiprocessing as mp
import torchmetrics
from tests import ddp_worker

import regloss
from regloss import metrics as nm
from regloss.torch import metrics as tm

#: ours -> (torchmetrics' class, its arguments)
TORCHMETRICS: dict[type[tm.Metric], tuple[Any, dict[str, Any]]] = {
    tm.MeanSquaredError: (torchmetrics.MeanSquaredError, {}),
    tm.RootMeanSquaredError: (torchmetrics.MeanSquaredError, {"squared": False}),
    tm.MeanAbsoluteError: (torchmetrics.MeanAbsoluteError, {}),
    tm.R2Score: (torchmetrics.R2Score, {"multioutput": "raw_values"}),
    tm.ExplainedVariance: (torchmetrics.ExplainedVariance, {"multioutput": "raw_values"}),
}


def _data(seed: int, n: int = 120, k: int = 3) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(n, k, generator=g, dtype=torch.float64) * 4 + 10
    p = t + torch.randn(n, k, generator=g, dtype=torch.float64)
    w = torch.rand(n, generator=g, dtype=torch.float64)
    return p, t, w


def _close(a: Any, b: Any, rtol: float = 1e-12) -> None:
    torch.testing.assert_close(
        torch.as_tensor(a, dtype=torch.float64),
        torch.as_tensor(b, dtype=torch.float64),
        rtol=rtol,
        atol=1e-13,
        equal_nan=True,
    )


@pytest.mark.parametrize("cls", list(TORCHMETRICS))
@pytest.mark.parametrize("k", [1, 3])
def test_forward_and_compute_equal_torchmetrics(cls: type[tm.Metric], k: int) -> None:
    theirs_cls, kwargs = TORCHMETRICS[cls]
    if "multioutput" not in kwargs:
        kwargs = {**kwargs, "num_outputs": k}
    theirs = theirs_cls(**kwargs)
    theirs.set_dtype(torch.float64)  # torchmetrics keeps float32 states by default
    ours = cls(num_outputs=k, multioutput="raw_values")
    p, t, _ = _data(k, k=k)
    if k == 1:
        p, t = p[:, 0], t[:, 0]
    for idx in torch.arange(120).split(37):
        _close(ours(p[idx], t[idx]).squeeze(), theirs(p[idx], t[idx]).squeeze())
    _close(ours.compute().squeeze(), theirs.compute().squeeze())


def _constructors() -> list[Any]:
    out: list[Any] = [
        (tm.MeanSquaredError, nm.MeanSquaredError, {}),
        (tm.RootMeanSquaredError, nm.RootMeanSquaredError, {}),
        (tm.MeanAbsoluteError, nm.MeanAbsoluteError, {}),
        (tm.R2Score, nm.R2Score, {}),
        (tm.ExplainedVariance, nm.ExplainedVariance, {}),
        (tm.MaxError, nm.MaxError, {}),
        (tm.MedianAbsoluteError, nm.MedianAbsoluteError, {"exact_limit": 100}),
        (tm.MeanPinballLoss, nm.MeanPinballLoss, {"q": 0.8}),
    ]
    for name in regloss.available_losses():
        out.append((tm.MeanLoss, nm.MeanLoss, {"name": name}))
    return out


@pytest.mark.parametrize(("ours", "numpy", "kwargs"), _constructors())
@pytest.mark.parametrize("option", ["weights", "mask", "omit"])
def test_equal_to_the_numpy_metrics(
    ours: Any, numpy: Any, kwargs: dict[str, Any], option: str
) -> None:
    """Every metric (MeanLoss of every registered loss) with weights, a mask, or NaN
    targets omitted, streamed in batches, equals regloss.metrics on the same data."""
    p, t, w = _data(11)
    extra: dict[str, Any] = {}
    policy = "omit" if option == "omit" else "propagate"
    if option == "omit":
        t = t.clone()
        t[torch.rand(t.shape, generator=torch.Generator().manual_seed(2)) < 0.2] = torch.nan
    mask = torch.rand(p.shape, generator=torch.Generator().manual_seed(3)) < 0.7
    a = ours(num_outputs=3, multioutput="raw_values", nan_policy=policy, **kwargs)
    b = numpy(multioutput="raw_values", nan_policy=policy, **kwargs)
    for idx in torch.arange(120).split(50):
        extra = {
            "weight": w[idx] if option == "weights" else None,
            "mask": mask[idx] if option == "mask" else None,
        }
        a.update(p[idx], t[idx], **extra)
        b.update(
            *(x.numpy() if x is not None else None for x in (p[idx], t[idx])),
            **{k: None if v is None else v.numpy() for k, v in extra.items()},
        )
    _close(a.compute(), b.compute())


@pytest.mark.parametrize("name", regloss.available_nll_losses())
def test_mean_nll_equals_the_numpy_metric(name: str) -> None:
    p, t, w = _data(12, k=2)
    s = torch.rand(120, dtype=torch.float64, generator=torch.Generator().manual_seed(4)) + 0.2
    a = tm.MeanLoss(name, num_outputs=2)
    b = nm.MeanLoss(name)
    for idx in torch.arange(120).split(50):
        a.update(p[idx], t[idx], w[idx], scale=s[idx])
        b.update(p[idx].numpy(), t[idx].numpy(), w[idx].numpy(), scale=s[idx].numpy())
    _close(a.compute(), b.compute())


def test_states_are_float64_buffers_that_follow_the_inputs_device() -> None:
    """On meta tensors (no data) the states move to meta; under FakeTensorMode an update and
    compute run without reading anything back to the host."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    p, t, w = _data(13)
    for cls in (tm.MeanSquaredError, tm.R2Score, tm.ExplainedVariance, tm.MaxError):
        m = cls(num_outputs=3)
        assert all(b.dtype == torch.float64 for b in m.buffers())
        m.update(p.to("meta"), t.to("meta"), w.to("meta"))
        assert {b.device.type for b in m.buffers()} == {"meta"}
        assert m.compute().device.type == "meta"
        with FakeTensorMode() as mode:
            fake = cls(num_outputs=3)
            fake.update(*(mode.from_tensor(x) for x in (p, t, w)))
            assert fake.compute().shape == ()


def test_state_dict_round_trip_and_reset() -> None:
    p, t, w = _data(14)
    for cls in (tm.MeanSquaredError, tm.R2Score, tm.MedianAbsoluteError, tm.MaxError):
        whole = cls(num_outputs=3)
        whole.update(p, t, w)
        first = cls(num_outputs=3)
        first.update(p[:70], t[:70], w[:70])
        second = cls(num_outputs=3)
        second.load_state_dict(first.state_dict())
        second.update(p[70:], t[70:], w[70:])
        _close(second.compute(), whole.compute())
        second.reset()
        second.update(p[:70], t[:70], w[:70])
        _close(second.compute(), first.compute())
        merged = cls(num_outputs=3)
        merged.update(p[70:], t[70:], w[70:])
        _close(merged.merge(first).compute(), whole.compute())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize("world", [2, 3])
def test_compute_synchronises_ranks_with_uneven_updates(world: int, tmp_path: Any) -> None:
    """Rank 0 makes 3 updates, rank 1 one, rank 2 (of 3) none: every rank's compute() is
    scikit-learn's value on all the data."""
    out = str(tmp_path / "metrics")
    mp.spawn(ddp_worker.run_metrics, args=(world, _free_port(), out), nprocs=world, join=True)
    ranks = [torch.load(f"{out}.{r}") for r in range(world)]
    p, t, w = (x.numpy() for x in ddp_worker.metric_data(world))
    want = {
        "MeanSquaredError": skm.mean_squared_error,
        "RootMeanSquaredError": skm.root_mean_squared_error,
        "MeanAbsoluteError": skm.mean_absolute_error,
        "R2Score": skm.r2_score,
        "ExplainedVariance": skm.explained_variance_score,
        "MedianAbsoluteError": skm.median_absolute_error,
    }
    for name, fn in want.items():
        expected = fn(t, p, sample_weight=w, multioutput="raw_values")
        for got in ranks:
            _close(got[name], expected, rtol=1e-11)
    for got in ranks:
        _close(got["MaxError"], np.abs(p - t).max(axis=0))
        for name in want:
            assert torch.equal(got[name], ranks[0][name])  # the same bits on every rank


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: tm.MeanSquaredError(num_outputs=0), ValueError, "num_outputs must be"),
        (lambda: tm.R2Score(multioutput="avg"), ValueError, "multioutput must be one"),
        (lambda: tm.MeanSquaredError(nan_policy="x"), ValueError, "nan_policy"),
        (
            lambda: tm.MeanSquaredError(num_outputs=2).update(torch.ones(3), torch.ones(3)),
            ValueError,
            "num_outputs=2",
        ),
        (
            lambda: tm.MeanSquaredError().update(np.ones(3), np.ones(3)),
            TypeError,
            "must be torch tensors",
        ),
        (
            lambda: tm.MeanSquaredError().update(torch.ones(3), torch.ones(4)),
            ValueError,
            "target has shape",
        ),
        (
            lambda: tm.MeanSquaredError().update(torch.ones(2, 1, 1), torch.ones(2, 1, 1)),
            ValueError,
            r"\(n, outputs\)",
        ),
        (lambda: tm.MeanSquaredError().merge(tm.MeanAbsoluteError()), ValueError, "merge"),
        (
            lambda: tm.MedianAbsoluteError().merge(tm.MedianAbsoluteError(exact_limit=3)),
            ValueError,
            "merge",
        ),
        (lambda: tm.MeanLoss("l2"), ValueError, "unknown loss"),
        (
            lambda: tm.MeanLoss("laplace_nll").update(torch.ones(2), torch.ones(2)),
            ValueError,
            "needs scale=",
        ),
        (
            lambda: tm.MeanLoss("mae")(torch.ones(2), torch.ones(2), scale=torch.ones(2)),
            ValueError,
            "takes no scale=",
        ),
        (
            lambda: tm.MeanSquaredError(num_outputs=2, multioutput=[1.0, 2.0, 3.0]).forward(
                torch.ones(2, 2), torch.ones(2, 2)
            ),
            ValueError,
            "3 weights but num_outputs=2",
        ),
    ],
)
def test_every_error_names_the_argument(call: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    "cls",
    [tm.MeanSquaredError, tm.R2Score, tm.ExplainedVariance, tm.MaxError, tm.MedianAbsoluteError],
)
def test_a_metric_merged_into_itself_counts_its_data_twice(cls: type[tm.Metric]) -> None:
    p, t, w = _data(15)
    twice = cls(num_outputs=3)
    twice.update(p, t, w)
    twice.update(p, t, w)
    m = cls(num_outputs=3)
    m.update(p, t, w)
    _close(m.merge(m).compute(), twice.compute())
