"""Diagnose and evaluate data larger than one machine on a Dask cluster.

:func:`diagnose` and :func:`evaluate` split the input into parts (one per file of a path or
glob, one per partition of a dask DataFrame). Each part is read and accumulated by a task
where it lives, with regloss's own readers (the same chunks, screening and messages as
``regloss diagnose``); the partial states are merged pairwise in a tree
(``split_every`` at a time), and only the merged state travels to the caller. The report is
the single-process one: exact sums (added exactly across parts), the same sketch bins and
top contributors, row numbers counted over the parts in order.

Nothing but the scheduler changes between a laptop and a cluster: ``client=None`` uses the
active Dask scheduler (threads, or a ``distributed.Client`` you made), a ``Client`` of a
``LocalCluster`` or of ``Client("tcp://scheduler:8786")`` runs the tasks there (the files
must then be readable from the workers: shared storage or object stores).

Install with ``pip install 'regloss[dask]'``.
"""

from __future__ import annotations

import copy
import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._optional import require
from .diagnostics import InputError, Pass, check_pass_args, finish
from .diagnostics._accumulate import OutputAccumulator
from .diagnostics._io import Source, _arrays_source, open_source
from .metrics import Metric

__all__ = ["diagnose", "evaluate", "run"]

#: bits of a row number that count rows inside one part (the part's index is above them)
_ROW_BITS = 40


@dataclass(frozen=True)
class _Part:
    """How a task opens one part of the input: a file, or a pandas partition."""

    index: int
    path: str | None
    frame: Any  # a dask Delayed of a pandas DataFrame, or None
    pred: list[str]
    target: list[str]
    weight: str | None
    chunk_rows: int


def _open(part: _Part, frame: Any = None) -> Source:
    if part.path is not None:
        return open_source(
            [part.path],
            pred=part.pred,
            target=part.target,
            weight=part.weight,
            chunk_rows=part.chunk_rows,
        )
    return _frame_source(frame, part)


def _frame_source(df: Any, part: _Part) -> Source:
    """A pandas partition as a Source (nulls become NaN and count as non-finite)."""
    missing = [c for c in (*part.pred, *part.target, part.weight) if c and c not in df.columns]
    if missing:
        raise InputError(
            f"dask DataFrame: no column {missing[0]!r}; it has {list(df.columns)} "
            "(name the columns with pred=, target=, weight=)"
        )

    def column(cols: list[str]) -> np.ndarray:
        return np.asarray(df[cols].to_numpy(dtype=np.float64, na_value=np.nan))

    w = None if part.weight is None else column([part.weight])[:, 0]
    names = (part.pred, part.target, part.weight)
    desc = f"dask DataFrame partition {part.index}"
    return _arrays_source(desc, column(part.pred), column(part.target), w, names, part.chunk_rows)


def _chunks(part: _Part, frame: Any) -> Any:
    """The part's Source and its chunks with row numbers tagged by the part's index."""
    source = _open(part, frame)

    def tagged() -> Any:
        for chunk in source.chunks(prefetch=2):
            chunk.rows = chunk.rows + (part.index << _ROW_BITS)
            yield chunk

    return source, tagged()


# --- diagnose --------------------------------------------------------------------------------


def _origins(part: _Part, frame: Any, nan_policy: str, top_k: int) -> tuple[Any, ...]:
    """The moments' origin of each output, from the part's first usable chunk (as a single
    pass takes it), and the source's column names."""
    source, chunks = _chunks(part, frame)
    state = Pass.new(len(source.pred_cols), top_k)
    for chunk in chunks:
        state.add(chunk, source, "omit")
        if all(acc.origin() is not None for acc in state.accs):
            break
    names = (source.pred_cols, source.target_cols, source.weight_col)
    return [acc.origin() for acc in state.accs], names


def _run_part(
    part: _Part, frame: Any, origins: list[Any], nan_policy: str, top_k: int
) -> tuple[Pass, dict[int, int], str]:
    source, chunks = _chunks(part, frame)
    # part 0 draws the plot sample as a single pass does; the others from their own streams
    seed = 0 if part.index == 0 else [part.index, 0]
    state = Pass.new(len(source.pred_cols), top_k, origins, seed=seed)
    for chunk in chunks:
        state.add(chunk, source, nan_policy)
    return state, {part.index: state.rows}, source.description


def _merge_parts(*states: tuple[Pass, dict[int, int], str]) -> tuple[Pass, dict[int, int], str]:
    first, sizes, desc = states[0]
    sizes = dict(sizes)
    for state, more, _ in states[1:]:
        first.merge(state)
        sizes.update(more)
    return first, sizes, desc


def run(
    source: Any,
    *,
    pred: str | Sequence[str] = "prediction",
    target: str | Sequence[str] = "target",
    weight: str | None = None,
    client: Any = None,
    nan_policy: str = "raise",
    top_k: int = 10,
    chunk_rows: int = 1 << 16,
    split_every: int = 8,
) -> tuple[dict[str, Any], list[OutputAccumulator]]:
    """:func:`diagnose`'s report and the merged accumulators behind it (for figures)."""
    check_pass_args(nan_policy, top_k)
    dask = require("dask", "regloss.dask")
    parts, frames, description = _parts(source, pred, target, weight, chunk_rows)
    if not isinstance(split_every, int) or isinstance(split_every, bool) or split_every < 2:
        raise InputError(f"split_every must be an integer >= 2, got {split_every!r}")
    delayed = dask.delayed
    origins, names = _compute(
        delayed(_origins)(parts[0], frames[0], nan_policy, top_k), client, dask
    )
    tasks = [
        delayed(_run_part)(part, frame, origins, nan_policy, top_k)
        for part, frame in zip(parts, frames, strict=True)
    ]
    state, sizes, first_desc = _compute(
        _tree(tasks, delayed(_merge_parts), split_every), client, dask
    )
    _renumber(state, sizes)
    view = Source(
        description if len(parts) > 1 else first_desc, names[0], names[1], names[2], None, None
    )
    return finish(state, view, nan_policy)


def diagnose(
    source: Any,
    *,
    pred: str | Sequence[str] = "prediction",
    target: str | Sequence[str] = "target",
    weight: str | None = None,
    client: Any = None,
    nan_policy: str = "raise",
    top_k: int = 10,
    chunk_rows: int = 1 << 16,
    split_every: int = 8,
) -> dict[str, Any]:
    """The report of :func:`regloss.diagnostics.diagnose_source` for data spread over many
    files or a dask DataFrame, computed on a Dask cluster.

    Parameters
    ----------
    source : str, Path, list of paths, or dask.dataframe.DataFrame
        A file, a glob (``'data/*.parquet'``) or a list of CSV/TSV/Parquet/.npz files, in
        order; or a dask DataFrame (each partition one part).
    pred, target : str or list of str
        Column names (one per output).
    weight : str, optional
        A sample-weight column.
    client : distributed.Client, optional
        Where the tasks run; None uses Dask's active scheduler.
    split_every : int
        How many partial states one merge task combines.
    """
    return run(
        source,
        pred=pred,
        target=target,
        weight=weight,
        client=client,
        nan_policy=nan_policy,
        top_k=top_k,
        chunk_rows=chunk_rows,
        split_every=split_every,
    )[0]


def _renumber(state: Pass, sizes: dict[int, int]) -> None:
    """Row numbers tagged with their part's index become positions in all the rows."""
    offsets, total = {}, 0
    for index in sorted(sizes):
        offsets[index] = total
        total += sizes[index]
    low = (1 << _ROW_BITS) - 1

    def global_row(row: int) -> int:
        return offsets[row >> _ROW_BITS] + (row & low) if row >= 0 else row

    for acc in state.accs:
        acc.max_row = global_row(acc.max_row)
        acc.heap = [(c, global_row(r), p, t) for c, r, p, t in acc.heap]
    if state.first_bad is not None:
        state.first_bad = global_row(state.first_bad)


# --- evaluate ----------------------------------------------------------------------------------


def _evaluate_part(part: _Part, frame: Any, metrics: list[Metric]) -> list[Metric]:
    mine = [copy.deepcopy(m) for m in metrics]
    for m in mine:
        m.reset()
    _, chunks = _chunks(part, frame)
    for chunk in chunks:
        pred = chunk.pred if chunk.pred.shape[1] > 1 else chunk.pred[:, 0]
        target = chunk.target if chunk.target.shape[1] > 1 else chunk.target[:, 0]
        for m in mine:
            m.update(pred, target, chunk.weight)
    return mine


def _merge_metrics(*parts: list[Metric]) -> list[Metric]:
    first = parts[0]
    for more in parts[1:]:
        for mine, theirs in zip(first, more, strict=True):
            mine.merge(theirs)
    return first


def evaluate(
    source: Any,
    metrics: Sequence[Metric],
    *,
    pred: str | Sequence[str] = "prediction",
    target: str | Sequence[str] = "target",
    weight: str | None = None,
    client: Any = None,
    chunk_rows: int = 1 << 16,
    split_every: int = 8,
) -> list[Any]:
    """Each of ``metrics`` (:mod:`regloss.metrics`) over all of ``source`` (as in
    :func:`diagnose`), one value per metric in order. The metrics given are templates: they
    are copied per part and left unchanged."""
    dask = require("dask", "regloss.dask")
    metrics = list(metrics)
    bad = [m for m in metrics if not isinstance(m, Metric)]
    if not metrics or bad:
        raise InputError(
            "metrics must be a non-empty list of regloss.metrics objects (e.g. "
            f"[MeanSquaredError(), R2Score()]), got {bad[0] if bad else metrics!r}"
        )
    parts, frames, _ = _parts(source, pred, target, weight, chunk_rows)
    delayed = dask.delayed
    tasks = [
        delayed(_evaluate_part)(part, frame, metrics)
        for part, frame in zip(parts, frames, strict=True)
    ]
    merged = _compute(_tree(tasks, delayed(_merge_metrics), split_every), client, dask)
    return [m.compute() for m in merged]


# --- parts, trees, scheduling --------------------------------------------------------------------


def _names(value: str | Sequence[str], what: str) -> list[str]:
    names = [value] if isinstance(value, str) else list(value)
    if not names or not all(isinstance(n, str) for n in names):
        raise InputError(f"{what} must be a column name or a list of them, got {value!r}")
    return names


def _parts(
    source: Any, pred: Any, target: Any, weight: str | None, chunk_rows: int
) -> tuple[list[_Part], list[Any], str]:
    p, t = _names(pred, "pred"), _names(target, "target")
    if hasattr(source, "to_delayed") and hasattr(source, "npartitions"):
        frames = list(source.to_delayed())
        parts = [_Part(i, None, None, p, t, weight, chunk_rows) for i in range(len(frames))]
        return parts, frames, f"dask DataFrame ({len(frames)} partitions)"
    files = _files(source)
    parts = [_Part(i, f, None, p, t, weight, chunk_rows) for i, f in enumerate(files)]
    pattern = source if isinstance(source, (str, os.PathLike)) else f"{files[0]} ..."
    return parts, [None] * len(parts), f"{len(files)} files {os.fspath(pattern)}"


def _files(source: Any) -> list[str]:
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        found = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        if not found:
            raise InputError(f"{text}: no file matches")
    elif (
        isinstance(source, Sequence)
        and source
        and all(isinstance(s, (str, os.PathLike)) for s in source)
    ):
        found = [os.fspath(s) for s in source]
    else:
        raise InputError(
            "source must be a path, a glob such as 'data/*.parquet', a list of paths or a "
            f"dask DataFrame, got {type(source).__name__}"
        )
    for f in found:
        if not Path(f).is_file():
            raise InputError(f"{f}: no such file")
    return found


def _tree(tasks: list[Any], merge: Callable[..., Any], split_every: int) -> Any:
    """Merge ``tasks`` in order, ``split_every`` at a time, level by level."""
    level = tasks
    while len(level) > 1:
        level = [merge(*level[i : i + split_every]) for i in range(0, len(level), split_every)]
    return level[0]


def _compute(obj: Any, client: Any, dask: Any) -> Any:
    if client is not None:
        return client.compute(obj).result()
    return dask.compute(obj)[0]
