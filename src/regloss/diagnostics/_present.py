"""The rows every presentation of a diagnosis shows (terminal summary and HTML report),
built once so the two cannot disagree."""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "approximation_text",
    "error_rows",
    "evidence_rows",
    "fmt",
    "recommendation_text",
    "top_rows",
]


def fmt(x: Any) -> str:
    """Four significant digits for finite floats, ``str`` for anything else."""
    return f"{x:.4g}" if isinstance(x, float) and math.isfinite(x) else str(x)


def error_rows(out: dict[str, Any]) -> list[list[str]]:
    e = out["errors"]
    return [
        ["MSE", fmt(e["mse"])],
        ["RMSE", fmt(e["rmse"])],
        ["MAE", fmt(e["mae"])],
        [f"Huber (delta {fmt(e['huber']['delta'])})", fmt(e["huber"]["mean"])],
        ["median absolute error", fmt(e["median_absolute_error"])],
        [f"max error (row {e['max_error_row']})", fmt(e["max_error"])],
        ["R^2", fmt(e["r2"])],
    ]


def evidence_rows(out: dict[str, Any]) -> list[list[str]]:
    nm, no, ol = out["noise_model"], out["normality"], out["outliers"]
    g, lp = nm["gaussian"], nm["laplace"]
    return [
        [
            "Gaussian sigma / log-likelihood / AIC",
            f"{fmt(g['sigma'])} / {fmt(g['log_likelihood'])} / {fmt(g['aic'])}",
        ],
        [
            "Laplace b / log-likelihood / AIC",
            f"{fmt(lp['b'])} / {fmt(lp['log_likelihood'])} / {fmt(lp['aic'])}",
        ],
        ["skewness / excess kurtosis", f"{no['skewness']:.3f} / {no['excess_kurtosis']:.3f}"],
        ["Jarque-Bera p-value", f"{no['p_value']:.3g}"],
        ["robust scale (1.4826 MAD) vs sigma", f"{fmt(no['robust_scale'])} vs {fmt(g['sigma'])}"],
        [
            "SSE share of worst 1% / 0.1%",
            " / ".join(f"{100 * s['share']:.1f}%" for s in ol["sse_share_worst"]),
        ],
        [
            "beyond 3 robust scales",
            f"{ol['beyond_3_robust_scales']:.0f} "
            f"({100 * ol['beyond_3_robust_scales_fraction']:.2f}%)",
        ],
    ]


VARIANCE_HEADERS = ["loss (best constant)", "variance vs MSE", "± 2 s.e."]


def variance_rows(out: dict[str, Any]) -> list[list[str]]:
    """Each loss family at its best constant: the M-estimator's variance relative to MSE's
    on these residuals (below 1: more precise), the chosen one marked."""
    choice = out["loss_variance"]["choice"]
    rows = []
    for c in out["loss_variance"]["candidates"]:
        k = c["constant_in_robust_scales"]
        name = c["loss"]
        if k is not None:
            ((param, value),) = c["params"].items()
            name += f"({param}={k:g} s = {fmt(value)})"
        mark = "  <- recommended" if choice is not None and c["loss"] == choice["loss"] else ""
        rows.append(
            [name + mark, f"{c['variance_ratio']:.3f}", f"{2 * c['variance_ratio_se']:.3f}"]
        )
    return rows


def top_rows(out: dict[str, Any]) -> list[list[Any]]:
    return [
        [t["row"], fmt(t["contribution"]), fmt(t["prediction"]), fmt(t["target"])]
        for t in out["outliers"]["top"]
    ]


def recommendation_text(out: dict[str, Any]) -> str:
    """``tukey(c=844.6)  (c = 4.685 robust scales x 180.3)``: data units, then scales."""
    rec = out["recommendation"]
    params = ", ".join(f"{k}={fmt(v)}" for k, v in rec["params"].items())
    text = f"{rec['loss']}({params})"
    k = rec.get("constant_in_robust_scales")
    if k is not None and rec["params"]:
        name = next(iter(rec["params"]))
        scale = fmt(out["normality"]["robust_scale"])
        text += f"  ({name} = {k:g} robust scales x {scale})"
    return text


def approximation_text(out: dict[str, Any]) -> str:
    """Where the order statistics come from."""
    approx = out["approximation"]
    if approx["order_statistics_exact"]:
        return "median, MAD, shares and counts are exact; sums are exact"
    rel = approx["order_statistics_relative_error"]
    return (
        f"median, MAD, shares and counts come from a sketch with {100 * rel:.2g}% relative "
        "error; sums are exact"
    )
