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


_TINY = float(np.finfo(np.float64).tiny)
#: the key magnitude of a normal float64 |x| is its exponent and top BITS mantissa bits,
#: (bits >> (52 - BITS)), renumbered to the frexp-based keys of ``_keys``
_KEY_OFFSET = (1 << 24) - 1022 * (1 << BITS)


def _magnitudes(a: np.ndarray) -> np.ndarray:
    """The bin of each value of ``a`` (|x| > 0, float64) as the key magnitude (``_keys``
    without the sign): read off the float's bits in two passes; subnormals (bins of
    relative width need frexp there) are rare and computed as ``_keys`` does."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    k: np.ndarray = a.view(np.int64) >> (52 - BITS)
    k += _KEY_OFFSET
    small = a < _TINY
    if small.any():
        m, e = np.frexp(a[small])
        k[small] = (
            e.astype(np.int64) * (1 << BITS)
            + np.floor((2.0 * m - 1.0) * (1 << BITS)).astype(np.int64)
            + (1 << 24)
        )
    return k


def _bin_sums(x: np.ndarray, w: np.ndarray | None, index: np.ndarray, m: int) -> np.ndarray:
    """(m, 4) per-bin [count, Σw, Σw·x², Σw·|x|] of values ``x`` in bins ``index``
    (w None: every weight 1, one bincount fewer)."""
    out = np.empty((m, 4))
    out[:, 0] = np.bincount(index, minlength=m)
    with np.errstate(over="ignore"):  # |x| beyond 1e154: x² is inf, as the SSE is
        if w is None:
            out[:, 1] = out[:, 0]
            out[:, 2] = np.bincount(index, weights=x * x, minlength=m)
            out[:, 3] = np.bincount(index, weights=np.abs(x), minlength=m)
        else:
            out[:, 1] = np.bincount(index, weights=w, minlength=m)
            out[:, 2] = np.bincount(index, weights=w * x * x, minlength=m)
            out[:, 3] = np.bincount(index, weights=w * np.abs(x), minlength=m)
    return out


@dataclass
class _Dense:
    """Bins of one sign counted densely over the key magnitudes ``[start, start + len)``:
    a chunk adds its bin sums to a slice (no sort, no merge of key lists)."""

    start: int = 0
    bins: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))

    def cover(self, lo: int, hi: int) -> bool:
        """Grow to cover [lo, hi]; False when that would exceed the dense limit."""
        if self.bins.shape[0] == 0:
            self.start, self.bins = lo, np.zeros((hi - lo + 1, 4))
            return hi - lo < _DENSE_LIMIT
        new_lo, new_hi = min(lo, self.start), max(hi, self.start + self.bins.shape[0] - 1)
        if new_hi - new_lo >= _DENSE_LIMIT:
            return False
        if new_lo < self.start or new_hi >= self.start + self.bins.shape[0]:
            grown = np.zeros((new_hi - new_lo + 1, 4))
            at = self.start - new_lo
            grown[at : at + self.bins.shape[0]] = self.bins
            self.start, self.bins = new_lo, grown
        return True

    def add(self, lo: int, sums: np.ndarray) -> None:
        at = lo - self.start
        self.bins[at : at + sums.shape[0]] += sums

    def sparse(self) -> tuple[np.ndarray, np.ndarray]:
        """(key magnitudes, stats) of the occupied bins, ascending."""
        used = np.flatnonzero(self.bins[:, 0])
        return used + self.start, self.bins[used]

    # Pickled (to another process: regloss.dask) as the occupied bins only: a dense range
    # of 17 binades is 17,408 bins (557 KiB), of which a partition may fill a few hundred.
    def __getstate__(self) -> tuple[int, int, np.ndarray, np.ndarray]:
        used = np.flatnonzero(self.bins[:, 0])
        return self.start, self.bins.shape[0], used, self.bins[used]

    def __setstate__(self, state: tuple[int, int, np.ndarray, np.ndarray]) -> None:
        self.start, size, used, stats = state
        self.bins = np.zeros((size, 4))
        self.bins[used] = stats


@dataclass
class RelativeSketch:
    """Bins of the values seen so far (see the module docstring).

    Positive and negative values are counted densely per sign over the key range seen
    (``_Dense``; O(n) per chunk, a few thousand bins for real residuals); values spanning
    more than ``_DENSE_LIMIT`` bins (hundreds of binary orders of magnitude) switch the
    sketch to sorted key and statistics arrays merged per chunk. ``keys`` and ``stats`` are
    the occupied bins in key order either way.
    """

    _pos: _Dense = field(default_factory=_Dense)
    _neg: _Dense = field(default_factory=_Dense)
    _zero: np.ndarray = field(default_factory=lambda: np.zeros(4))
    #: (keys, stats) once the dense ranges are exceeded; None while dense
    _sorted: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def keys(self) -> np.ndarray:
        return self._arrays()[0]

    @property
    def stats(self) -> np.ndarray:
        return self._arrays()[1]

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted is not None:
            return self._sorted
        pk, ps = self._pos.sparse()
        nk, ns = self._neg.sparse()
        keys = [-nk[::-1]]
        stats = [ns[::-1]]
        if self._zero[0] > 0:
            keys.append(np.zeros(1, dtype=np.int64))
            stats.append(self._zero[None, :])
        keys.append(pk)
        stats.append(ps)
        return np.concatenate(keys).astype(np.int64), np.concatenate(stats).reshape(-1, 4)

    def update(
        self, x: np.ndarray, w: np.ndarray | None = None, *, magnitudes: np.ndarray | None = None
    ) -> None:
        """Add values ``x`` (weights ``w``, default 1). ``magnitudes``: ``_magnitudes(|x|)``
        when the caller has it already (|r| and r share it)."""
        if x.size == 0:
            return
        if self._sorted is None and self._update_dense(x, w, magnitudes):
            return
        self._to_sorted()
        all_keys = _keys(x)
        keys, index = np.unique(all_keys, return_inverse=True)
        self._merge(keys, _bin_sums(x, w, index, keys.size))

    def _update_dense(self, x: np.ndarray, w: np.ndarray | None, k: np.ndarray | None) -> bool:
        positive = x > 0
        parts: list[tuple[_Dense, np.ndarray, np.ndarray | None, np.ndarray | None]]
        if positive.all():
            parts = [(self._pos, x, w, k)]
        else:
            negative = x < 0
            rest = ~(positive | negative)  # zeros (and NaN, which the readers remove)
            if rest.any():
                n = int(rest.sum())
                ws = None if w is None else w[rest]
                self._zero += _bin_sums(x[rest], ws, np.zeros(n, np.int64), 1)[0]
            parts = [
                (dense, x[sel], None if w is None else w[sel], None if k is None else k[sel])
                for dense, sel in ((self._pos, positive), (self._neg, negative))
            ]
        staged = []
        for dense, xs, ws, ks in parts:
            if xs.size == 0:
                continue
            ks = _magnitudes(np.abs(xs)) if ks is None else ks
            lo, hi = int(ks.min()), int(ks.max())
            if not dense.cover(lo, hi):
                return False
            staged.append((dense, lo, _bin_sums(xs, ws, ks - lo, hi - lo + 1)))
        for dense, lo, sums in staged:
            dense.add(lo, sums)
        return True

    def _to_sorted(self) -> None:
        if self._sorted is None:
            self._sorted = self._arrays()

    def merge(self, other: RelativeSketch) -> None:
        if self._sorted is None and other._sorted is None:
            ok = all(
                mine.cover(theirs.start, theirs.start + theirs.bins.shape[0] - 1)
                for mine, theirs in ((self._pos, other._pos), (self._neg, other._neg))
                if theirs.bins.shape[0]
            )
            if ok:
                for mine, theirs in ((self._pos, other._pos), (self._neg, other._neg)):
                    if theirs.bins.shape[0]:
                        mine.add(theirs.start, theirs.bins)
                self._zero = self._zero + other._zero
                return
        self._to_sorted()
        self._merge(other.keys, other.stats)

    def _merge(self, keys: np.ndarray, stats: np.ndarray) -> None:
        assert self._sorted is not None
        own_keys, own_stats = self._sorted
        union = np.union1d(own_keys, keys)
        out = np.zeros((union.size, 4))
        out[np.searchsorted(union, own_keys)] += own_stats
        out[np.searchsorted(union, keys)] += stats
        self._sorted = (union, out)

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


def count_within(
    table: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], a: float, b: float
) -> tuple[float, float]:
    """(at least, at most) how many values of a sketch's ``table`` (:meth:`RelativeSketch.
    table`) lie in [a, b]; bins straddling an end count in the upper bound only. Takes the
    table, not the sketch: building it costs milliseconds, this microseconds."""
    lo, hi, stats, _ = table
    inside = (lo >= a) & (hi <= b)
    touching = (hi >= a) & (lo <= b)
    return float(stats[inside, 0].sum()), float(stats[touching, 0].sum())
