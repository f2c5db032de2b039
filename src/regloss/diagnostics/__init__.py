"""Residual diagnostics: is MSE the right loss for these predictions, and if not, what is?

:func:`diagnose` (arrays) and :func:`diagnose_source` (files, streamed in chunks with flat
memory) return a JSON-ready dict, per output: error sizes (MSE, RMSE, MAE, Huber with
delta from the data, median absolute error, max error, R²), the noise model (Gaussian and
Laplace MLEs, log-likelihoods, AIC), normality (skewness, excess kurtosis, Jarque-Bera,
robust scale 1.4826·MAD), outlier influence (SSE share of the worst 1% and 0.1%, count
beyond 3 robust scales, top contributors with their row numbers) and a recommended loss
with its constant and one reason per piece of evidence.

Sums are exact (fsum across chunks), so streamed and in-memory results agree to ~1e-15;
order statistics (median, MAD, shares, counts beyond) come from a sketch with 0.1%
relative error, stated in the output's ``approximation`` block. Weights (optional) weigh
the error sizes, the SSE shares and the Huber value; normality and order statistics are
of the unweighted residuals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._accumulate import OutputAccumulator
from ._analyze import analyze_output
from ._io import Chunk, InputError, Source, _arrays_source, open_source

__all__ = [
    "SCHEMA_VERSION",
    "InputError",
    "diagnose",
    "diagnose_source",
    "open_source",
    "run_source",
]

SCHEMA_VERSION = 1


def diagnose_source(
    source: Source,
    *,
    nan_policy: str = "raise",
    top_k: int = 10,
    progress: Callable[[int, int | None], None] | None = None,
) -> dict[str, Any]:
    """Diagnose every output of ``source`` in one streamed pass."""
    return run_source(source, nan_policy=nan_policy, top_k=top_k, progress=progress)[0]


def _clean(chunk: Chunk) -> bool:
    """No missing cells, no weights to check and every value finite: the common chunk,
    screened in two passes without per-row masks."""
    return (
        chunk.missing is None
        and chunk.weight is None
        and bool(np.isfinite(chunk.pred).all())
        and bool(np.isfinite(chunk.target).all())
    )


def run_source(
    source: Source,
    *,
    nan_policy: str = "raise",
    top_k: int = 10,
    progress: Callable[[int, int | None], None] | None = None,
) -> tuple[dict[str, Any], list[OutputAccumulator]]:
    """The diagnosis and the accumulators behind it (the figures are drawn from those)."""
    check_pass_args(nan_policy, top_k)
    state = Pass.new(len(source.pred_cols), top_k)
    for chunk in source.chunks(prefetch=2):  # the next chunks decode meanwhile
        state.add(chunk, source, nan_policy)
        if progress is not None:
            progress(state.rows, chunk.bytes_read)
    return finish(state, source, nan_policy)


def check_pass_args(nan_policy: str, top_k: int) -> None:
    if nan_policy not in ("raise", "omit"):
        raise InputError(f"nan_policy must be 'raise' or 'omit', got {nan_policy!r}")
    _int_arg("top_k", top_k, 0)


@dataclass
class Pass:
    """One streamed pass over a source, or over one part of it (:mod:`regloss.dask`):
    the accumulators per output and the row counts. Passes over consecutive parts merge
    into the pass over their concatenation."""

    accs: list[OutputAccumulator]
    rows: int = 0
    nonfinite: int = 0
    missing: int = 0
    first_bad: int | None = None
    rounded: str | None = None

    @classmethod
    def new(
        cls,
        outputs: int,
        top_k: int,
        origins: list[tuple[float, float, float] | None] | None = None,
        seed: Any = 0,
    ) -> Pass:
        """A pass of ``outputs`` accumulators; ``origins``: their moments' origin, shared by
        passes that will merge; ``seed``: the plot sample's (one per part)."""
        accs = [
            OutputAccumulator(top_k=top_k, rng=np.random.default_rng(seed)) for _ in range(outputs)
        ]
        for acc, origin in zip(accs, origins or [], strict=False):
            acc.preset(origin)
        return cls(accs)

    def add(self, chunk: Chunk, source: Source, nan_policy: str) -> None:
        """Screen a chunk (missing, NaN or inf rows; negative weights) and accumulate it."""
        self.rows += chunk.pred.shape[0]
        if not _clean(chunk):
            gap = np.zeros(chunk.pred.shape[0], bool) if chunk.missing is None else chunk.missing
            finite = np.isfinite(chunk.pred).all(axis=1) & np.isfinite(chunk.target).all(axis=1)
            if chunk.weight is not None:
                finite &= np.isfinite(chunk.weight)
                if (chunk.weight[finite] < 0).any():
                    i = int(np.argmax((chunk.weight < 0) & finite))
                    raise InputError(
                        f"{source.description}: negative weight {chunk.weight[i]:g} at "
                        f"data row {int(chunk.rows[i])}; weights must be >= 0"
                    )
            ok = finite & ~gap
            if not ok.all():
                self.missing += int(gap.sum())
                self.nonfinite += int((~finite & ~gap).sum())
                if self.first_bad is None:
                    self.first_bad = int(chunk.rows[np.argmax(~ok)])
                chunk = _keep(chunk, ok)
        if source.from_text and self.rounded is None:
            self.rounded = _rounded_integer(chunk, source)
        if nan_policy == "omit" or not (self.missing or self.nonfinite):
            for j, acc in enumerate(self.accs):
                resid = None if chunk.resid is None else chunk.resid[:, j]
                acc.update(chunk.pred[:, j], chunk.target[:, j], chunk.weight, chunk.rows, resid)

    def merge(self, other: Pass) -> Pass:
        """This pass followed by ``other`` (a pass over later rows)."""
        for mine, theirs in zip(self.accs, other.accs, strict=True):
            mine.merge(theirs)
        self.rows += other.rows
        self.nonfinite += other.nonfinite
        self.missing += other.missing
        bad = [b for b in (self.first_bad, other.first_bad) if b is not None]
        self.first_bad = min(bad) if bad else None
        self.rounded = self.rounded or other.rounded
        return self


def finish(
    state: Pass, source: Source, nan_policy: str
) -> tuple[dict[str, Any], list[OutputAccumulator]]:
    """The report of a whole pass (raises the pass's input errors)."""
    accs, rows = state.accs, state.rows
    missing, nonfinite, first_bad = state.missing, state.nonfinite, state.first_bad
    bad = missing + nonfinite
    if bad and nan_policy == "raise":
        what = " and ".join(
            part
            for part in (
                f"{missing} with missing values (empty cells or nulls)" if missing else "",
                f"{nonfinite} with NaN or inf values" if nonfinite else "",
            )
            if part
        )
        raise InputError(
            f"{source.description}: {bad} row(s) to skip: {what}, the first at data row "
            f"{first_bad}; clean them or pass --nan-policy omit to skip them"
        )
    if rows == 0:
        raise InputError(f"{source.description}: no data rows")
    if accs[0].n == 0:
        raise InputError(f"{source.description}: all {rows} rows have missing, NaN or inf values")
    if not accs[0].total("w") > 0:
        raise InputError(
            f"{source.description}: the weights in column {source.weight_col!r} sum to 0; "
            "at least one row needs a positive weight"
        )
    outputs = [
        analyze_output(acc, f"{p} vs {t}")
        for acc, p, t in zip(accs, source.pred_cols, source.target_cols)
    ]
    report = {
        "schema_version": SCHEMA_VERSION,
        "input": source.description,
        "rows_read": rows,
        "rows_omitted": bad,
        "rows_missing": missing,
        "rows_nonfinite": nonfinite,
        "weight": source.weight_col,
        "warnings": [state.rounded] if state.rounded else [],
        "outputs": outputs,
    }
    return report, accs


def _rounded_integer(chunk: Chunk, source: Source) -> str | None:
    """A warning if a text column holds integers beyond 2^53, which float64 parsing rounds
    (Parquet and .npy integer columns keep them exact)."""
    for values, names in ((chunk.pred, source.pred_cols), (chunk.target, source.target_cols)):
        with np.errstate(invalid="ignore"):
            big = (np.abs(values) >= 2.0**53) & np.isfinite(values) & (values == np.round(values))
        if big.any():
            i, j = (int(k[0]) for k in np.nonzero(big))
            return (
                f"column {names[j]!r} holds integers beyond 2^53 (data row {int(chunk.rows[i])}: "
                f"{values[i, j]:.17g}), which CSV parsing rounds to float64, so residuals "
                "between them may be off by units; store them as int64 in Parquet or .npy "
                "for exact residuals"
            )
    return None


def _keep(chunk: Chunk, mask: np.ndarray) -> Chunk:
    return Chunk(
        chunk.pred[mask],
        chunk.target[mask],
        None if chunk.weight is None else chunk.weight[mask],
        chunk.rows[mask],
        None if chunk.resid is None else chunk.resid[mask],
        None,
        chunk.bytes_read,
    )


def diagnose(
    prediction: Any,
    target: Any,
    weight: Any = None,
    *,
    nan_policy: str = "raise",
    top_k: int = 10,
    chunk_rows: int = 1 << 16,
) -> dict[str, Any]:
    """Diagnose in-memory predictions and targets (1-D, or 2-D with one column per output).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=5000)
    >>> d = diagnose(y + rng.normal(scale=0.5, size=5000), y)
    >>> d["outputs"][0]["recommendation"]["loss"]
    'mse'
    """
    p, t = _array_arg("prediction", prediction), _array_arg("target", target)
    if p.shape != t.shape or p.ndim not in (1, 2):
        raise InputError(
            f"prediction has shape {p.shape} but target has shape {t.shape}; "
            "pass equal 1-D or 2-D arrays (one column per output)"
        )
    w = None
    if weight is not None:
        w = _array_arg("weight", weight)
        if w.shape != p.shape[:1]:
            raise InputError(
                f"weight has shape {w.shape}; it needs one weight per row, shape {p.shape[:1]}"
            )
    _int_arg("top_k", top_k, 0)
    _int_arg("chunk_rows", chunk_rows, 1)
    p2, t2 = (p[:, None], t[:, None]) if p.ndim == 1 else (p, t)
    k = p2.shape[1]
    names = ([f"prediction[{i}]" for i in range(k)], [f"target[{i}]" for i in range(k)], None)
    source = _arrays_source("arrays", p2, t2, w, names, chunk_rows)
    return diagnose_source(source, nan_policy=nan_policy, top_k=top_k)


def _array_arg(name: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{name} must be an array of numbers; {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise InputError(
            f"{name} must be an array of numbers, got dtype {arr.dtype}; convert it with "
            "np.asarray(..., dtype=float)"
        )
    if arr.ndim == 0 or arr.size == 0:
        raise InputError(f"{name} has shape {arr.shape}; pass at least one row")
    return arr


def _int_arg(name: str, value: Any, low: int) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
        raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
