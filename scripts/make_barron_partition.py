"""Tabulate log Z(alpha), the log partition function of Barron's distribution.

p(x | alpha, c) = exp(-rho(x / c, alpha)) / (c Z(alpha)), Z(alpha) = integral over the real
line of exp(-rho(x, alpha)). Z is finite for alpha >= 0 (for alpha < 0, rho is bounded and
the density cannot be normalised). We integrate numerically with scipy.integrate.quad on a
grid of alpha in [0, ALPHA_MAX] and store log Z and its derivative d log Z / d alpha (by the
same quadrature: d/dalpha log Z = -E[d rho / d alpha]), so the package evaluates a
C1 cubic Hermite interpolant, differentiable in alpha. Reproducible: run

    python scripts/make_barron_partition.py

which rewrites src/regloss/data/barron_log_partition.json.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from scipy import integrate

ALPHA_MAX = 4.0
STEP = 0.01
OUT = Path(__file__).parents[1] / "src" / "regloss" / "data" / "barron_log_partition.json"


def rho(x: float, alpha: float) -> float:
    if alpha == 2.0:
        return 0.5 * x * x
    if alpha == 0.0:
        return math.log1p(0.5 * x * x)
    b = abs(alpha - 2.0)
    return b / alpha * math.expm1(0.5 * alpha * math.log1p(x * x / b))


def drho_dalpha(x: float, alpha: float, h: float = 1e-6) -> float:
    lo, hi = max(alpha - h, 0.0), alpha + h
    if abs(lo - 2.0) < 1e-12 or abs(hi - 2.0) < 1e-12:  # step around the exact special value
        lo, hi = alpha - 2 * h, alpha - h
    return (rho(x, hi) - rho(x, lo)) / (hi - lo)


def log_partition(alpha: float) -> tuple[float, float]:
    """(log Z(alpha), d log Z / d alpha)."""
    opts = {"epsabs": 1e-14, "epsrel": 1e-12, "limit": 500}
    z = 2.0 * integrate.quad(lambda x: math.exp(-rho(x, alpha)), 0.0, math.inf, **opts)[0]
    m = (
        2.0
        * integrate.quad(
            lambda x: drho_dalpha(x, alpha) * math.exp(-rho(x, alpha)), 0.0, math.inf, **opts
        )[0]
    )
    return math.log(z), -m / z


def main() -> None:
    alphas = np.round(np.arange(0.0, ALPHA_MAX + STEP / 2, STEP), 10)
    values, slopes = zip(*(log_partition(float(a)) for a in alphas))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "description": "log partition function of Barron's distribution, scale 1",
                "generated_by": "scripts/make_barron_partition.py",
                "alpha_min": 0.0,
                "alpha_max": ALPHA_MAX,
                "step": STEP,
                "log_z": [round(v, 15) for v in values],
                "dlog_z": [round(v, 12) for v in slopes],
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {len(alphas)} values to {OUT}")


if __name__ == "__main__":
    main()
