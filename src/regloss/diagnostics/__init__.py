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

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ._accumulate import OutputAccumulator
from ._analyze import analyze_output
from ._io import Chunk, InputError, Source, open_source

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
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Diagnose every output of ``source`` in one streamed pass."""
    return run_source(source, nan_policy=nan_policy, top_k=top_k, progress=progress)[0]


def run_source(
    source: Source,
    *,
    nan_policy: str = "raise",
    top_k: int = 10,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], list[OutputAccumulator]]:
    """The diagnosis and the accumulators behind it (the figures are drawn from those)."""
    if nan_policy not in ("raise", "omit"):
        raise InputError(f"--nan-policy must be 'raise' or 'omit', got {nan_policy!r}")
    accs = [OutputAccumulator(top_k=top_k) for _ in source.pred_cols]
    rows = bad = 0
    first_bad: int | None = None
    for chunk in source.chunks():
        rows += chunk.pred.shape[0]
        finite = np.isfinite(chunk.pred).all(axis=1) & np.isfinite(chunk.target).all(axis=1)
        if chunk.weight is not None:
            finite &= np.isfinite(chunk.weight)
            if (chunk.weight[finite] < 0).any():
                i = int(np.argmax((chunk.weight < 0) & finite))
                raise InputError(
                    f"{source.description}: negative weight {chunk.weight[i]:g} at "
                    f"data row {int(chunk.rows[i])}; weights must be >= 0"
                )
        n_bad = int((~finite).sum())
        if n_bad:
            bad += n_bad
            if first_bad is None:
                first_bad = int(chunk.rows[np.argmax(~finite)])
            chunk = _keep(chunk, finite)
        if nan_policy == "omit" or not bad:
            for j, acc in enumerate(accs):
                acc.update(chunk.pred[:, j], chunk.target[:, j], chunk.weight, chunk.rows)
        if progress is not None:
            progress(rows)
    if bad and nan_policy == "raise":
        raise InputError(
            f"{source.description}: {bad} row(s) with NaN or inf values, the first at data row "
            f"{first_bad}; clean them or pass --nan-policy omit to skip them"
        )
    if rows == 0:
        raise InputError(f"{source.description}: no data rows")
    if accs[0].n == 0:
        raise InputError(f"{source.description}: all {rows} rows have NaN or inf values")
    outputs = [
        analyze_output(acc, f"{p} vs {t}")
        for acc, p, t in zip(accs, source.pred_cols, source.target_cols)
    ]
    report = {
        "schema_version": SCHEMA_VERSION,
        "input": source.description,
        "rows_read": rows,
        "rows_omitted": bad,
        "weight": source.weight_col,
        "outputs": outputs,
    }
    return report, accs


def _keep(chunk: Chunk, mask: np.ndarray) -> Chunk:
    return Chunk(
        chunk.pred[mask],
        chunk.target[mask],
        None if chunk.weight is None else chunk.weight[mask],
        chunk.rows[mask],
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
    p = np.asarray(prediction, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    p2, t2 = (p[:, None], t[:, None]) if p.ndim == 1 else (p, t)
    if p.shape != t.shape or p.ndim not in (1, 2):
        raise InputError(
            f"prediction has shape {p.shape} but target has shape {t.shape}; "
            "pass equal 1-D or 2-D arrays"
        )
    w = None if weight is None else np.asarray(weight, dtype=np.float64)
    k = p2.shape[1]
    names = ([f"prediction[{i}]" for i in range(k)], [f"target[{i}]" for i in range(k)], None)

    def chunks() -> Iterator[Chunk]:
        for start in range(0, p2.shape[0], chunk_rows):
            stop = min(start + chunk_rows, p2.shape[0])
            yield Chunk(
                p2[start:stop],
                t2[start:stop],
                None if w is None else w[start:stop],
                np.arange(start, stop),
            )

    source = Source("arrays", names[0], names[1], None, p2.shape[0], chunks)
    return diagnose_source(source, nan_policy=nan_policy, top_k=top_k)
