"""Which loss serves these residuals best: the asymptotic variance of each M-estimator.

For a location or regression M-estimator with loss ρ and ψ = ρ′ on residuals scaled by s,
the asymptotic covariance is ``V(ψ) · s² (XᵀX)⁻¹`` with

    V(ψ) = E[ψ(ε − μ)²] / (E[ψ′(ε − μ)])²,    μ solving E[ψ(ε − μ)] = 0,

so the ratio ``V(ψ) / V(MSE)`` evaluated on the user's own standardised residuals says how
much more (< 1) or less (> 1) precise their fit would be with that loss than with MSE, for
data like theirs, whatever the design. This is an effect size, not a significance test: on
a million Gaussian-ish residuals a normality test always rejects, yet no robust loss gains
more than a few percent there, and that is what this criterion reports.

The expectations are evaluated on the residuals' 0.1% relative-width histogram (the streamed
sketch; its binning error is far below the sampling error). Every candidate's ψ and ψ′ come
from the registry, the same definitions the front-ends train with. MAE's ψ′ is a Dirac mass
at 0, so its E[ψ′] is 2·f(μ), with the density f at the median estimated from the shares of
residuals within h and 2h of it (h = 0.5·n^(−1/5) robust scales), extrapolated to h = 0
(on a lattice of values, over whole lattice steps instead). With over 5% of the residuals
exactly at the median MAE is not ranked (a point mass: no density), and from one half on
no loss is. The histogram is of r minus the first chunk's mean, so its 0.1% relative bins
are fine near the centre however large the residuals' offset.

The sampling uncertainty of each ratio is the delta method's: the ratio's influence function
``R · (IF_V/V − IF_MSE/V_MSE)`` with ``IF_V = (ψ² − A)/B² − 2A(ψ′ − B)/B³`` (A = E ψ²,
B = E ψ′), averaged over the residuals, plus for MAE the kernel density estimate's variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..losses import get_loss

__all__ = ["CRITERION", "FAMILIES", "MIN_GAIN", "Candidate", "choose", "rank"]

CRITERION = (
    "asymptotic variance of the M-estimator, E[psi^2]/E[psi']^2 on the standardised "
    "residuals, relative to MSE's (below 1: more precise than MSE)"
)

#: Candidate losses in order of preference (simplest first) and their constants in robust
#: scales: each family's grid spans its usual range and includes its 95%-efficiency value.
FAMILIES: dict[str, tuple[str, tuple[float, ...]]] = {
    "mse": ("", ()),
    "huber": ("delta", (0.5, 0.75, 1.0, 1.345, 1.5, 2.0, 2.5, 3.0)),
    "mae": ("", ()),
    "cauchy": ("c", (1.0, 1.5, 2.0, 2.385, 3.0, 4.0, 5.0)),
    "tukey": ("c", (3.0, 3.5, 4.0, 4.685, 5.5, 6.5, 8.0)),
}
#: A share of residuals equal to the median above which MAE's variance formula (which needs
#: a density there) does not hold; from one half on (MAD = 0) no loss is ranked at all.
POINT_MASS = 0.05
#: A loss other than MSE is recommended only when it cuts the variance by at least this
#: share; a more complex family replaces a simpler one only when it is better by as much.
MIN_GAIN = 0.05
_NEWTON_STEPS = 50


@dataclass(frozen=True)
class Candidate:
    """One loss at one constant: its variance relative to MSE's, and that ratio's s.e."""

    loss: str
    constant: float | None  # in robust scales; None for mse and mae
    ratio: float
    se: float
    location: float = 0.0  # the M-estimate of the centre, in robust scales from the median
    #: relative influence IF_V / V at each residual, and the variance of V/V's other
    #: (non-residual) parts: comparisons of two losses pair these, so shared noise cancels
    influence: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    extra: float = 0.0

    def params(self, scale: float) -> dict[str, float]:
        """The loss's parameters in data units."""
        param = FAMILIES[self.loss][0]
        return {param: self.constant * scale} if param and self.constant is not None else {}

    def label(self) -> str:
        param = FAMILIES[self.loss][0]
        return f"{self.loss}({param}={self.constant:g} s)" if param else self.loss


def _location(psi: Any, dpsi: Any, z: np.ndarray, c: np.ndarray) -> float:
    """μ solving Σ c ψ(z − μ) = 0, by Newton's method from the median (μ = 0)."""
    mu = 0.0
    for _ in range(_NEWTON_STEPS):
        g = float(np.dot(c, psi(z - mu)))
        h = float(np.dot(c, dpsi(z - mu)))
        if h <= 0:
            break
        step = g / h
        mu += step
        if abs(step) < 1e-12:
            break
    return mu


def _moments(
    name: str, constant: float | None, z: np.ndarray, c: np.ndarray, n: float
) -> tuple[float, np.ndarray, float] | None:
    """V = A/B², its influence function at each z and the centre μ (None if B <= 0)."""
    param = FAMILIES[name][0]
    spec = get_loss(name, **({param: constant} if param else {}))
    mu = _location(spec.psi, spec.psi_prime, z, c)
    p = spec.psi(z - mu)
    dp = spec.psi_prime(z - mu)
    a = float(np.dot(c, p * p)) / n
    b = float(np.dot(c, dp)) / n
    if not b > 0 or not math.isfinite(a):
        return None
    v = a / (b * b)
    return v, (p * p - a) / (b * b) - 2 * a * (dp - b) / b**3, mu


def rank(z: np.ndarray, c: np.ndarray, mae: bool = True) -> list[Candidate]:
    """Every candidate's variance ratio to MSE on residuals ``z`` (standardised: median 0,
    robust scale 1) with counts ``c`` (a histogram's bin midpoints and counts). ``mae=False``
    leaves MAE out: with a point mass at the median its density there is undefined."""
    n = float(c.sum())
    mean = float(np.dot(c, z)) / n
    d = z - mean
    v0 = float(np.dot(c, d * d)) / n
    if not (v0 > 0 and math.isfinite(v0)):
        return [Candidate("mse", None, 1.0, 0.0, mean)]
    if0 = d * d - v0
    out = [Candidate("mse", None, 1.0, 0.0, mean, if0 / v0)]

    def add(
        name: str, constant: float | None, v: float, iv: np.ndarray, extra: float, mu: float
    ) -> None:
        ratio = v / v0
        infl = iv / v - if0 / v0
        se = ratio * math.sqrt(float(np.dot(c, infl * infl)) / (n * n) + extra)
        out.append(Candidate(name, constant, ratio, se, mu, iv / v, extra))

    for name, (_, grid) in FAMILIES.items():
        for constant in grid:
            m = _moments(name, constant, z, c, n)
            if m is not None:
                add(name, constant, m[0], m[1], 0.0, m[2])
    # MAE: E ψ′ = 2 f(median). f from the shares within h and 2h of the median, combined
    # as 2 f̂(h) − f̂(2h) = (3·inner − ring)/(4nh): that cancels the O(h) bias a box kernel
    # has at a cusp (Laplace noise), keeps O(h²) for smooth ones; variance ≈ 1.25 f/(nh).
    # Residuals on a lattice (integer targets, rounding) have no density at the scale of h:
    # there the box is widened to whole lattice steps, edges half-way between values.
    h = 0.5 * n ** (-0.2)
    near = np.unique(z[(np.abs(z) < 1) & (c > 0)])
    gap = float(np.min(np.diff(near))) if near.size > 1 else 0.0
    if gap > 0.5 * h:  # residuals on a lattice (integers, rounding): a box of whole steps
        h = (max(2, math.ceil(h / gap)) + 0.5) * gap
        f0 = float(c[np.abs(z) <= h].sum()) / (2 * h * n)
        var_f = f0 / (2 * n * h)
    else:
        inner = float(c[np.abs(z) <= h].sum())
        ring = float(c[(np.abs(z) > h) & (np.abs(z) <= 2 * h)].sum())
        f0 = (3 * inner - ring) / (4 * h * n)
        var_f = 1.25 * f0 / (n * h)
    if mae and f0 > 0:
        a = float(c[z != 0].sum()) / n
        b = 2 * f0
        iv = (np.where(z != 0, 1.0, 0.0) - a) / (b * b)
        var_b = 4 * var_f
        add("mae", None, a / (b * b), iv, (2 / b) ** 2 * var_b, 0.0)
    return out


def _relative_se(a: Candidate, b: Candidate, c: np.ndarray) -> float:
    """Standard error of V_a/V_b (near 1), from the paired influences."""
    d = a.influence - b.influence
    n = float(c.sum())
    return math.sqrt(float(np.dot(c, d * d)) / (n * n) + a.extra + b.extra)


def choose(candidates: list[Candidate], counts: np.ndarray) -> tuple[Candidate, list[Candidate]]:
    """The recommendation and the best constant of each family, in preference order.

    MSE unless the best candidate cuts the variance by more than :data:`MIN_GAIN` and by
    more than two standard errors; then the simplest family within :data:`MIN_GAIN` (or two
    standard errors of the paired difference) of the best.
    """
    best_of: dict[str, Candidate] = {}
    for cand in candidates:
        if cand.loss not in best_of or cand.ratio < best_of[cand.loss].ratio:
            best_of[cand.loss] = cand
    families = [best_of[f] for f in FAMILIES if f in best_of]
    best = min(families, key=lambda x: x.ratio)
    if best.ratio > 1 - MIN_GAIN or not best.ratio + 2 * best.se < 1:  # a nan s.e.: no switch
        return best_of["mse"], families
    for cand in families[1:]:
        slack = max(MIN_GAIN, 2 * _relative_se(cand, best, counts))
        if cand.ratio <= best.ratio * (1 + slack):
            return cand, families
    return best, families  # pragma: no cover - the best is always within its own slack
