"""From accumulated statistics to the diagnosis: error sizes, noise model, normality,
outlier influence and a recommended loss with its constant."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..stats import tuning_constant
from ._accumulate import OutputAccumulator
from ._sketch import REL_ERROR

__all__ = ["analyze_output"]

MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): MAD of a Gaussian times this is its sigma
GAUSS_BEYOND_3 = 0.0027  # P(|Z| > 3)
GROSS_FRACTION = 0.01  # share beyond 6 robust scales that counts as contamination


def _mad(acc: OutputAccumulator, median: float) -> float:
    """median |r - median| from the signed sketch, by bisection on the count within."""
    n = acc.n
    lo, hi = 0.0, max(acc.max_abs + abs(median), 1e-300)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        at_least, at_most = acc.sketch.count_within(median - mid, median + mid)
        if 0.5 * (at_least + at_most) >= n / 2:
            hi = mid
        else:
            lo = mid
        if hi - lo <= REL_ERROR * 1e-3 * max(hi, 1e-300):
            break
    # Below the sketch's resolution around the median the count cannot shrink further.
    return max(hi, REL_ERROR * abs(median))


def _share_beyond(acc: OutputAccumulator, fraction: float, sse: float) -> dict[str, float]:
    """Share of the (weighted) SSE owned by the worst ``fraction`` of samples by |r|: whole
    sketch bins from the top, then the matching part of the bin the boundary falls in."""
    _, _, stats, cum = acc.abs_sketch.table()
    n = cum[-1]
    need = fraction * n
    above = n - cum  # samples in the bins above each bin
    whole = above + stats[:, 0] <= need
    total = float(stats[whole, 2].sum())
    partial = np.where(~whole & (above < need))[0]
    if partial.size:
        b = int(partial[0])
        total += float(stats[b, 2]) * (need - above[b]) / float(stats[b, 0])
    return {"fraction": fraction, "share": total / sse if sse > 0 else 0.0}


def _huber_mean(acc: OutputAccumulator, delta: float, wsum: float) -> float:
    lo, hi, stats, _ = acc.abs_sketch.table()
    mid = 0.5 * (lo + hi)
    inner = mid <= delta
    total = 0.5 * stats[inner, 2].sum() + delta * (
        stats[~inner, 3].sum() - 0.5 * delta * stats[~inner, 1].sum()
    )
    return float(total / wsum)


def analyze_output(acc: OutputAccumulator, name: str) -> dict[str, Any]:
    """The diagnosis of one output (see :func:`regloss.diagnostics.diagnose`)."""
    n = acc.n
    wsum = acc.total("w")
    mse = acc.total("wr2") / wsum
    mae = acc.total("wabs") / wsum
    rmse = math.sqrt(mse)
    # unweighted central moments about the shift, then about the mean
    c1, c2, c3, c4 = (acc.total(k) / n for k in ("c1", "c2", "c3", "c4"))
    m2 = c2 - c1 * c1
    m3 = c3 - 3 * c1 * c2 + 2 * c1**3
    m4 = c4 - 4 * c1 * c3 + 6 * c1 * c1 * c2 - 3 * c1**4
    skew = m3 / m2**1.5 if m2 > 0 else 0.0
    kurt = m4 / (m2 * m2) - 3.0 if m2 > 0 else 0.0
    sst = acc.total("wy2") - acc.total("wy") ** 2 / wsum
    r2 = 1.0 - acc.total("wr2") / sst if sst > 0 else float("nan")
    median = acc.sketch.quantile(0.5)
    # Residuals equal up to rounding (a pure bias): no spread to test or to scale a loss by.
    constant = (
        m2 <= (1e-12 * max(abs(c1 + acc.shift_r), 1e-300)) ** 2 if acc.shift_r is not None else True
    )
    mad = 0.0 if constant else _mad(acc, median)
    scale = MAD_TO_SIGMA * mad
    median_abs = acc.abs_sketch.quantile(0.5)

    from scipy import stats as sps

    jb = n / 6.0 * (skew**2 + kurt**2 / 4.0)
    jb_p = float(sps.chi2.sf(jb, 2))
    sigma, b = rmse, mae
    ll_gauss = -n / 2 * math.log(2 * math.pi * sigma**2) - n / 2 if sigma > 0 else math.inf
    ll_laplace = -n * math.log(2 * b) - n if b > 0 else math.inf
    aic_gauss, aic_laplace = 2 - 2 * ll_gauss, 2 - 2 * ll_laplace
    at_least, at_most = acc.sketch.count_within(median - 3 * scale, median + 3 * scale)
    beyond = (n - 0.5 * (at_least + at_most)) if scale > 0 else 0.0
    beyond_bound = 0.5 * (at_most - at_least)
    far_least, far_most = acc.sketch.count_within(median - 6 * scale, median + 6 * scale)
    gross = (n - 0.5 * (far_least + far_most)) if scale > 0 else 0.0
    sse = acc.total("wr2")
    shares = [_share_beyond(acc, f, sse) for f in (0.01, 0.001)]
    delta = 1.345 * scale if scale > 0 else 1.345 * rmse
    top = sorted(acc.heap, reverse=True)
    out: dict[str, Any] = {
        "output": name,
        "n": n,
        "errors": {
            "mse": mse,
            "rmse": rmse,
            "mae": mae,
            "huber": {"delta": delta, "mean": _huber_mean(acc, delta, wsum)},
            "median_absolute_error": median_abs,
            "max_error": acc.max_abs,
            "max_error_row": acc.max_row,
            "r2": r2,
        },
        "noise_model": {
            "gaussian": {"sigma": sigma, "log_likelihood": ll_gauss, "aic": aic_gauss},
            "laplace": {"b": b, "log_likelihood": ll_laplace, "aic": aic_laplace},
            "favoured": "gaussian" if aic_gauss <= aic_laplace else "laplace",
        },
        "normality": {
            "skewness": skew,
            "excess_kurtosis": kurt,
            "test": "Jarque-Bera",
            "statistic": jb,
            "p_value": jb_p,
            "robust_scale": scale,
            "median_residual": median,
        },
        "outliers": {
            "sse_share_worst": shares,
            "beyond_3_robust_scales": beyond,
            "beyond_3_robust_scales_fraction": beyond / n,
            "beyond_6_robust_scales_fraction": gross / n,
            "top": [
                {"row": row, "contribution": c, "prediction": p, "target": t}
                for c, row, p, t in top
            ],
        },
        "approximation": {
            "order_statistics_relative_error": REL_ERROR,
            "beyond_3_count_uncertainty": beyond_bound,
        },
    }
    out["normality"]["constant_residuals"] = constant
    out["recommendation"] = recommend(out)
    return out


def recommend(d: dict[str, Any]) -> dict[str, Any]:
    """A loss from the registry, its constant scaled to the data, and the reasons."""
    norm, out, noise = d["normality"], d["outliers"], d["noise_model"]
    if norm["constant_residuals"]:
        bias = norm["median_residual"]
        return {
            "loss": "mse",
            "params": {},
            "reasons": [
                f"every residual equals {bias:.6g}: a constant bias, on which every loss agrees; "
                "remove the bias (no loss choice changes it)"
            ],
        }
    scale = norm["robust_scale"] or d["errors"]["rmse"]
    frac = out["beyond_3_robust_scales_fraction"]
    gross = out["beyond_6_robust_scales_fraction"]
    gaussian_ok = norm["p_value"] >= 0.01
    # Contamination, as opposed to smooth heavy tails (which call for Huber): mass 6 robust
    # scales out (Gaussian noise has ~2e-9 there, Laplace ~0.2%), or many residuals beyond 3
    # robust scales while the kurtosis stays light — a separate cluster, not a long tail
    # (Laplace noise has 4.6% beyond 3 scales but excess kurtosis 3).
    cluster = frac > 5 * GAUSS_BEYOND_3 and norm["excess_kurtosis"] < 1.0
    contaminated = gross > GROSS_FRACTION or cluster
    heavy = norm["excess_kurtosis"] > 1.0 or noise["favoured"] == "laplace"
    reasons = []
    if gaussian_ok:
        reasons.append(
            f"the residuals pass the normality test (Jarque-Bera p = "
            f"{norm['p_value']:.3g}), so MSE is the maximum-likelihood loss"
        )
    else:
        reasons.append(
            f"normality is rejected (Jarque-Bera p = {norm['p_value']:.3g}, "
            f"skewness {norm['skewness']:.2f}, excess kurtosis "
            f"{norm['excess_kurtosis']:.2f})"
        )
    reasons.append(
        f"{100 * frac:.2f}% of residuals lie beyond 3 robust scales "
        f"(Gaussian noise: {100 * GAUSS_BEYOND_3:.2f}%)"
    )
    if gross > GROSS_FRACTION:
        reasons.append(
            f"{100 * gross:.2f}% lie beyond 6 robust scales: gross outliers, "
            "not a heavy-tailed noise distribution"
        )
    elif cluster:
        reasons.append(
            f"that excess beyond 3 robust scales comes with light kurtosis "
            f"({norm['excess_kurtosis']:.2f}): a separate cluster of gross outliers, "
            "not a long tail"
        )
    reasons.append(
        f"the worst 1% of samples own {100 * out['sse_share_worst'][0]['share']:.1f}% "
        "of the squared error"
    )
    reasons.append(f"AIC favours {noise['favoured']} noise")
    if contaminated:
        c = tuning_constant("tukey") * scale
        choice = {"loss": "tukey", "params": {"c": c}}
        reasons.append(
            f"a redescending loss gives gross outliers zero weight; Tukey c = 4.685 x "
            f"robust scale {scale:.4g} = {c:.4g} keeps 95% Gaussian efficiency"
        )
    elif gaussian_ok and not heavy:
        choice = {"loss": "mse", "params": {}}
    else:
        delta = tuning_constant("huber") * scale
        choice = {"loss": "huber", "params": {"delta": delta}}
        reasons.append(
            f"heavy tails without gross outliers: Huber delta = 1.345 x robust scale "
            f"{scale:.4g} = {delta:.4g} keeps 95% efficiency under Gaussian noise"
        )
    return {**choice, "reasons": reasons}
