"""reduction='global_mean' under DistributedDataParallel (gloo, 2 and 3 CPU processes).

The batch is split unevenly over the ranks; masks, NaN targets under nan_policy='omit' and
weights leave ranks with different numbers of valid elements, one rank with none. After
DDP's gradient averaging, 'global_mean' must give the gradients of one process computing
'mean' on the whole batch; plain 'mean' is shown to differ in the same runs."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tests import ddp_worker

import regloss.torch.functional as rtf
from regloss.torch import MSELoss

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed missing")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module", params=[2, 3], ids=["2 ranks", "3 ranks"])
def ranks(request: Any, tmp_path_factory: Any) -> tuple[int, dict[Any, Any]]:
    world: int = request.param
    out = str(tmp_path_factory.mktemp("ddp") / "results.pt")
    mp.spawn(ddp_worker.run, args=(world, _free_port(), out), nprocs=world, join=True)
    return world, torch.load(out)


@pytest.mark.parametrize("case", ddp_worker.CASES)
def test_global_mean_gives_the_full_batch_gradient(
    ranks: tuple[int, dict[Any, Any]], case: str
) -> None:
    world, results = ranks
    want_value, want = ddp_worker.full_batch(case, world)
    value, got = results[case, "global_mean"]
    for name, g in want.items():
        torch.testing.assert_close(got[name], g, rtol=1e-9, atol=1e-12, msg=f"{case}: {name}")
    assert value == pytest.approx(want_value, rel=1e-12)  # the ranks' values averaged
    # plain 'mean' averages per-rank means: wrong wherever the ranks' counts differ
    _, plain = results[case, "mean"]
    worst = max(float((plain[n] - g).abs().max()) for n, g in want.items())
    assert worst > 1e-3, f"{case}: plain 'mean' should differ here"


def test_without_a_process_group_global_mean_is_mean() -> None:
    assert not dist.is_initialized()
    g = torch.Generator().manual_seed(0)
    p = torch.randn(6, 3, generator=g, requires_grad=True)
    t = torch.randn(6, 3, generator=g)
    w = torch.rand(6, generator=g)
    for kwargs in ({}, {"weight": w}, {"mask": t > 0}):
        a = rtf.huber_loss(p, t, reduction="global_mean", **kwargs)
        b = rtf.huber_loss(p, t, reduction="mean", **kwargs)
        assert torch.equal(a, b)
    assert torch.equal(MSELoss(reduction="global_mean")(p, t), MSELoss()(p, t))


def test_global_mean_is_refused_where_there_is_no_torch_distributed() -> None:
    import numpy as np

    import regloss.numpy as rnp

    with pytest.raises(ValueError, match=r"'global_mean' .* is a regloss.torch reduction"):
        rnp.mse(np.ones(2), np.ones(2), reduction="global_mean")


def test_the_local_count_reads_nothing_back_to_the_host() -> None:
    """Σ weight × kept is computed from shapes and tensor ops only: it runs under
    FakeTensorMode (no data, so any host read would fail) and on the meta device, and on
    real tensors it equals the weighted count of kept elements."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from regloss._reduction import SUM, Options
    from regloss._validate import prepare
    from regloss.torch._distributed import local_count as count

    def local_count(p: Any, t: Any, w: Any, m: Any, nan_policy: str, _: bool) -> Any:
        return count(prepare(torch, p, t, Options(SUM, w, m, nan_policy)))

    g = torch.Generator().manual_seed(1)
    t = torch.randn(5, 3, generator=g)
    t[0, 1] = float("nan")
    w = torch.rand(5, generator=g)
    mask = torch.rand(5, 3, generator=g) > 0.3
    got = local_count(t, t, w, mask, "omit", False)
    want = (w[:, None] * mask * ~torch.isnan(t)).double().sum()
    torch.testing.assert_close(got, want)
    assert local_count(t, t, None, None, "propagate", False).item() == 15
    with FakeTensorMode() as mode:
        ft, fw, fm = (mode.from_tensor(x) for x in (t, w, mask))
        out = local_count(ft, ft, fw, fm, "omit", False)
        assert out.shape == () and out.dtype == torch.float64
    meta = local_count(t.to("meta"), t.to("meta"), w.to("meta"), mask.to("meta"), "omit", False)
    assert meta.device.type == "meta"
