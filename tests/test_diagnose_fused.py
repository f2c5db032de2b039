"""diagnose's compiled per-chunk pass (``diagnostics/_fused.py``) against its NumPy path.

The NumPy path is the reference: every test feeds the same chunks to an accumulator with
the compiled pass and to one without (``REGLOSS_KERNELS=0``), and compares all of its state:
the streamed sums (to rounding: the C pass adds in blocks), the three sketches (keys and
counts exactly, bin sums to rounding), the extremes, the largest error's row, the top-k and
the plot sample (exactly).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from regloss.diagnostics import _fused
from regloss.diagnostics._accumulate import OutputAccumulator

Chunk = tuple[np.ndarray, np.ndarray, np.ndarray | None]


@pytest.fixture(autouse=True)
def _kernels_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGLOSS_KERNELS", "1")
    if _fused.library() is None:
        from regloss._kernels import c

        pytest.fail(f"the diagnose pass did not build: {c.status()}")


def _feed(chunks: list[Chunk], fused: list[bool], monkeypatch: pytest.MonkeyPatch) -> Any:
    """An accumulator fed ``chunks``, the compiled pass on for the chunks marked True."""
    acc = OutputAccumulator()
    start = 0
    for (p, t, w), on in zip(chunks, fused, strict=True):
        with monkeypatch.context() as m:
            m.setenv("REGLOSS_KERNELS", "1" if on else "0")
            acc.update(p, t, w, np.arange(start, start + p.size))
        start += p.size
    return acc


def _magnitudes(acc: Any, chunks: list[Chunk]) -> dict[str, float]:
    """Σ|term| of each streamed sum: the scale its rounding error is relative to (a signed
    sum may cancel to almost nothing)."""
    p = np.concatenate([c[0] for c in chunks])
    t = np.concatenate([c[1] for c in chunks])
    w = np.concatenate([np.ones_like(c[0]) if c[2] is None else c[2] for c in chunks])
    with np.errstate(over="ignore", invalid="ignore"):
        r = p - t
        d = np.abs(r / acc.unit - acc.shift_r / acc.unit)
        dy = np.abs(t - acc.shift_y)
        terms = {
            "w": w, "wr": w * np.abs(r), "wr2": w * r * r, "wabs": w * np.abs(r), "c1": d,
            "c2": d * d, "c3": d * d * d, "c4": d**4, "wy": w * dy, "wy2": w * dy * dy,
        }  # fmt: skip
        return {k: float(np.sum(v)) for k, v in terms.items()}


def _assert_same(a: Any, b: Any, chunks: list[Chunk]) -> None:
    scale = _magnitudes(b, chunks)
    for key in a.parts:
        x, y = a.total(key), b.total(key)
        assert x == pytest.approx(y, rel=1e-13, abs=1e-13 * scale[key], nan_ok=True), key
    for sa, sb in ((a.sketch, b.sketch), (a.abs_sketch, b.abs_sketch), (a.centred, b.centred)):
        np.testing.assert_array_equal(sa.keys, sb.keys)
        np.testing.assert_array_equal(sa.stats[:, 0], sb.stats[:, 0])
        # bins add their values in another order (each in place, not per chunk first)
        np.testing.assert_allclose(sa.stats, sb.stats, rtol=1e-11, atol=0)
    assert (a.n, a.r_min, a.r_max) == (b.n, b.r_min, b.r_max)
    assert (a.max_abs, a.max_row) == (b.max_abs, b.max_row)
    assert a.heap == b.heap
    np.testing.assert_array_equal(a.sample, b.sample)


def _chunks(rng: np.random.Generator, kind: str, n: int = 6000, parts: int = 5) -> list[Chunk]:
    out: list[Chunk] = []
    for _ in range(parts):
        t = rng.normal(size=n)
        noise = np.where(rng.random(n) < 0.05, rng.normal(scale=20, size=n), rng.normal(size=n))
        p = t + noise
        w = None
        if kind == "weights":
            w = rng.random(n) * 3
            w[::17] = 0.0
        elif kind == "zeros":
            p[::3] = t[::3]  # exact zeros in r, and in r - shift only by chance
        elif kind == "positive":
            p = t + np.abs(noise)
        elif kind == "offset":
            t, p = t + 1e9, p + 1e9  # cancellation in r; centred sketch far from |r|'s
        elif kind == "subnormal":
            p, t = noise * 1e-310, np.zeros(n)
        elif kind == "integers":
            t = np.round(t * 100)
            p = t + np.round(noise * 10)
        out.append((p, t, w))
    return out


KINDS = ["normal", "weights", "zeros", "positive", "offset", "subnormal", "integers"]


@pytest.mark.parametrize("kind", KINDS)
def test_compiled_pass_equals_numpy_path(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = _chunks(np.random.default_rng(KINDS.index(kind)), kind)
    fused = _feed(chunks, [True] * len(chunks), monkeypatch)
    numpy = _feed(chunks, [False] * len(chunks), monkeypatch)
    _assert_same(fused, numpy, chunks)


def test_compiled_pass_runs_where_it_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proof that the comparisons above compare two paths: the pass handles plain chunks,
    and declines (NumPy path) when a sketch has gone sorted or the scale unit is not a power
    of two it can invert exactly."""
    acc = OutputAccumulator()
    p, t, _ = _chunks(np.random.default_rng(0), "normal", parts=1)[0]
    acc.update(p, t, None, np.arange(p.size))
    assert _fused.update(acc, p - t, t, None) is not None
    acc.unit = 3.0
    assert _fused.update(acc, p - t, t, None) is None
    acc.unit = 1.0
    acc.sketch.update(np.array([5e-324, 1e308]))  # spans more than the dense limit
    assert acc.sketch._sorted is not None
    assert _fused.update(acc, p - t, t, None) is None
    monkeypatch.setenv("REGLOSS_KERNELS", "0")
    assert _fused.library() is None


def test_switching_paths_between_chunks_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The library arrives in the background after the first chunks: NumPy chunks, then
    compiled ones (and back) must add up to the same state."""
    chunks = _chunks(np.random.default_rng(9), "weights", parts=6)
    mixed = _feed(chunks, [False, False, True, True, False, True], monkeypatch)
    numpy = _feed(chunks, [False] * 6, monkeypatch)
    _assert_same(mixed, numpy, chunks)


def test_chunk_spanning_the_float_range_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    chunks = _chunks(rng, "normal", parts=2)
    p = rng.normal(size=500)
    p[:4] = [5e-324, -5e-324, 1e308, -1e308]
    chunks.insert(1, (p, np.zeros(500), None))
    fused = _feed(chunks, [True] * 3, monkeypatch)
    numpy = _feed(chunks, [False] * 3, monkeypatch)
    assert fused.sketch._sorted is not None  # the middle chunk switched it
    _assert_same(fused, numpy, chunks)


_FLOATS = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=40, deadline=None)
@given(
    r=hnp.arrays(np.float64, st.integers(1, 300), elements=_FLOATS),
    seed=st.integers(0, 2**32 - 1),
    weighted=st.booleans(),
)
def test_any_residuals_give_the_numpy_state(r: np.ndarray, seed: int, weighted: bool) -> None:
    """Zeros, signed zeros, subnormals and values up to finfo.max, in three chunks."""
    rng = np.random.default_rng(seed)
    t = rng.normal(size=r.size)
    w = rng.random(r.size) if weighted else None
    cut = sorted(rng.integers(0, r.size + 1, size=2).tolist())
    pieces = [slice(0, cut[0]), slice(cut[0], cut[1]), slice(cut[1], None)]
    chunks = [(r[s] + t[s], t[s], None if w is None else w[s]) for s in pieces]
    chunks = [c for c in chunks if c[0].size]
    with pytest.MonkeyPatch.context() as m, np.errstate(over="ignore", invalid="ignore"):
        fused = _feed(chunks, [True] * len(chunks), m)
        numpy = _feed(chunks, [False] * len(chunks), m)
    _assert_same(fused, numpy, chunks)


def test_diagnose_report_is_the_same_with_the_compiled_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from regloss.diagnostics import diagnose_source, open_source

    rng = np.random.default_rng(11)
    t = rng.normal(size=30_000)
    p = t + rng.standard_t(3, size=30_000)
    path = tmp_path / "d.csv"
    np.savetxt(
        path, np.column_stack([p, t]), delimiter=",", header="prediction,target", comments=""
    )
    reports = []
    for on in ("1", "0"):
        monkeypatch.setenv("REGLOSS_KERNELS", on)
        reports.append(diagnose_source(open_source([str(path)], chunk_rows=4096)))
    a, b = (json.loads(json.dumps(r, default=str)) for r in reports)
    _assert_close(a, b)


def _assert_close(a: Any, b: Any, where: str = "report") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12, nan_ok=True), where
    else:
        assert a == b, where


def test_prefetched_chunks_keep_order_errors_and_close_the_reader() -> None:
    """The reader thread's chunks arrive in order; its exception is raised in the consumer
    after the chunks before it; closing early stops the thread and closes the reader."""
    import threading

    from regloss.diagnostics._io import _prefetched

    closed: list[bool] = []

    def reader(n: int, fail_at: int | None = None) -> Any:
        try:
            for i in range(n):
                if i == fail_at:
                    raise ValueError(f"bad row {i}")
                yield i
        finally:
            closed.append(True)

    assert list(_prefetched(reader(50), 2)) == list(range(50))
    got: list[int] = []
    with pytest.raises(ValueError, match="bad row 7"):
        got.extend(_prefetched(reader(50, fail_at=7), 2))
    assert got == list(range(7))
    before = threading.active_count()
    stream = _prefetched(reader(10_000), 2)
    assert next(stream) == 0
    stream.close()  # the consumer stops early (an exception in the caller, say)
    assert closed == [True, True, True]
    assert threading.active_count() == before  # the worker has finished
