"""The simulation grid that `regloss diagnose`'s advice is validated on.

Each noise distribution states the loss families a statistician would accept for it, from
the asymptotic variance ratios at N = 10^6 (see the closing note of issue 8):
- light or Gaussian tails (Gaussian, uniform, x + sin x's sine part, a bimodal mixture,
  Student-t with 30 degrees of freedom): MSE is the most precise loss or within 5% of it;
- heavy tails and gross errors: a robust loss, by tens of percent;
- mild departures (t10, logistic, skew-normal: 5-10% gains): either answer, MSE preferred
  at small N where the gain is within the sampling error;
- below N = 10^4 MSE is also accepted wherever a small sample need not show the departure.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

MSE = frozenset({"mse"})
ROBUST = frozenset({"huber", "mae", "cauchy", "tukey"})
REDESCENDING = frozenset({"cauchy", "tukey"})
ANY = MSE | ROBUST

Sampler = Callable[[np.random.Generator, int], np.ndarray]


def _contaminated(p: float) -> Sampler:
    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        e = rng.standard_normal(n)
        gross = rng.random(n) < p
        e[gross] = rng.choice([-1.0, 1.0], gross.sum()) * rng.uniform(10, 30, gross.sum())
        return e

    return draw


def _skew_normal(rng: np.random.Generator, n: int) -> np.ndarray:
    a = 4.0
    d = a / np.sqrt(1 + a * a)
    return d * np.abs(rng.standard_normal(n)) + np.sqrt(1 - d * d) * rng.standard_normal(n)


def _student(df: float) -> Sampler:
    return lambda rng, n: rng.standard_t(df, n)


#: name -> (sampler, families accepted at N >= 10^4, families accepted below)
GRID: dict[str, tuple[Sampler, frozenset[str], frozenset[str]]] = {
    "gaussian": (lambda rng, n: rng.standard_normal(n), MSE, MSE),
    "uniform": (lambda rng, n: rng.uniform(-1, 1, n), MSE, MSE),
    "x + sin x": (lambda rng, n: np.sin(rng.uniform(-10, 10, n)), MSE, MSE),
    "bimodal mixture": (
        lambda rng, n: 0.5 * rng.standard_normal(n) + rng.choice([-2.0, 2.0], n),
        MSE,
        MSE,
    ),
    "t30": (_student(30), MSE, MSE),
    "t10": (_student(10), ANY, ANY),
    "t5": (_student(5), ROBUST, ANY),
    # At N = 100 a t3 or t2 sample can look Gaussian: the gain is then within its
    # uncertainty, and the advice prefers MSE, as the criterion says it should.
    "t3": (_student(3), ROBUST, ANY),
    "t2": (_student(2), ROBUST, ANY),
    "t1 (Cauchy)": (_student(1), ROBUST, ROBUST),
    "laplace": (lambda rng, n: rng.laplace(size=n), frozenset({"huber", "mae"}), ANY),
    "logistic": (lambda rng, n: rng.logistic(size=n), ANY, ANY),
    "skew-normal": (_skew_normal, ANY, ANY),
    "log-normal": (lambda rng, n: rng.lognormal(0, 1, n), ROBUST, ROBUST),
    "scale mixture": (
        lambda rng, n: rng.standard_normal(n) * np.where(rng.random(n) < 0.5, 1.0, 3.0),
        ROBUST,
        ANY,
    ),
    "1% gross errors": (_contaminated(0.01), ROBUST, ANY),  # N=100 may draw none
    "5% gross errors": (_contaminated(0.05), ROBUST, ROBUST),
    "10% gross errors": (_contaminated(0.10), REDESCENDING, ROBUST),
    "30% gross errors": (_contaminated(0.30), REDESCENDING, ROBUST),
}

SIZES = (100, 1_000, 10_000, 100_000, 1_000_000)


def accepted(name: str, n: int) -> frozenset[str]:
    _, large, small = GRID[name]
    return large if n >= 10_000 else small
