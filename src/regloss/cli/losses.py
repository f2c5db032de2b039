"""``regloss losses``: every registered loss with the properties computed from its code."""

from __future__ import annotations

import argparse

from ..losses import available_losses, available_nll_losses, get_loss
from ..losses._nll import _NLL_REGISTRY
from ..stats import properties
from ._table import table

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
        cls = _NLL_REGISTRY[name]
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
    p = sub.add_parser("losses", help="list the registered losses and their properties")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table())
        return 0
    print(
        table(
            HEADERS,
            _rows(),
            title="regloss losses (default parameters; "
            "efficiency of the location M-estimator under Gaussian noise)",
        )
    )
    print()
    print(
        table(
            NLL_HEADERS,
            _nll_rows(),
            title="negative log-likelihoods with a predicted scale "
            "(regloss.available_nll_losses(); a third input beside prediction and target)",
        )
    )
    return 0
