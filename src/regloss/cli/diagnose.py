"""``regloss diagnose``: from a file of predictions and targets, is MSE the right loss?"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..diagnostics import open_source, run_source
from ..diagnostics._present import (
    approximation_text,
    error_rows,
    evidence_rows,
    recommendation_text,
    top_rows,
)
from ._table import table

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
        help="a .csv, .parquet or .npz file, or two .npy files (predictions, targets)",
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
        "--nan-policy",
        choices=["raise", "omit"],
        default="raise",
        help="rows with NaN/inf: fail (default) or skip and count them",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
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
    p.set_defaults(run=run)


@contextmanager
def _progress(enabled: bool, total: int | None) -> Iterator[Callable[[int], None] | None]:
    if not enabled:
        yield None
        return
    try:
        from rich.progress import Progress
    except ImportError:
        yield None
        return
    from rich.console import Console

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("reading", total=total)
        yield lambda rows: bar.update(task, completed=rows)


def run(args: argparse.Namespace) -> int:
    if args.chunk_rows < 1:
        raise ValueError(f"--chunk-rows must be >= 1, got {args.chunk_rows}")
    if args.top_k < 0:
        raise ValueError(f"--top-k must be >= 0, got {args.top_k}")
    source = open_source(
        args.files,
        pred=args.pred,
        target=args.target,
        weight=args.weight,
        chunk_rows=args.chunk_rows,
    )
    if args.report and not args.report.lower().endswith((".html", ".htm")):
        raise ValueError(f"--report must name an .html file, got {args.report!r}")
    show = not args.quiet and sys.stderr.isatty()
    with _progress(show, source.total_rows) as progress:
        report, accs = run_source(
            source, nan_policy=args.nan_policy, top_k=args.top_k, progress=progress
        )
    if args.report or args.plots:
        from ..diagnostics._report import figures, write_html, write_pngs

        pngs = [figures(acc, out) for acc, out in zip(accs, report["outputs"])]
        if args.plots:
            write_pngs(Path(args.plots), pngs)
        if args.report:
            write_html(Path(args.report), report, pngs)
    if args.json:
        print(json.dumps(report, indent=2, allow_nan=True))
    else:
        print(summary(report))
    return 0


def summary(report: dict[str, Any]) -> str:
    """The terminal summary of a diagnosis."""
    lines = [
        f"regloss diagnose: {report['input']}: {report['rows_read']} rows"
        + (f", {report['rows_omitted']} omitted (NaN/inf)" if report["rows_omitted"] else "")
    ]
    for out in report["outputs"]:
        lines.append("")
        title = f"{out['output']} ({out['n']} residuals)"
        lines.append(table(["error", "value"], error_rows(out), title=title))
        lines.append(table(["evidence", "value"], evidence_rows(out)))
        if out["outliers"]["top"]:
            lines.append(
                table(
                    ["row", "contribution r^2", "prediction", "target"],
                    top_rows(out),
                    title="largest contributions",
                )
            )
        lines.append(f"recommended loss: {recommendation_text(out)}")
        lines += [f"  - {r}" for r in out["recommendation"]["reasons"]]
        lines.append(f"  ({approximation_text(out)})")
    return "\n".join(lines)
