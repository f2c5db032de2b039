"""Streaming accumulation of residual statistics: exact sums, one sketch, a top-k heap.

Sums are accumulated per chunk in float64 and combined across chunks with ``math.fsum``
(exactly rounded), about a fixed shift (the first chunk's mean) and in units of a fixed
power of two (the first chunk's spread), so that central moments neither cancel nor
overflow (residuals of 1e300 still give a kurtosis): streamed and in-memory answers agree to
~1e-15 relative. Order statistics come from the residuals themselves while they fit in
:data:`EXACT_LIMIT` values (exact medians, MAD, quantiles and counts), and from
:class:`~regloss.diagnostics._sketch.RelativeSketch` (0.1% relative error) beyond.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from .._numerics import grow_partials
from . import _fused
from ._sketch import RelativeSketch, _magnitudes

__all__ = ["EXACT_LIMIT", "OutputAccumulator"]

#: Residuals kept for exact order statistics (16 MB of float64 each for r and w).
EXACT_LIMIT = 1 << 21

_SUMS = ("w", "wr", "wr2", "wabs", "c1", "c2", "c3", "c4", "wy", "wy2")


_NO_ROWS = np.array([], dtype=np.int64)


def _compact(values: list[float]) -> list[float]:
    """The same exact sum in at most ~40 floats (Shewchuk partials), while all are finite;
    an inf or NaN is kept as it is (``total`` reports it)."""
    if not all(map(math.isfinite, values)):
        return values
    partials: list[float] = []
    for v in values:
        grow_partials(partials, v)
        if not math.isfinite(partials[-1]):  # the exact sum passed finfo.max: keep the list
            return values
    return partials


@dataclass
class OutputAccumulator:
    """Everything :mod:`regloss.diagnostics` needs about one output's residuals."""

    top_k: int = 10
    n: int = 0
    shift_r: float | None = None
    shift_y: float | None = None
    unit: float = 1.0  # the moments' unit, a power of two: (d/unit)^4 stays finite
    r_min: float = math.inf
    r_max: float = -math.inf
    exact_limit: int = EXACT_LIMIT
    kept: list[tuple[np.ndarray, np.ndarray | None]] | None = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in _SUMS})
    sketch: RelativeSketch = field(default_factory=RelativeSketch)
    abs_sketch: RelativeSketch = field(default_factory=RelativeSketch)
    #: r − shift_r: relative bins are fine near the centre whatever the offset (the advice's
    #: variance ratios need resolution in units of the spread, not of |r|)
    centred: RelativeSketch = field(default_factory=RelativeSketch)
    max_abs: float = 0.0
    max_row: int = -1
    heap: list[tuple[float, int, float, float]] = field(default_factory=list)
    #: Uniform sample of (prediction, residual) pairs for plots: the SAMPLE smallest of a
    #: random key per value (bottom-k sampling: exact-uniform, mergeable, seeded).
    sample_size: int = 4000
    sample: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def update(
        self,
        pred: np.ndarray,
        target: np.ndarray,
        weight: np.ndarray | None,
        rows: np.ndarray,
        resid: np.ndarray | None = None,
    ) -> None:
        """Add a chunk; ``rows`` are the values' row numbers in the input (0-based);
        ``resid`` is pred − target when the reader computed it more exactly (integers)."""
        with np.errstate(over="ignore", invalid="ignore"):
            r = pred - target if resid is None else resid
        if r.size == 0:
            return
        if self.shift_r is None:
            self.shift_r = float(np.mean(r / 2) * 2)  # halved: no overflow near finfo.max
            self.shift_y = float(np.mean(target / 2) * 2)
            spread = float(np.max(np.abs(r / 2 - self.shift_r / 2))) * 2
            if spread > 0 and math.isfinite(spread):
                # 2^1023 at most: a spread beyond 2^1023 (up to finfo.max) has no power of
                # two above it, and d = r/unit stays below 4 anyway
                self.unit = 2.0 ** min(math.frexp(spread)[1], 1023)
        assert self.shift_y is not None
        if self.kept is not None:
            if self.n + r.size <= self.exact_limit:
                self.kept.append((r.copy(), None if weight is None else weight.copy()))
            else:
                self.kept = None
        fused = _fused.update(self, r, target, weight)  # one compiled pass, where built
        if fused is not None:
            self.n += r.size
            self._track(pred, target, r, fused[0], rows, fused[1])
            return
        self.r_min = min(self.r_min, float(r.min()))
        self.r_max = max(self.r_max, float(r.max()))
        w = np.ones_like(r) if weight is None else weight
        d = r / self.unit - self.shift_r / self.unit
        with np.errstate(over="ignore", invalid="ignore"):  # |r| > 1e154: r² is inf, as is MSE
            dy = target - self.shift_y
            d2 = d * d
            wr = w * r
            wr2 = wr * r  # the contributions the top-k heap ranks, too
            self._add_sums(w, wr, wr2, d, d2, dy)
        self.n += r.size
        a = np.abs(r)
        k = _magnitudes(a)  # the bins of r and of |r| share their magnitudes
        self.sketch.update(r, magnitudes=k)
        self.abs_sketch.update(a, weight, magnitudes=k)
        with np.errstate(over="ignore", invalid="ignore"):
            self.centred.update(r - self.shift_r)
        self._track(pred, target, r, wr2, rows)

    def _add_sums(
        self,
        w: np.ndarray,
        wr: np.ndarray,
        wr2: np.ndarray,
        d: np.ndarray,
        d2: np.ndarray,
        dy: np.ndarray,
    ) -> None:
        for key, value in (
            ("w", w.sum()),
            ("wr", wr.sum()),
            ("wr2", wr2.sum()),
            ("wabs", np.abs(wr).sum()),  # w >= 0
            ("c1", d.sum()),
            ("c2", d2.sum()),
            ("c3", (d2 * d).sum()),
            ("c4", (d2 * d2).sum()),
            ("wy", (w * dy).sum()),
            ("wy2", (w * dy * dy).sum()),
        ):
            self.parts[key].append(float(value))

    def _track(
        self,
        pred: np.ndarray,
        target: np.ndarray,
        r: np.ndarray,
        wr2: np.ndarray,
        rows: np.ndarray,
        i: int | None = None,
    ) -> None:
        """The largest error (at index ``i`` of the chunk, when known), the plot sample and
        the top-k contributions."""
        if i is None:
            i = int(np.argmax(np.abs(r)))
        if abs(r[i]) > self.max_abs or self.max_row < 0:
            self.max_abs, self.max_row = float(abs(r[i])), int(rows[i])
        if self.sample.shape[0] < self.sample_size:
            keys, sp, sr = self.rng.random(r.size), pred, r
        else:
            # Only keys below the sample's largest, t, can enter the bottom-k, and of m
            # uniform keys those are Binomial(m, t) many, at uniformly chosen rows, each
            # uniform on [0, t): drawn so, directly, instead of m keys (6.5 ns a row here)
            t = float(self.sample[:, 0].max())
            k = int(self.rng.binomial(r.size, t))
            enter = self.rng.choice(r.size, size=k, replace=False) if k else _NO_ROWS
            keys, sp, sr = t * self.rng.random(k), pred[enter], r[enter]
        if keys.size:
            pool = np.concatenate([self.sample, np.column_stack([keys, sp, sr])])
            if pool.shape[0] > self.sample_size:
                pool = pool[np.argpartition(pool[:, 0], self.sample_size)[: self.sample_size]]
            self.sample = pool
        # top-k contributions w r^2, exact: only candidates above the current k-th enter
        contrib = wr2
        k = min(self.top_k, contrib.size)
        if k and len(self.heap) >= self.top_k:
            # one comparison a row instead of a partition of the chunk (2.7 ns a row)
            idx = np.flatnonzero(contrib > self.heap[0][0])
            if idx.size > k:
                idx = idx[np.argpartition(contrib[idx], -k)[-k:]]
        else:
            idx = np.argpartition(contrib, -k)[-k:] if k else _NO_ROWS
        for j in idx.tolist():
            item = (float(contrib[j]), int(rows[j]), float(pred[j]), float(target[j]))
            if len(self.heap) < self.top_k:
                heapq.heappush(self.heap, item)
            elif item[0] > self.heap[0][0]:
                heapq.heapreplace(self.heap, item)

    def origin(self) -> tuple[float, float, float] | None:
        """(shift_r, shift_y, unit): the moments' origin and unit, fixed by the first chunk.
        Accumulators that will be merged must share it (:meth:`preset`)."""
        if self.shift_r is None or self.shift_y is None:
            return None
        return self.shift_r, self.shift_y, self.unit

    def preset(self, origin: tuple[float, float, float] | None) -> None:
        """Take the moments' origin of another accumulator (before any update)."""
        if origin is not None:
            self.shift_r, self.shift_y, self.unit = origin

    def merge(self, other: OutputAccumulator) -> None:
        """Add ``other``'s data (an accumulator of later rows with the same origin): the
        same state as one accumulator fed both, but for the plot sample (a uniform sample
        either way) and the rounding of the chunk sums (added exactly)."""
        if other.n == 0:
            return
        if self.n == 0 and self.shift_r is None:
            self.preset(other.origin())
        elif other.origin() != self.origin():
            raise ValueError(
                f"accumulators with different origins {self.origin()} and {other.origin()} "
                "do not merge; preset() them from one"
            )
        if (
            self.kept is not None
            and other.kept is not None
            and (self.n + other.n <= self.exact_limit)
        ):
            self.kept = self.kept + other.kept
        else:
            self.kept = None
        for key, values in other.parts.items():
            self.parts[key] = _compact(self.parts[key] + values)
        for mine, theirs in (
            (self.sketch, other.sketch),
            (self.abs_sketch, other.abs_sketch),
            (self.centred, other.centred),
        ):
            mine.merge(theirs)
        self.r_min, self.r_max = min(self.r_min, other.r_min), max(self.r_max, other.r_max)
        # the first row of the largest error, as one pass finds it
        if (other.max_abs, -other.max_row) > (self.max_abs, -self.max_row) or self.max_row < 0:
            self.max_abs, self.max_row = other.max_abs, other.max_row
        pool = np.concatenate([self.sample, other.sample])
        if pool.shape[0] > self.sample_size:
            pool = pool[np.argpartition(pool[:, 0], self.sample_size)[: self.sample_size]]
        self.sample = pool
        # the largest contributions, the earlier row first among equal ones (as one pass)
        self.heap = heapq.nlargest(self.top_k, self.heap + other.heap, key=lambda c: (c[0], -c[1]))
        heapq.heapify(self.heap)
        self.n += other.n

    def total(self, key: str) -> float:
        values = self.parts[key]
        if all(map(math.isfinite, values)):
            try:
                return math.fsum(values)
            except OverflowError:  # a partial sum beyond finfo.max: add in units of 2^64
                scaled = math.fsum(math.ldexp(v, -64) for v in values)
                return (
                    scaled * 2.0**64 if abs(scaled) < 2.0**960 else math.copysign(math.inf, scaled)
                )
        return float(np.sum(values))  # fsum raises on inf; inf/nan is the honest total

    def exact(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """All residuals (and weights), when they were few enough to keep."""
        if self.kept is None or not self.kept:
            return None
        r = np.concatenate([k[0] for k in self.kept])
        ws = [k[1] for k in self.kept]
        w = None if any(x is None for x in ws) else np.concatenate([x for x in ws if x is not None])
        return r, w
