"""``regloss diagnose``: from a file of predictions and targets, is MSE the right loss?"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import math
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._optional import pyplot, require
from ..diagnostics import InputError, open_source, run_source
from ..diagnostics._io import Source
from ..diagnostics._present import (
    VARIANCE_HEADERS,
    approximation_text,
    error_rows,
    evidence_rows,
    recommendation_text,
    top_rows,
    variance_rows,
)
from ._table import table, terminal_width

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "diagnose",
        help="analyse residuals in a CSV/Parquet/.npy/.npz file and recommend a loss",
        description="Reads predictions and targets in chunks (files larger than memory work) "
        "and reports error sizes, the noise model, normality, outlier influence and a loss.",
    )
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="a .csv/.tsv (or .gz/.bz2 of one), .parquet or .npz file, or two .npy files "
        "(predictions, targets)",
    )
    p.add_argument(
        "--pred",
        action="append",
        metavar="COL",
        help="prediction column (repeat for several outputs); default 'prediction'",
    )
    p.add_argument(
        "--target",
        action="append",
        metavar="COL",
        help="target column, one per --pred; default 'target'",
    )
    p.add_argument("--weight", metavar="COL", help="optional sample-weight column")
    p.add_argument(
        "--delimiter",
        metavar="CHAR",
        help="CSV field separator; default ',' (tab for .tsv)",
    )
    p.add_argument(
        "--encoding",
        default="utf-8",
        metavar="NAME",
        help="CSV text encoding, e.g. latin-1; default utf-8 (a byte-order mark is skipped)",
    )
    p.add_argument(
        "--nan-policy",
        choices=["raise", "omit"],
        default="raise",
        help="rows with NaN/inf: fail (default) or skip and count them",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the report as strict JSON (NaN/inf become null, listed under 'nulls')",
    )
    p.add_argument(
        "--report",
        metavar="FILE.html",
        help="write a self-contained HTML report with the figures embedded",
    )
    p.add_argument("--plots", metavar="DIR", help="write the figures as PNG files into DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--chunk-rows",
        type=int,
        default=1 << 16,
        metavar="N",
        help="rows per chunk (memory stays flat in the file size)",
    )
    p.add_argument(
        "--top-k", type=int, default=10, metavar="K", help="how many largest contributors to list"
    )
    p.add_argument(
        "--scheduler",
        metavar="local|ADDRESS",
        help="run on Dask (regloss[dask]): 'local' starts a LocalCluster sized to this "
        "machine, tcp://HOST:PORT uses a running scheduler; FILE may then be several files "
        "or a quoted glob such as 'data/*.parquet'",
    )
    p.set_defaults(run=run)


Progress = Callable[[int, "int | None"], None]


@contextmanager
def _progress(enabled: bool, source: Source) -> Iterator[Progress | None]:
    """A bar on stderr with rows, bytes, percent and ETA: the total is the row count
    (Parquet, .npy) or the file size (CSV, whose rows are unknown until read)."""
    if not enabled:
        yield None
        return
    try:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
    except ImportError:  # rich is optional: no bar without it
        yield None
        return
    by_bytes = source.total_rows is None and source.total_bytes is not None
    columns: list[Any] = [
        TextColumn("reading"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
    ]
    if by_bytes:
        columns.append(DownloadColumn())
    columns.append(TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        total = source.total_bytes if by_bytes else source.total_rows
        task = bar.add_task("reading", total=total, rows=0)

        def update(rows: int, nbytes: int | None) -> None:
            done = nbytes if by_bytes and nbytes is not None else rows
            bar.update(task, completed=done, rows=rows)

        yield update


def run(args: argparse.Namespace) -> int:
    if args.chunk_rows < 1:
        raise ValueError(f"--chunk-rows must be >= 1, got {args.chunk_rows}")
    if args.top_k < 0:
        raise ValueError(f"--top-k must be >= 0, got {args.top_k}")
    if args.report and not args.report.lower().endswith((".html", ".htm")):
        raise ValueError(f"--report must name an .html file, got {args.report!r}")
    if args.report:
        _check_writable(Path(args.report), "--report")
    if args.plots:
        _check_writable(Path(args.plots), "--plots", directory=True)
    if args.report or args.plots:
        # before reading a large file: a missing extra fails now, not after the pass
        from ..diagnostics._report import figures, write_html, write_pngs

        pyplot("writing the report and figures")
    if args.scheduler is not None:
        report, accs = _on_dask(args)
    else:
        report, accs = _here(args)
    text = strict_json(report) if args.json else summary(report)
    if args.report or args.plots:
        pngs = [figures(acc, out) for acc, out in zip(accs, report["outputs"])]
        if args.plots:
            write_pngs(Path(args.plots), pngs)
            print(f"regloss: wrote {len(pngs) * 4} figures into {args.plots}", file=sys.stderr)
        if args.report:
            write_html(Path(args.report), report, pngs)
            print(f"regloss: wrote the report to {args.report}", file=sys.stderr)
    print(text)
    return 0


def _here(args: argparse.Namespace) -> tuple[dict[str, Any], list[Any]]:
    """One process, one file (or two .npy files), with a progress bar."""
    several = [f for f in args.files if not f.lower().endswith(".npy")]
    if len(several) > 1 or any(glob.has_magic(f) and not Path(f).exists() for f in args.files):
        raise InputError(
            f"{args.files[0]}: several files or a glob need --scheduler local (Dask, "
            "pip install 'regloss[dask]'); one file is read here"
        )
    source = open_source(
        args.files,
        pred=args.pred,
        target=args.target,
        weight=args.weight,
        chunk_rows=args.chunk_rows,
        delimiter=args.delimiter,
        encoding=args.encoding,
    )
    show = not args.quiet and sys.stderr.isatty()
    with _progress(show, source) as progress:
        return run_source(source, nan_policy=args.nan_policy, top_k=args.top_k, progress=progress)


def _on_dask(args: argparse.Namespace) -> tuple[dict[str, Any], list[Any]]:
    """Every file (or the glob's matches) as one part on a Dask cluster."""
    require("distributed", "diagnose --scheduler")
    from .. import dask as rdask

    if args.delimiter is not None or args.encoding != "utf-8":
        raise InputError("--delimiter and --encoding are not supported with --scheduler")
    files = args.files[0] if len(args.files) == 1 else args.files
    with _client(args.scheduler) as client:
        return rdask.run(
            files,
            pred=args.pred or ["prediction"],
            target=args.target or ["target"],
            weight=args.weight,
            client=client,
            nan_policy=args.nan_policy,
            top_k=args.top_k,
            chunk_rows=args.chunk_rows,
        )


@contextmanager
def _client(scheduler: str) -> Iterator[Any]:
    """A Dask client: a LocalCluster (one worker process per core) or a running scheduler."""
    distributed: Any = require("distributed", "diagnose --scheduler")
    if scheduler == "local":
        workers = os.cpu_count() or 1
        with (
            distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client
        return
    if "://" not in scheduler:
        raise InputError(
            f"--scheduler must be 'local' or a scheduler address such as "
            f"tcp://HOST:8786, got {scheduler!r}"
        )
    try:
        client = distributed.Client(scheduler, timeout="10s")
    except OSError as exc:
        raise InputError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
    with client:
        yield client


NAN_REASONS = {
    "r2": "undefined (nan): the targets are constant, so R^2 has no denominator",
    "share": "undefined (nan): the squared error overflows float64",
}


def _check_writable(path: Path, option: str, directory: bool = False) -> None:
    """Fail before the pass, not after it, when an output cannot be written there."""
    if directory and path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path}: exists and is not a directory")
    if not directory and path.is_dir():
        raise ValueError(f"{option} {path}: is a directory; name a file")
    parent = path if directory else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ValueError(f"{option} {path}: cannot write into {parent}")


def strict_json(report: dict[str, Any]) -> str:
    """The report as strict JSON (RFC 8259): NaN and inf become null, and each such field
    is listed under ``"nulls"`` with the reason."""
    nulls: dict[str, str] = {}

    def clean(x: Any, path: str) -> Any:
        if isinstance(x, dict):
            return {k: clean(v, f"{path}.{k}" if path else k) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v, f"{path}[{i}]") for i, v in enumerate(x)]
        if isinstance(x, float) and not math.isfinite(x):
            field = path.rsplit(".", 1)[-1]
            if math.isnan(x):
                nulls[path] = NAN_REASONS.get(field, "undefined (nan)")
            else:
                nulls[path] = f"{'-' if x < 0 else ''}inf: beyond the float64 range"
            return None
        return x

    out = clean(report, "")
    out["nulls"] = nulls
    return json.dumps(out, indent=2, allow_nan=False)


def summary(report: dict[str, Any]) -> str:
    """The terminal summary of a diagnosis."""
    lines = [
        f"regloss diagnose: {report['input']}: {report['rows_read']} rows"
        + (
            f", {report['rows_omitted']} omitted (missing, NaN or inf)"
            if report["rows_omitted"]
            else ""
        )
    ]
    width = terminal_width()
    lines += [
        textwrap.fill(f"warning: {w}", width, subsequent_indent="  ")
        for w in report.get("warnings", [])
    ]
    for out in report["outputs"]:
        lines.append("")
        title = f"{out['output']} ({out['n']} residuals)"
        lines.append(table(["error", "value"], error_rows(out), title=title))
        lines.append(table(["evidence", "value"], evidence_rows(out)))
        if out["loss_variance"]["candidates"]:
            lines.append(
                table(
                    VARIANCE_HEADERS,
                    variance_rows(out),
                    title="each loss's M-estimator variance relative to MSE's on these "
                    "residuals (s = robust scale)",
                )
            )
        if out["outliers"]["top"]:
            lines.append(
                table(
                    ["row", "contribution r^2", "prediction", "target"],
                    top_rows(out),
                    title="largest contributions",
                )
            )
        lines.append(f"recommended loss: {recommendation_text(out)}")
        lines += [
            textwrap.fill(r, width, initial_indent="  - ", subsequent_indent="    ")
            for r in out["recommendation"]["reasons"]
        ]
        lines.append(f"  ({approximation_text(out)})")
    return "\n".join(lines)
