"""A mergeable histogram with bounded relative error, for order statistics on streams.

Every finite value x != 0 falls in a bin of relative width at most 2**-BITS (0.1%), keyed
by its sign, binary exponent and the top BITS bits of its mantissa; zeros have a bin of
their own. Each bin keeps the count and the sums of w, w·x² and w·|x| of its values, so
quantiles are known to within one bin (relative error <= 2**-BITS of the value) and sums
over "all values beyond a threshold" are exact except for the one bin the threshold falls
in. Memory grows with the number of occupied bins (a few thousand for real residuals),
not with the number of values, and two sketches merge by adding bins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["BITS", "RelativeSketch"]

BITS = 10
REL_ERROR = 2.0**-BITS
_DENSE_LIMIT = 1 << 21  # widest key range counted densely (16 MB of counts at most)


def _keys(x: np.ndarray) -> np.ndarray:
    m, e = np.frexp(np.abs(x))  # |x| = m * 2**e, m in [0.5, 1)
    k = e.astype(np.int64) * (1 << BITS) + np.floor((2.0 * m - 1.0) * (1 << BITS)).astype(np.int64)
    k = k + (1 << 24)  # keep positive keys positive for every float64 exponent
    return np.where(x > 0, k, np.where(x < 0, -k, 0))


def _edges(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) value bounds of each bin key."""
    k = np.abs(keys) - (1 << 24)
    e = k >> BITS
    frac = (k & ((1 << BITS) - 1)).astype(np.float64)
    lo = np.ldexp(0.5 * (1.0 + frac / (1 << BITS)), e.astype(np.int64))
    hi = np.ldexp(0.5 * (1.0 + (frac + 1.0) / (1 << BITS)), e.astype(np.int64))
    neg = keys < 0
    lower = np.where(neg, -hi, lo)
    upper = np.where(neg, -lo, hi)
    zero = keys == 0
    return np.where(zero, 0.0, lower), np.where(zero, 0.0, upper)


@dataclass
class RelativeSketch:
    """Bins of the values seen so far (see the module docstring), as sorted key and
    statistics arrays merged with vectorised operations per chunk."""

    keys: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    stats: np.ndarray = field(default_factory=lambda: np.empty((0, 4)))

    def update(self, x: np.ndarray, w: np.ndarray | None = None) -> None:
        if x.size == 0:
            return
        w = np.ones_like(x) if w is None else w
        all_keys = _keys(x)
        lo, hi = int(all_keys.min()), int(all_keys.max())
        if hi - lo < _DENSE_LIMIT:
            # Counting over the chunk's key range: O(n), no sort of the values.
            index, m = all_keys - lo, hi - lo + 1
            counts = np.bincount(index, minlength=m)
            used = np.flatnonzero(counts)
            keys = used + lo
        else:  # values spanning hundreds of binary orders of magnitude: sort instead
            keys, index = np.unique(all_keys, return_inverse=True)
            m = keys.size
            used = np.arange(m)
        with np.errstate(over="ignore"):  # |x| beyond 1e154: x² is inf, as the SSE is
            squares = w * x * x
        stats = np.column_stack(
            [
                np.bincount(index, minlength=m)[used].astype(np.float64),
                np.bincount(index, weights=w, minlength=m)[used],
                np.bincount(index, weights=squares, minlength=m)[used],
                np.bincount(index, weights=w * np.abs(x), minlength=m)[used],
            ]
        )
        self._merge(keys, stats)

    def merge(self, other: RelativeSketch) -> None:
        self._merge(other.keys, other.stats)

    def _merge(self, keys: np.ndarray, stats: np.ndarray) -> None:
        union = np.union1d(self.keys, keys)
        out = np.zeros((union.size, 4))
        out[np.searchsorted(union, self.keys)] += self.stats
        out[np.searchsorted(union, keys)] += stats
        self.keys, self.stats = union, out

    def table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(lower edges, upper edges, per-bin stats [count, w, w x², w |x|]) sorted by value,
        and the cumulative counts."""
        lo, hi = _edges(self.keys)
        order = np.argsort(lo, kind="stable")
        stats = self.stats[order]
        return lo[order], hi[order], stats, np.cumsum(stats[:, 0])

    def quantile(self, q: float) -> float:
        """The q-quantile (by count) to within one bin; returns the bin's midpoint."""
        lo, hi, _, cum = self.table()
        target = q * cum[-1]
        i = int(np.searchsorted(cum, target, side="left"))
        i = min(i, lo.size - 1)
        return float(0.5 * (lo[i] + hi[i]))

    def count_within(self, a: float, b: float) -> tuple[float, float]:
        """(at least, at most) how many values lie in [a, b] (bins straddling an end
        count in the upper bound only)."""
        lo, hi, stats, _ = self.table()
        inside = (lo >= a) & (hi <= b)
        touching = (hi >= a) & (lo <= b)
        return float(stats[inside, 0].sum()), float(stats[touching, 0].sum())
