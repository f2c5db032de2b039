"""``regloss losses``: every registered loss with the properties computed from its code."""

from __future__ import annotations

import argparse
import importlib.util

from ..losses import available_losses, available_nll_losses, get_loss, registered_nll
from ..stats import properties
from ._table import table, terminal_width

__all__ = ["add_parser", "markdown_table", "run"]

HEADERS = [
    "loss",
    "rho(r)",
    "convex",
    "smooth",
    "bounded",
    "redescending",
    "noise model (ML loss of)",
    "Gaussian efficiency",
    "breakdown",
]


def _rows() -> list[list[str]]:
    rows = []
    for name in available_losses():
        p = properties(get_loss(name))
        rows.append(
            [
                p.loss,
                p.formula,
                "yes" if p.convex else "no",
                p.smoothness,
                f"yes (max {p.bound:.4g})" if p.bounded and p.bound is not None else "no",
                "yes" if p.redescending else "no",
                p.noise_model or "-",
                "-" if p.efficiency is None else f"{p.efficiency:.3f}",
                f"{p.breakdown_point:g}",
            ]
        )
    return rows


NLL_HEADERS = ["loss", "third input", "loss of (r, third input)", "noise model (ML loss of)"]


def _nll_rows() -> list[list[str]]:
    """The likelihoods with a predicted scale (their own registry: three inputs)."""
    rows = []
    for name in available_nll_losses():
        cls = registered_nll()[name]
        third = cls.scale_input
        rows.append([name, f"{third} (or log_{third}=True)", cls.formula, cls.noise_model])
    return rows


def markdown_table() -> str:
    """The table as Markdown (what the README shows between its generated-table markers)."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in _rows():
        cells = [c.replace("|", "\\|") for c in row]
        cells[0], cells[1] = f"`{cells[0]}`", f"`{cells[1]}`"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "losses",
        help="list the registered losses and their properties",
        description="Every registered loss with its formula and the properties computed from "
        "its code: convexity, smoothness, boundedness, redescent, noise model, Gaussian "
        "efficiency and breakdown point; then the negative log-likelihoods.",
    )
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument(
        "--wide", action="store_true", help="do not wrap the tables to the terminal's width"
    )
    p.set_defaults(run=run)


#: Columns a narrow terminal leaves to --wide (and to the README's Markdown table).
NARROW_DROPS = ("rho(r)", "noise model (ML loss of)")


def _too_wide(headers: list[str], rows: list[list[str]], width: int) -> bool:
    return max(len(line) for line in table(headers, rows, width=width).splitlines()) > width


SCIPY_NOTE = "Gaussian efficiency needs scipy (numerical integration): pip install 'regloss[stats]'"


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table())
        return 0
    width = None if args.wide else terminal_width()
    headers, rows = HEADERS, _rows()
    title = (
        "regloss losses (default parameters; efficiency of the location M-estimator under "
        "Gaussian noise)"
    )
    if width is not None and _too_wide(headers, rows, width):
        keep = [i for i, h in enumerate(HEADERS) if h not in NARROW_DROPS]
        headers = [HEADERS[i] for i in keep]
        rows = [[r[i] for i in keep] for r in rows]
        title += "; --wide adds the formulas and noise models"
    print(table(headers, rows, title=title, width=width))
    if importlib.util.find_spec("scipy") is None:
        print(f"  '-' under Gaussian efficiency: {SCIPY_NOTE}")
    print()
    print(
        table(
            NLL_HEADERS,
            _nll_rows(),
            title="negative log-likelihoods with a predicted scale "
            "(regloss.available_nll_losses(); a third input beside prediction and target)",
            width=width,
        )
    )
    return 0
