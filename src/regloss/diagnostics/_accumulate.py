"""Streaming accumulation of residual statistics: exact sums, one sketch, a top-k heap.

Sums are accumulated per chunk in float64 and combined across chunks with ``math.fsum``
(exactly rounded), about a fixed shift (the first chunk's mean) so that central moments do
not cancel: streamed and in-memory answers agree to ~1e-15 relative. Order statistics
come from :class:`~regloss.diagnostics._sketch.RelativeSketch` (0.1% relative error).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from ._sketch import RelativeSketch

__all__ = ["OutputAccumulator"]

_SUMS = ("w", "wr", "wr2", "wabs", "c1", "c2", "c3", "c4", "wy", "wy2")


@dataclass
class OutputAccumulator:
    """Everything :mod:`regloss.diagnostics` needs about one output's residuals."""

    top_k: int = 10
    n: int = 0
    shift_r: float | None = None
    shift_y: float | None = None
    parts: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in _SUMS})
    sketch: RelativeSketch = field(default_factory=RelativeSketch)
    abs_sketch: RelativeSketch = field(default_factory=RelativeSketch)
    max_abs: float = 0.0
    max_row: int = -1
    heap: list[tuple[float, int, float, float]] = field(default_factory=list)
    #: Uniform sample of (prediction, residual) pairs for plots: the SAMPLE smallest of a
    #: random key per value (bottom-k sampling: exact-uniform, mergeable, seeded).
    sample_size: int = 4000
    sample: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def update(
        self, pred: np.ndarray, target: np.ndarray, weight: np.ndarray | None, rows: np.ndarray
    ) -> None:
        """Add a chunk; ``rows`` are the values' row numbers in the input (0-based)."""
        r = pred - target
        if r.size == 0:
            return
        if self.shift_r is None:
            self.shift_r, self.shift_y = float(np.mean(r)), float(np.mean(target))
        assert self.shift_y is not None
        w = np.ones_like(r) if weight is None else weight
        d = r - self.shift_r
        dy = target - self.shift_y
        d2 = d * d
        wr = w * r
        wr2 = wr * r  # the contributions the top-k heap ranks, too
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
        self.n += r.size
        self.sketch.update(r)
        self.abs_sketch.update(np.abs(r), w)
        i = int(np.argmax(np.abs(r)))
        if abs(r[i]) > self.max_abs or self.max_row < 0:
            self.max_abs, self.max_row = float(abs(r[i])), int(rows[i])
        keys = self.rng.random(r.size)
        pool = np.concatenate([self.sample, np.column_stack([keys, pred, r])])
        if pool.shape[0] > self.sample_size:
            pool = pool[np.argpartition(pool[:, 0], self.sample_size)[: self.sample_size]]
        self.sample = pool
        # top-k contributions w r^2, exact: only candidates above the current k-th enter
        contrib = wr2
        k = min(self.top_k, contrib.size)
        idx = np.argpartition(contrib, -k)[-k:] if k else np.array([], dtype=np.int64)
        for j in idx.tolist():
            item = (float(contrib[j]), int(rows[j]), float(pred[j]), float(target[j]))
            if len(self.heap) < self.top_k:
                heapq.heappush(self.heap, item)
            elif item[0] > self.heap[0][0]:
                heapq.heapreplace(self.heap, item)

    def total(self, key: str) -> float:
        return math.fsum(self.parts[key])
