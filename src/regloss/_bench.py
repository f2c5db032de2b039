"""Speed measurement shared by ``regloss bench`` and ``benchmarks/``.

Absolute times on a shared machine swing by 2x between runs, so regloss reports ratios
measured in one process: the contenders of a cell alternate in rounds (the order flips each
round), each round times a batch of calls long enough to dwarf the timer's resolution, and
each contender's time is the median of its batch means. Nothing here runs in the test
suite's timing-sensitive way: the tests check the harness's bookkeeping, not speeds.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "Cell",
    "alternate",
    "fmt_seconds",
    "numpy_bandwidth",
    "prepare_kernels",
    "size_label",
    "torch_cells",
    "torch_step",
]

#: a batch of calls lasts at least this long, so perf_counter's resolution does not matter
MIN_BATCH_S = 2e-3


def alternate(
    contenders: Sequence[Callable[[], Any]], *, seconds: float = 1.0, min_rounds: int = 5
) -> list[float]:
    """Median seconds per call of each contender, measured in alternating rounds.

    Each contender runs twice to warm up, then a calibration call sizes its batch (at least
    ``MIN_BATCH_S``); rounds alternate the contenders (reversed on odd rounds) until about
    ``seconds`` have passed and at least ``min_rounds`` rounds ran.
    """
    if not contenders:
        raise ValueError("contenders is empty; pass at least one callable")
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    batch = []
    for f in contenders:
        f()
        f()
        t0 = time.perf_counter()
        f()
        once = max(time.perf_counter() - t0, 1e-7)
        batch.append(max(1, math.ceil(MIN_BATCH_S / once)))
    times: list[list[float]] = [[] for _ in contenders]
    start = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or time.perf_counter() - start < seconds:
        order = range(len(contenders)) if rounds % 2 == 0 else reversed(range(len(contenders)))
        for i in order:
            f, k = contenders[i], batch[i]
            t0 = time.perf_counter()
            for _ in range(k):
                f()
            times[i].append((time.perf_counter() - t0) / k)
        rounds += 1
    return [statistics.median(t) for t in times]


@dataclasses.dataclass(frozen=True)
class Cell:
    """One measured comparison: labels, then seconds per call of each contender."""

    labels: dict[str, str]
    seconds: dict[str, float]

    def ratio(self, ours: str = "regloss", peer: str = "torch") -> float:
        return self.seconds[ours] / self.seconds[peer]


def fmt_seconds(s: float) -> str:
    """``12.3 us`` / ``4.56 ms`` / ``1.23 s``."""
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def size_label(n: int) -> str:
    """``2^20`` for powers of two, the number otherwise."""
    if n > 4 and n & (n - 1) == 0:
        return f"2^{n.bit_length() - 1}"
    return str(n)


def numpy_bandwidth(
    names: Sequence[str], n: int, dtype: Any, *, seconds: float = 1.0
) -> dict[str, float]:
    """Fraction of this machine's copy bandwidth that ``value_and_grad(name, p, t, out=g)``
    reaches for each loss in ``names``, with ``np.copyto`` between two arrays of n elements
    alternated with it in the same rounds ('copy' maps to its bytes/s).

    Bytes counted: the copy reads one array and writes one; value_and_grad reads two and
    writes one. Fraction = (3 n itemsize / t_loss) / (2 n itemsize / t_copy).
    """
    import numpy as np

    from . import numpy as rnp

    rng = np.random.default_rng(0)
    p = rng.standard_normal(n).astype(dtype)
    t = rng.standard_normal(n).astype(dtype)
    g = np.empty_like(p)
    a, b = np.ones_like(p), np.empty_like(p)
    calls: list[Callable[[], Any]] = [functools.partial(np.copyto, b, a)]
    calls += [functools.partial(rnp.value_and_grad, name, p, t, out=g) for name in names]
    t_copy, *t_loss = alternate(calls, seconds=seconds)
    copy_bw = 2 * a.nbytes / t_copy
    out = {"copy": copy_bw}
    for name, tl in zip(names, t_loss):
        out[name] = (3 * a.nbytes / tl) / copy_bw
    return out


# --- PyTorch cells -------------------------------------------------------------------------


def torch_step(
    f: Callable[..., Any], x: Any, args: tuple[Any, ...], kw: dict[str, Any]
) -> Callable[[], None]:
    """One training step ``x.grad = None; f(x, *args, **kw).backward()``."""

    def step() -> None:
        x.grad = None
        f(x, *args, **kw).backward()

    return step


def torch_cells(
    pairs: dict[str, tuple[Callable[..., Any], Callable[..., Any]]],
    sizes: Sequence[int],
    *,
    dtypes: Sequence[Any] = (),
    reductions: Sequence[str] = ("mean",),
    weighted: Sequence[bool] = (False,),
    seconds: float = 0.5,
    extras: dict[str, Callable[[Any], tuple[Any, ...]]] | None = None,
    progress: Callable[[Cell], None] | None = None,
) -> list[Cell]:
    """Forward+backward of ``pairs[name] = (regloss_fn, torch_fn)``, each called as
    ``f(x, y, *extras[name](y), reduction=..., weight=w)`` with only the prediction
    requiring a gradient (``extras`` makes further inputs, e.g. a variance)."""
    import torch

    dtypes = tuple(dtypes) or (torch.float32,)
    cells = []
    for name, (ours, peer) in pairs.items():
        for n in sizes:
            for dtype in dtypes:
                gen = torch.Generator().manual_seed(n)
                x = torch.randn(n, generator=gen, dtype=dtype).requires_grad_()
                y = torch.randn(n, generator=gen, dtype=dtype)
                w = torch.rand(n, generator=gen, dtype=dtype) + 0.5
                more = (extras or {}).get(name, lambda _: ())(y)
                for reduction in reductions:
                    for weigh in weighted:
                        kw: dict[str, Any] = {"reduction": reduction}
                        if weigh:
                            kw["weight"] = w
                        steps = [torch_step(f, x, (y, *more), kw) for f in (ours, peer)]
                        a, b = alternate(steps, seconds=seconds)
                        labels = {
                            "loss": name,
                            "N": size_label(n),
                            "dtype": str(dtype).removeprefix("torch."),
                            "reduction": reduction,
                            "weight": "yes" if weigh else "no",
                        }
                        cell = Cell(labels, {"regloss": a, "torch": b})
                        cells.append(cell)
                        if progress is not None:
                            progress(cell)
    return cells


def prepare_kernels(dtypes: Sequence[str] = ("float32",)) -> dict[str, float]:
    """Build (or load from the disk cache) the generated CPU kernel of every registered
    loss and NLL at its default parameters before timing, so that a measurement never
    includes a first call's build. Returns the build or load time per kernel (none where
    there is no compiler, or REGLOSS_KERNELS=0)."""
    from ._kernels import c
    from .losses import available_losses, available_nll_losses, form_of, get_loss, get_nll_loss

    forms: list[Any] = [form_of(get_loss(n)) for n in available_losses()]
    forms += [form_of(get_nll_loss(n)) for n in available_nll_losses()]
    return c.warm(forms, tuple(dtypes))


def _weighted(f: Callable[..., Any]) -> Callable[..., Any]:
    """PyTorch's loss ``f`` with ``weight=`` composed as a user writes it where f has none."""

    def g(x: Any, *args: Any, reduction: str = "mean", weight: Any = None) -> Any:
        if weight is None:
            return f(x, *args, reduction=reduction)
        v = f(x, *args, reduction="none") * weight
        return v.sum() / weight.sum() if reduction == "mean" else v.sum()

    return g


def torch_peers() -> tuple[
    dict[str, tuple[Callable[..., Any], Callable[..., Any]]],
    dict[str, Callable[[Any], tuple[Any, ...]]],
]:
    """(pairs, extras) for :func:`torch_cells`: the losses PyTorch has, regloss's against
    ``torch.nn.functional``'s (with weights where PyTorch takes them, composed otherwise)."""
    import torch
    import torch.nn.functional as F

    from .torch import functional as RF
    from .torch import gaussian_nll_loss

    pairs: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
        "mse": (RF.mse_loss, F.mse_loss),
        "l1": (RF.l1_loss, F.l1_loss),
        "huber": (RF.huber_loss, F.huber_loss),
        "smooth_l1": (RF.smooth_l1_loss, _weighted(F.smooth_l1_loss)),
        "gaussian_nll": (gaussian_nll_loss, _weighted(F.gaussian_nll_loss)),
    }
    extras: dict[str, Callable[[Any], tuple[Any, ...]]] = {
        "gaussian_nll": lambda y: (torch.rand_like(y) + 0.5,)
    }
    return pairs, extras


def robust_vs_mse(
    n: int, *, seconds: float = 0.5, progress: Callable[[str, float], None] | None = None
) -> dict[str, float]:
    """Forward+backward time of every registered loss (default parameters) at size n, as a
    ratio to PyTorch's ``mse_loss`` measured in the same rounds."""
    import torch
    import torch.nn.functional as F

    from .losses import available_losses
    from .torch import functional as RF

    gen = torch.Generator().manual_seed(n)
    x = torch.randn(n, generator=gen).requires_grad_()
    y = torch.randn(n, generator=gen)
    out = {}
    for name in available_losses():
        ours = getattr(RF, f"{name}_loss")
        a, b = alternate(
            [torch_step(ours, x, (y,), {}), torch_step(F.mse_loss, x, (y,), {})],
            seconds=seconds,
        )
        out[name] = a / b
        if progress is not None:
            progress(name, a / b)
    return out
