"""One compiled pass per chunk for :class:`~._accumulate.OutputAccumulator` (issue 9).

The NumPy accumulation makes about 60 passes over each chunk (ten sums, three sketches
split by sign, the top-k contributions): 130 ns a row here, five times pyarrow's own read.
This C code does the same work in two passes — the key ranges the dense sketches must cover,
then every sum and bin in one loop, which finds a block's bins first and prefetches them a
few rows ahead (the bins span megabytes: 41-44 ns a row without, 22-31 with) — built and
cached like the loss kernels
(``regloss._kernels.c.library``: in the background on first use, the NumPy path meanwhile;
none without a compiler or with ``REGLOSS_KERNELS=0``).

It computes what the NumPy path computes, element by element: the same float64 operations
for each term, the bins keyed by the same bits (``_sketch._magnitudes``). Sums are added in
a different order (blocks of 256, then the blocks), so they agree to rounding, not bit for
bit; counts, the largest error's row and the top-k agree exactly
(``tests/test_diagnose_fused.py``). A sketch that has left its dense form, or a chunk whose
keys would push it out, takes the NumPy path.
"""

from __future__ import annotations

import ctypes
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ._sketch import _DENSE_LIMIT, _KEY_OFFSET, BITS

if TYPE_CHECKING:
    from ._accumulate import OutputAccumulator

__all__ = ["SOURCE", "library", "update"]

SOURCE = r"""
/* regloss diagnose: one pass per chunk over residuals (see regloss/diagnostics/_fused.py) */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define BITS @BITS@
#define KEY_OFFSET ((int64_t)@KEY_OFFSET@)
#define TINY 2.2250738585072014e-308
#define BLOCK 256
#define PREFETCH 12

static inline int64_t key_of(double a) {  /* a = |x| > 0: _sketch._magnitudes */
  if (a >= TINY || a != a) {
    int64_t bits;
    memcpy(&bits, &a, sizeof bits);
    return (bits >> (52 - BITS)) + KEY_OFFSET;
  }
  int e;
  double m = frexp(a, &e);
  return (int64_t)e * (1 << BITS) + (int64_t)floor((2.0 * m - 1.0) * (1 << BITS))
         + ((int64_t)1 << 24);
}

/* ranges[0..7]: key (lo, hi) of r > 0, r < 0, c > 0, c < 0 with c = r - shift (lo > hi:
   none); extremes: r's min and max. Keys grow with |x|, so each range is the keys of the
   smallest and largest magnitude of its sign: ten minima and maxima, vectorised. */
void rl_diag_range(const double* r, int64_t n, double shift, int64_t* ranges,
                   double* extremes) {
  double mn = INFINITY, mx = -INFINITY;
  double plo = INFINITY, phi = 0, nlo = INFINITY, nhi = 0;   /* magnitudes */
  double cplo = INFINITY, cphi = 0, cnlo = INFINITY, cnhi = 0;
  #pragma omp simd reduction(min: mn, plo, nlo, cplo, cnlo) reduction(max: mx, phi, nhi, cphi, cnhi)
  for (int64_t i = 0; i < n; i++) {
    const double x = r[i];
    const double c = x - shift;
    mn = x < mn ? x : mn;
    mx = x > mx ? x : mx;
    const double px = x > 0 ? x : INFINITY, nx = x < 0 ? -x : INFINITY;
    plo = px < plo ? px : plo;
    nlo = nx < nlo ? nx : nlo;
    const double p0 = x > 0 ? x : 0, n0 = x < 0 ? -x : 0;
    phi = p0 > phi ? p0 : phi;
    nhi = n0 > nhi ? n0 : nhi;
    const double pc = c > 0 ? c : INFINITY, nc = c < 0 ? -c : INFINITY;
    cplo = pc < cplo ? pc : cplo;
    cnlo = nc < cnlo ? nc : cnlo;
    const double pc0 = c > 0 ? c : 0, nc0 = c < 0 ? -c : 0;
    cphi = pc0 > cphi ? pc0 : cphi;
    cnhi = nc0 > cnhi ? nc0 : cnhi;
  }
  const double lo[4] = {plo, nlo, cplo, cnlo}, hi[4] = {phi, nhi, cphi, cnhi};
  for (int j = 0; j < 4; j++) {
    if (hi[j] > 0) { ranges[2 * j] = key_of(lo[j]); ranges[2 * j + 1] = key_of(hi[j]); }
    else { ranges[2 * j] = INT64_MAX; ranges[2 * j + 1] = INT64_MIN; }
  }
  extremes[0] = mn;
  extremes[1] = mx;
}

static inline void bin4(double* b, double w, double x) {  /* x >= 0 */
  b[0] += 1.0;
  b[1] += w;
  b[2] += w * x * x;
  b[3] += w * x;
}

/* sums[10]: w, w r, w r^2, |w r|, d, d^2, d^3, d^4, w dy, w dy^2 (d = r/unit - shift/unit,
   dy = t - shift_y; inv_unit = 1/unit exactly, a power of two); wr2[i] = w r r; bins: the
   dense arrays (rows of 4) of the signed sketch (pos, neg), the |r| sketch (pos) and the
   centred sketch (pos, neg), each with the key its row 0 stands for; zeros: the three zero
   bins (NaN goes there too, as in NumPy's path). Returns argmax |r| (the first). */
int64_t rl_diag_acc(const double* r, const double* t, const double* w, int64_t n,
                    double shift, double shift_y, double inv_unit, double* sums,
                    double* wr2, double* pos, int64_t pos0, double* neg, int64_t neg0,
                    double* apos, int64_t apos0, double* cpos, int64_t cpos0,
                    double* cneg, int64_t cneg0, double* zero, double* azero,
                    double* czero) {
  double total[10] = {0};
  double best = -1.0;
  int64_t at = 0;
  const double su = shift * inv_unit;
  /* sign-indexed bin arrays: a select by index, not a branch (signs are unpredictable) */
  double* const rbins[2] = {pos, neg};
  const int64_t rorg[2] = {pos0, neg0};
  double* const cbins[2] = {cpos, cneg};
  const int64_t corg[2] = {cpos0, cneg0};
  /* The bins span a few MB (2^BITS keys an octave, 32 bytes a bin, five arrays), so a
     row's three bins are mostly cache misses: each block first finds its rows' bins, then
     adds to them with the bins of the row PREFETCH ahead already requested. */
  double* rb[BLOCK];
  double* ab[BLOCK];
  double* cb[BLOCK];
  for (int64_t start = 0; start < n; start += BLOCK) {
    const int64_t stop = start + BLOCK < n ? start + BLOCK : n;
    const int64_t m = stop - start;
    double s[10] = {0};
    for (int64_t j = 0; j < m; j++) {
      const double x = r[start + j];
      const double a = fabs(x);
      if (x > 0 || x < 0) {
        const int64_t k = key_of(a);
        const int sg = x < 0;
        rb[j] = rbins[sg] + 4 * (k - rorg[sg]);
        ab[j] = apos + 4 * (k - apos0);
      } else {
        rb[j] = zero;
        ab[j] = azero;
      }
      const double c = x - shift;
      if (c > 0 || c < 0) {
        const int sg = c < 0;
        cb[j] = cbins[sg] + 4 * (key_of(fabs(c)) - corg[sg]);
      } else {
        cb[j] = czero;
      }
    }
    for (int64_t j = 0; j < m; j++) {
      if (j + PREFETCH < m) {
        __builtin_prefetch(rb[j + PREFETCH], 1);
        __builtin_prefetch(ab[j + PREFETCH], 1);
        __builtin_prefetch(cb[j + PREFETCH], 1);
      }
      const int64_t i = start + j;
      const double x = r[i];
      const double wi = w ? w[i] : 1.0;
      const double wr = wi * x;
      const double q = wr * x;
      wr2[i] = q;
      const double d = x * inv_unit - su;
      const double d2 = d * d;
      const double dy = t[i] - shift_y;
      const double wdy = wi * dy;
      s[0] += wi; s[1] += wr; s[2] += q; s[3] += fabs(wr);
      s[4] += d; s[5] += d2; s[6] += d2 * d; s[7] += d2 * d2;
      s[8] += wdy; s[9] += wdy * dy;
      const double a = fabs(x);
      if (a > best) { best = a; at = i; }
      bin4(rb[j], 1.0, a);
      bin4(ab[j], wi, a);
      const double c = x - shift;
      const double ac = fabs(c);
      bin4(cb[j], 1.0, c == c ? ac : c);  /* NaN goes to the zero bin as NaN */
    }
    for (int j = 0; j < 10; j++) total[j] += s[j];
  }
  memcpy(sums, total, sizeof total);
  return at;
}
""".replace("@BITS@", str(BITS)).replace("@KEY_OFFSET@", str(_KEY_OFFSET))

_P, _I64, _D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "rl_diag_range": (None, [_P, _I64, _D, _P, _P]),
    "rl_diag_acc": (_I64, [_P, _P, _P, _I64, _D, _D, _D, _P, _P] + [_P, _I64] * 5 + [_P] * 3),
}


def library() -> Any | None:
    """The compiled pass (built on first request), or None (no compiler, or kernels off)."""
    from .._kernels import c

    return c.library("diagnose", SOURCE, SIGNATURES)


def _address(a: np.ndarray) -> int:
    return int(a.ctypes.data)


def update(
    acc: OutputAccumulator, r: np.ndarray, target: np.ndarray, weight: np.ndarray | None
) -> tuple[np.ndarray, int] | None:
    """Add a chunk's residuals ``r`` to ``acc``'s extremes, sums and sketches in one
    compiled pass; returns the w·r² contributions (for the top-k) and the index of the
    largest |r|, or None where the NumPy path must run (no library yet, a sketch no longer
    dense, a key range beyond the dense limit)."""
    lib = library()
    sketches = (acc.sketch, acc.abs_sketch, acc.centred)
    if lib is None or any(s._sorted is not None for s in sketches):
        return None
    assert acc.shift_r is not None and acc.shift_y is not None
    inv_unit = 1.0 / acc.unit
    if math.frexp(acc.unit)[0] != 0.5 or not math.isfinite(inv_unit):
        return None  # r/unit as r·(1/unit) needs 1/unit exact (a power of two in range)
    r = np.ascontiguousarray(r, dtype=np.float64)
    t = np.ascontiguousarray(target, dtype=np.float64)
    w = None if weight is None else np.ascontiguousarray(weight, dtype=np.float64)
    n = r.size
    ranges = np.empty(8, dtype=np.int64)
    extremes = np.empty(2)
    lib.rl_diag_range(_address(r), n, acc.shift_r, _address(ranges), _address(extremes))
    (plo, phi), (nlo, nhi), (cplo, cphi), (cnlo, cnhi) = ranges.reshape(4, 2).tolist()
    alo, ahi = min(plo, nlo), max(phi, nhi)
    dense = (
        (acc.sketch._pos, plo, phi),
        (acc.sketch._neg, nlo, nhi),
        (acc.abs_sketch._pos, alo, ahi),
        (acc.centred._pos, cplo, cphi),
        (acc.centred._neg, cnlo, cnhi),
    )
    for d, lo, hi in dense:
        if lo <= hi and (hi - lo >= _DENSE_LIMIT or not d.cover(lo, hi)):
            return None
    sums = np.empty(10)
    wr2 = np.empty(n)
    bins: list[Any] = []
    keep_alive = []
    for d, _, _ in dense:
        if d.bins.shape[0] == 0:  # nothing of this sign, now or before: never indexed
            d_bins = np.zeros((1, 4))
            keep_alive.append(d_bins)
            bins += [_address(d_bins), 0]
        else:
            bins += [_address(d.bins), d.start]
    zeros = [s._zero for s in sketches]
    at = lib.rl_diag_acc(
        _address(r),
        _address(t),
        None if w is None else _address(w),
        n,
        acc.shift_r,
        acc.shift_y,
        inv_unit,
        _address(sums),
        _address(wr2),
        *bins,
        *(_address(z) for z in zeros),
    )
    acc.r_min = min(acc.r_min, float(extremes[0]))
    acc.r_max = max(acc.r_max, float(extremes[1]))
    for key, value in zip(acc.parts, sums.tolist(), strict=True):
        acc.parts[key].append(value)
    return wr2, int(at)
