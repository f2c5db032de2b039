"""From accumulated statistics to the diagnosis: error sizes, noise model, normality,
outlier influence and a recommended loss with its constant.

Order statistics are exact while the accumulator kept every residual, from the sketch
beyond; the recommendation ranks losses by the asymptotic variance of their M-estimator
on these residuals (:mod:`regloss.diagnostics._advice`), and the other evidence explains it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _advice
from ._accumulate import OutputAccumulator
from ._sketch import REL_ERROR, RelativeSketch, count_within

__all__ = ["analyze_output"]

MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): MAD of a Gaussian times this is its sigma
GAUSS_BEYOND_3 = 0.0027  # P(|Z| > 3)
MEAN_DEV_TO_SIGMA = math.sqrt(math.pi / 2)  # E|Z| = sqrt(2/π) for a standard Gaussian
SHIFT_NOTE = 0.1  # robust scales between a loss's centre and the mean worth a warning
GROSS_FRACTION = 0.01  # share beyond 6 robust scales that counts as gross outliers


def _mad(
    acc: OutputAccumulator,
    median: float,
    table: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> float:
    """median |r - median| from the signed sketch's ``table``, by bisection on the count
    within (~30 questions of one table)."""
    n = acc.n
    lo, hi = 0.0, max(acc.max_abs + abs(median), 1e-300)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        at_least, at_most = count_within(table, median - mid, median + mid)
        if 0.5 * (at_least + at_most) >= n / 2:
            hi = mid
        else:
            lo = mid
        if hi - lo <= REL_ERROR * 1e-3 * max(hi, 1e-300):
            break
    # Below the sketch's resolution around the median the count cannot shrink further.
    return max(hi, REL_ERROR * abs(median))


def _share_beyond(table: tuple[np.ndarray, ...], fraction: float, sse: float) -> dict[str, float]:
    """Share of the (weighted) SSE owned by the worst ``fraction`` of samples by |r|: whole
    bins from the top, then the matching part of the bin the boundary falls in."""
    _, _, stats, cum = table
    n = cum[-1]
    need = fraction * n
    above = n - cum  # samples in the bins above each bin
    whole = above + stats[:, 0] <= need
    total = float(stats[whole, 2].sum())
    partial = np.where(~whole & (above < need))[0]
    if partial.size:
        b = int(partial[0])
        total += float(stats[b, 2]) * (need - above[b]) / float(stats[b, 0])
    share = total / sse if sse > 0 and math.isfinite(sse) else (0.0 if sse == 0 else math.nan)
    return {"fraction": fraction, "share": share}


def _huber_mean(table: tuple[np.ndarray, ...], delta: float, wsum: float) -> float:
    lo, hi, stats, _ = table
    mid = 0.5 * (lo + hi)
    inner = mid <= delta
    with np.errstate(over="ignore", invalid="ignore"):
        total = 0.5 * stats[inner, 2].sum() + delta * (
            stats[~inner, 3].sum() - 0.5 * delta * stats[~inner, 1].sum()
        )
    return float(total / wsum)


def _exact_table(r: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """|r| sorted, as a sketch table with one 'bin' per residual (exact shares and Huber)."""
    a = np.abs(r)
    order = np.argsort(a, kind="stable")
    a = a[order]
    ws = np.ones_like(a) if w is None else w[order]
    with np.errstate(over="ignore"):
        stats = np.column_stack([np.ones_like(a), ws, ws * a * a, ws * a])
    return a, a, stats, np.cumsum(stats[:, 0])


Kept = tuple[np.ndarray, np.ndarray | None] | None  # acc.exact(), concatenated once


def _order_statistics(acc: OutputAccumulator, data: Kept) -> dict[str, Any]:
    """Median, MAD, the median |r| and counts beyond 3 and 6 robust scales."""
    n = acc.n
    if data is not None:
        r = data[0]
        median = float(np.median(r))
        dev = np.abs(r - median)
        mad = float(np.median(dev))
        scale = MAD_TO_SIGMA * mad
        if scale == 0:  # over half the residuals tie: fall back to the mean deviation
            scale = MEAN_DEV_TO_SIGMA * float(np.mean(dev))
        return {
            "exact": True,
            "median": median,
            "scale": scale,
            "median_abs": float(np.median(np.abs(r))),
            "beyond3": float(np.count_nonzero(dev > 3 * scale)) if scale > 0 else 0.0,
            "beyond3_bound": 0.0,
            "beyond6": float(np.count_nonzero(dev > 6 * scale)) if scale > 0 else 0.0,
            "abs_table": _exact_table(r, data[1]),
        }
    median = acc.sketch.quantile(0.5)
    table = acc.sketch.table()  # built once: the questions below all read it
    scale = MAD_TO_SIGMA * _mad(acc, median, table)
    lo, hi, stats, _ = table
    if scale == 0:
        scale = MEAN_DEV_TO_SIGMA * float(np.dot(stats[:, 0], np.abs(0.5 * (lo + hi) - median)) / n)
    at_least, at_most = count_within(table, median - 3 * scale, median + 3 * scale)
    far_least, far_most = count_within(table, median - 6 * scale, median + 6 * scale)
    return {
        "exact": False,
        "median": median,
        "scale": scale,
        "median_abs": acc.abs_sketch.quantile(0.5),
        "beyond3": (n - 0.5 * (at_least + at_most)) if scale > 0 else 0.0,
        "beyond3_bound": 0.5 * (at_most - at_least),
        "beyond6": (n - 0.5 * (far_least + far_most)) if scale > 0 else 0.0,
        "abs_table": acc.abs_sketch.table(),
    }


def _moments(acc: OutputAccumulator) -> tuple[float, float]:
    """(skewness, excess kurtosis) of the unweighted residuals."""
    n = acc.n
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        c1, c2, c3, c4 = (np.float64(acc.total(k) / n) for k in ("c1", "c2", "c3", "c4"))
        m2 = c2 - c1 * c1
        m3 = c3 - 3 * c1 * c2 + 2 * c1**3
        m4 = c4 - 4 * c1 * c3 + 6 * c1 * c1 * c2 - 3 * c1**4
        skew = float(m3 / m2**1.5) if m2 > 0 else 0.0
        kurt = float(m4 / (m2 * m2) - 3.0) if m2 > 0 else 0.0
    return skew, kurt


def analyze_output(acc: OutputAccumulator, name: str) -> dict[str, Any]:
    """The diagnosis of one output (see :func:`regloss.diagnostics.diagnose`)."""
    n = acc.n
    wsum = acc.total("w")
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        sse = np.float64(acc.total("wr2"))
        mse = float(sse / wsum)
        mae = acc.total("wabs") / wsum
        rmse = float(np.sqrt(mse))
        sst = np.float64(acc.total("wy2")) - np.float64(acc.total("wy")) ** 2 / wsum
        r2 = float(1.0 - sse / sst) if sst > 0 else float("nan")
    skew, kurt = _moments(acc)
    # Residuals equal up to rounding (a pure bias): no spread to test or to scale a loss by.
    spread = acc.r_max - acc.r_min
    constant = spread <= 1e-12 * max(abs(acc.r_max), abs(acc.r_min))
    data = acc.exact()
    order = _order_statistics(acc, data)
    median = order["median"]
    if constant:
        median = acc.r_min if acc.r_min == acc.r_max else order["median"]
    scale = 0.0 if constant else order["scale"]
    # Jarque-Bera's statistic is chi-squared with 2 degrees of freedom: p = exp(-JB/2).
    jb = n / 6.0 * (skew**2 + kurt**2 / 4.0)
    jb_p = math.exp(-jb / 2) if math.isfinite(jb) else 0.0
    sigma, b = rmse, mae
    # Gaussian: -n/2 log(2πσ²) - n/2; Laplace: -n log(2b) - n (logs of σ and b: no overflow)
    ll_gauss = _loglik(n, sigma, 0.5 * math.log(2 * math.pi) + 0.5)
    ll_laplace = _loglik(n, b, math.log(2) + 1.0)
    aic_gauss, aic_laplace = 2 - 2 * ll_gauss, 2 - 2 * ll_laplace
    beyond = order["beyond3"] if scale > 0 else 0.0
    gross = order["beyond6"] if scale > 0 else 0.0
    shares = [_share_beyond(order["abs_table"], f, float(sse)) for f in (0.01, 0.001)]
    delta = 1.345 * scale if scale > 0 else 1.345 * rmse
    top = sorted(acc.heap, reverse=True)
    out: dict[str, Any] = {
        "output": name,
        "n": n,
        "errors": {
            "mse": mse,
            "rmse": rmse,
            "mae": mae,
            "huber": {"delta": delta, "mean": _huber_mean(order["abs_table"], delta, wsum)},
            "median_absolute_error": order["median_abs"],
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
            "constant_residuals": constant,
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
            "order_statistics_exact": order["exact"],
            "order_statistics_relative_error": 0.0 if order["exact"] else REL_ERROR,
            "beyond_3_count_uncertainty": order["beyond3_bound"],
        },
    }
    mean = acc.total("wr") / wsum if math.isfinite(acc.total("wr")) else median
    out["loss_variance"] = _loss_variance(acc, data, median, scale, constant)
    out["recommendation"] = recommend(out, mean)
    return out


def _loglik(n: int, scale: float, const: float) -> float:
    """-n (log scale + const): the maximised log-likelihood of a location-scale family."""
    if not scale > 0:
        return math.inf
    if not math.isfinite(scale):
        return -math.inf
    return -n * (math.log(scale) + const)


def _loss_variance(
    acc: OutputAccumulator, data: Kept, median: float, scale: float, constant: bool
) -> dict[str, Any]:
    """Each loss family's best variance ratio to MSE on these residuals (see _advice)."""
    tied = _point_mass(acc, data, median, scale)
    out: dict[str, Any] = {
        "criterion": _advice.CRITERION,
        "candidates": [],
        "choice": None,
        "share_at_median": tied,
    }
    if constant or not scale > 0 or tied >= 0.5:
        return out
    # A histogram about the centre: of r − median when the residuals were kept (the same
    # however the input was chunked), else the streamed one of r − (first chunk's mean).
    centre = median
    if data is not None:
        sketch = RelativeSketch()
        with np.errstate(over="ignore", invalid="ignore"):
            sketch.update(data[0] - median)
    else:
        assert acc.shift_r is not None
        sketch, centre = acc.centred, median - acc.shift_r
    lo, hi, stats, _ = sketch.table()
    with np.errstate(over="ignore", invalid="ignore"):
        z = (0.5 * lo + 0.5 * hi - (centre if data is None else 0.0)) / scale
    keep = np.isfinite(z)
    with np.errstate(all="ignore"):  # residuals near finfo.max: inf ratios drop out
        cands = _advice.rank(z[keep], stats[keep, 0], mae=tied <= _advice.POINT_MASS)
        choice, families = _advice.choose(cands, stats[keep, 0])
    out["candidates"] = [_candidate(c, scale) for c in families]
    out["choice"] = _candidate(choice, scale)
    return out


def _point_mass(acc: OutputAccumulator, data: Kept, median: float, scale: float) -> float:
    """The share of residuals exactly at the median (ties: integer or rounded residuals,
    exact predictions). From the sketch only where its bin there is narrow against the
    scale; otherwise the values cannot be told apart and 0 is returned."""
    if data is not None:
        return float(np.count_nonzero(data[0] == median)) / acc.n
    lo, hi, stats, _ = acc.sketch.table()
    at = np.flatnonzero((lo <= median) & (median <= hi))
    if at.size and hi[at[0]] - lo[at[0]] <= 1e-3 * scale:
        return float(stats[at[0], 0]) / acc.n
    return 0.0


def _candidate(c: _advice.Candidate, scale: float) -> dict[str, Any]:
    return {
        "loss": c.loss,
        "params": c.params(scale),
        "constant_in_robust_scales": c.constant,
        "variance_ratio": c.ratio,
        "variance_ratio_se": c.se,
        "centre_in_robust_scales": c.location,
    }


def _tails(kurt: float) -> str:
    if not math.isfinite(kurt) or kurt > 0.5:
        return "heavier than Gaussian"
    return "lighter than Gaussian" if kurt < -0.5 else "close to Gaussian"


def recommend(d: dict[str, Any], mean: float) -> dict[str, Any]:
    """The loss with the smallest variance ratio (preferring MSE, then the simpler loss,
    within :data:`_advice.MIN_GAIN` or two standard errors), its constant in robust scales
    and in data units, and the evidence that explains it."""
    norm, out, noise = d["normality"], d["outliers"], d["noise_model"]
    base = {"constant_in_robust_scales": None, "variance_ratio": 1.0, "variance_ratio_se": 0.0}
    if norm["constant_residuals"]:
        bias = norm["median_residual"]
        return {
            "loss": "mse",
            "params": {},
            **base,
            "reasons": [
                f"every residual equals {bias!r}: a constant bias, on which every loss agrees; "
                "remove the bias (no loss choice changes it)"
            ],
        }
    scale = norm["robust_scale"]
    lv = d["loss_variance"]
    choice, cands = lv["choice"], lv["candidates"]
    others = [c for c in cands if c["loss"] != "mse"]
    best = min(others, key=lambda c: c["variance_ratio"]) if others else None
    kurt, skew = norm["excess_kurtosis"], norm["skewness"]
    reasons = []
    tied = lv["share_at_median"]
    if choice is None or choice["loss"] == "mse":
        if tied >= 0.5:
            reasons.append(
                f"{100 * tied:.1f}% of the residuals equal {norm['median_residual']!r} exactly: "
                "a point mass, around which no loss's precision can be compared; MSE, the "
                "maximum-likelihood loss under Gaussian noise, by default"
            )
        elif best is None:
            reasons.append("no robust loss has a valid M-estimate on these residuals")
        elif best["variance_ratio"] >= 1:
            reasons.append(
                f"every robust loss would be less precise than MSE on residuals like these "
                f"(the closest, {_label(best)}, has {best['variance_ratio']:.2f}x MSE's variance)"
            )
        else:
            reasons.append(
                f"no loss gains enough to leave MSE: the best, {_label(best)}, would have "
                f"{best['variance_ratio']:.3f}x MSE's variance (± "
                f"{2 * best['variance_ratio_se']:.3f}); a switch needs a gain over "
                f"{100 * _advice.MIN_GAIN:.0f}% beyond two standard errors"
            )
        result: dict[str, Any] = {"loss": "mse", "params": {}, **base}
    else:
        ratio, se = choice["variance_ratio"], choice["variance_ratio_se"]
        reasons.append(
            f"{_label(choice)} would estimate with {ratio:.3f}x the variance of MSE (± "
            f"{2 * se:.3f}) on residuals like these: {100 * (1 - ratio):.0f}% less error "
            "variance from the same data"
        )
        if best is not None and best["loss"] != choice["loss"]:
            reasons.append(
                f"{_label(best)} reaches {best['variance_ratio']:.3f}x, within "
                f"{100 * _advice.MIN_GAIN:.0f}% or two standard errors: the simpler loss is "
                "preferred"
            )
        result = {
            "loss": choice["loss"],
            "params": choice["params"],
            "constant_in_robust_scales": choice["constant_in_robust_scales"],
            "variance_ratio": ratio,
            "variance_ratio_se": se,
        }
        for param, value in choice["params"].items():
            k = choice["constant_in_robust_scales"]
            reasons.append(
                f"{param} = {k:g} robust scales = {k:g} x {scale:.4g} = {value:.4g} in the "
                "residuals' units (rescale it if you train on standardised targets)"
            )
        # Skew as it matters here: how far the loss's centre lies from the mean.
        shift = (mean - norm["median_residual"]) / scale - choice["centre_in_robust_scales"]
        if abs(shift) > SHIFT_NOTE:
            reasons.append(
                f"the residuals are skewed: {choice['loss']}'s centre lies {abs(shift):.2f} "
                "robust scales from their mean, so it fits a different centre than MSE; keep "
                "MSE if you need the conditional mean (totals, expectations)"
            )
    if _advice.POINT_MASS < tied < 0.5:
        reasons.append(
            f"MAE is not ranked: {100 * tied:.1f}% of the residuals equal the median exactly, "
            "where its variance formula (which needs a density there) does not hold"
        )
    reasons.append(
        f"tails {_tails(kurt)} (excess kurtosis {kurt:.2f}, skewness {skew:.2f}); "
        f"Jarque-Bera p = {norm['p_value']:.3g}"
        + (
            f" (on {d['n']} residuals a test rejects departures too small to matter: the "
            "variance ratios measure how much they matter)"
            if norm["p_value"] < 0.01 and result["loss"] == "mse"
            else ""
        )
    )
    frac, gross = out["beyond_3_robust_scales_fraction"], out["beyond_6_robust_scales_fraction"]
    reasons.append(
        f"{100 * frac:.2f}% of residuals lie beyond 3 robust scales "
        f"(Gaussian noise: {100 * GAUSS_BEYOND_3:.2f}%)"
    )
    if frac > 5 * GAUSS_BEYOND_3 and kurt < 1.0:
        reasons.append(
            f"so many beyond 3 robust scales with light kurtosis ({kurt:.2f}) is a separate "
            "cluster of gross errors, not a long tail"
        )
    if gross > GROSS_FRACTION:
        reasons.append(
            f"{100 * gross:.2f}% lie beyond 6 robust scales: gross outliers"
            + (
                "; a redescending loss gives them (nearly) zero weight"
                if result["loss"] in ("cauchy", "tukey")
                else ""
            )
        )
    reasons.append(
        f"the worst 1% of samples own {100 * out['sse_share_worst'][0]['share']:.1f}% "
        "of the squared error"
    )
    aic = f"AIC favours {noise['favoured']} noise"
    if noise["favoured"] == "laplace" and result["loss"] == "mse":
        aic += (
            " over Gaussian, but compares only those two noise models; the variance ratios "
            "compare the losses directly"
        )
    reasons.append(aic)
    return {**result, "reasons": reasons}


def _label(c: dict[str, Any]) -> str:
    params = ", ".join(f"{k}={c['constant_in_robust_scales']:g} s" for k in c["params"])
    return f"{c['loss']}({params})" if params else c["loss"]
