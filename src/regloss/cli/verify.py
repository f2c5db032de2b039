"""``regloss verify``: check every registered loss's derivatives; non-zero exit on a mismatch."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ..gradcheck import check_gradients, check_nll_gradients
from ..losses import available_losses, available_nll_losses, get_loss, get_nll_loss, registered
from ._progress import steps
from ._table import table

__all__ = ["add_parser", "run", "settings"]

#: Extra parameter settings verified besides each loss's defaults: the special cases.
EXTRA: dict[str, list[dict[str, Any]]] = {
    "huber": [{"delta": 0.25}],
    "smooth_l1": [{"beta": 0.0}, {"beta": 0.5}],
    "quantile": [{"q": 0.9}],
    "tukey": [{"c": 1.5}],
    "barron": [{"alpha": a} for a in (2.0, 0.0, -2.0, float("-inf"), 1.999999, 1e-6)],
    "gaussian_nll": [{"full": True}],
}


def settings() -> list[dict[str, Any]]:
    """Defaults of every registered loss that has them, plus :data:`EXTRA`."""
    out: list[dict[str, Any]] = []
    for name in available_losses():
        fields = dataclasses.fields(registered()[name])
        if all(f.default is not dataclasses.MISSING for f in fields):
            out.append({"name": name})
        out += [{"name": name, **p} for p in EXTRA.get(name, [])]
    for name in available_nll_losses():
        out += [{"name": name}] + [{"name": name, **p} for p in EXTRA.get(name, [])]
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "verify",
        help="check every loss's analytic derivatives",
        description="Checks every registered loss's analytic psi and psi' against autodiff "
        "(PyTorch and JAX when installed) and finite differences at its defaults and special "
        "cases; exits 1 on a mismatch.",
    )
    p.add_argument(
        "--loss",
        action="append",
        metavar="NAME",
        help="only this loss (repeatable); default: every registered loss",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    chosen = settings()
    if args.loss:
        known = available_losses() + available_nll_losses()
        unknown = sorted(set(args.loss) - set(known))
        if unknown:
            raise ValueError(f"--loss {unknown[0]!r} is not a registered loss; choose from {known}")
        chosen = [s for s in chosen if s["name"] in args.loss]
    rows = []
    all_ok = True
    skipped: set[str] = set()
    with steps("verifying", len(chosen)) as advance:
        reports = []
        for s in chosen:
            params = {k: v for k, v in s.items() if k != "name"}
            nll = s["name"] in available_nll_losses()
            reports.append((check_nll_gradients if nll else check_gradients)(s["name"], **params))
            advance(s["name"])
    for s, report in zip(chosen, reports):
        params = {k: v for k, v in s.items() if k != "name"}
        nll = s["name"] in available_nll_losses()
        skipped.update(report.skipped)
        all_ok &= report.ok
        worst_fd = max(
            (c for c in report.checks if "finite differences" in c.what),
            key=lambda c: c.max_rel_error,
        )
        worst_ad = max(
            (c for c in report.checks if c.backend in ("torch", "jax")),
            key=lambda c: c.max_rel_error,
            default=None,
        )
        rows.append(
            [
                repr((get_nll_loss if nll else get_loss)(s["name"], **params)),
                len(report.checks),
                len(report.failures),
                f"{worst_fd.max_rel_error:.1e}",
                "-" if worst_ad is None else f"{worst_ad.max_rel_error:.1e}",
                "ok" if report.ok else "MISMATCH",
            ]
        )
        for c in report.failures:
            print(
                f"MISMATCH {report.loss}: {c.what} [{c.backend}, {c.case}] "
                f"rel error {c.max_rel_error:.2e} > {c.tolerance:.0e}"
            )
    print(
        table(
            ["loss", "checks", "failed", "worst vs finite diff", "worst vs autodiff", "status"],
            rows,
            title="regloss verify: analytic psi and psi' against autodiff and finite differences",
        )
    )
    if skipped:
        print("skipped: " + ", ".join(sorted(skipped)))
    print("all derivatives match" if all_ok else "derivative MISMATCH found")
    return 0 if all_ok else 1
