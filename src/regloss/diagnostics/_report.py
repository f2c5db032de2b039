"""Figures (matplotlib) and the self-contained HTML report of a diagnosis.

The HTML file embeds its figures as PNG data URIs and its style inline: it loads nothing
from anywhere (tested in headless Chromium with the network off). Files are written to a
temporary name and renamed, so an interrupted run never leaves half a report.
"""

from __future__ import annotations

import base64
import html
import io
import os
import tempfile
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from .._optional import pyplot
from ._accumulate import OutputAccumulator
from ._present import (
    VARIANCE_HEADERS,
    approximation_text,
    error_rows,
    evidence_rows,
    recommendation_text,
    top_rows,
    variance_rows,
)

__all__ = ["figures", "write_html", "write_pngs"]

FIGURES = (
    ("histogram", "Residuals with the fitted Gaussian and Laplace densities"),
    ("qq", "Normal QQ plot of the residuals"),
    ("sse_share", "Share of the squared error owned by the worst fraction of samples"),
    ("residuals_vs_predictions", "Residuals against predictions (uniform sample)"),
)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _gauss_pdf(x: np.ndarray, sigma: float) -> np.ndarray:
    return np.asarray(np.exp(-0.5 * (x / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi)))


def figures(acc: OutputAccumulator, out: dict[str, Any]) -> dict[str, bytes]:
    """The four figures of one output as PNG bytes."""
    with np.errstate(all="ignore"):  # residuals beyond float64's squares draw as they can
        return _figures(acc, out)


def _figures(acc: OutputAccumulator, out: dict[str, Any]) -> dict[str, bytes]:
    plt = pyplot("drawing the diagnosis figures")

    sigma = out["noise_model"]["gaussian"]["sigma"]
    b = out["noise_model"]["laplace"]["b"]
    lo, hi, stats, cum = acc.sketch.table()
    mid = 0.5 * (lo + hi)
    pngs: dict[str, bytes] = {}

    def save(fig: Any, name: str) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        pngs[name] = buf.getvalue()

    # 1. histogram from the sketch, regrouped into display bins
    span = max(4 * max(sigma, 1e-300), 1e-300)
    edges = np.linspace(-span, span, 81)
    counts, _ = np.histogram(mid, bins=edges, weights=stats[:, 0])
    width = edges[1] - edges[0]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.bar(
        edges[:-1],
        counts / (cum[-1] * width),
        width=width,
        align="edge",
        alpha=0.5,
        label="residuals",
    )
    x = np.linspace(-span, span, 400)
    ax.plot(x, _gauss_pdf(x, sigma), label=f"Gaussian (sigma={sigma:.3g})")
    ax.plot(x, np.exp(-np.abs(x) / b) / (2 * b), label=f"Laplace (b={b:.3g})")
    ax.set_xlabel("residual (prediction - target)")
    ax.set_ylabel("density")
    ax.legend()
    save(fig, "histogram")

    # 2. QQ plot: sketch quantiles against standard normal quantiles
    probs = (np.arange(1, 200) - 0.5) / 199
    sample_q = np.array(
        [mid[min(int(np.searchsorted(cum, p * cum[-1])), mid.size - 1)] for p in probs]
    )
    theo = np.array([NormalDist().inv_cdf(float(q)) for q in probs])
    scale = out["normality"]["robust_scale"] or sigma
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.scatter(theo, sample_q, s=6)
    ax.plot(
        theo,
        out["normality"]["median_residual"] + scale * theo,
        color="C1",
        label="Gaussian with the robust scale",
    )
    ax.set_xlabel("standard normal quantile")
    ax.set_ylabel("residual quantile")
    ax.legend()
    save(fig, "qq")

    # 3. SSE share against the fraction of samples (largest |r| first)
    _, _, astats, _ = acc.abs_sketch.table()
    top_first = astats[::-1]
    frac = np.cumsum(top_first[:, 0]) / top_first[:, 0].sum()
    share = np.cumsum(top_first[:, 2]) / max(top_first[:, 2].sum(), 1e-300)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(np.concatenate([[0], frac]), np.concatenate([[0], share]))
    even = np.concatenate([[0.0], np.logspace(-5, 0, 200)])
    ax.plot(even, even, ls="--", color="grey", label="every sample alike")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel("fraction of samples (largest errors first)")
    ax.set_ylabel("share of squared error")
    ax.legend()
    save(fig, "sse_share")

    # 4. residuals against predictions, from the uniform sample
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.scatter(acc.sample[:, 1], acc.sample[:, 2], s=4, alpha=0.5)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("residual")
    save(fig, "residuals_vs_predictions")
    return pngs


def write_pngs(directory: Path, pngs_by_output: list[dict[str, bytes]]) -> list[Path]:
    written = []
    for i, pngs in enumerate(pngs_by_output):
        for name, data in pngs.items():
            path = directory / f"output{i}_{name}.png"
            _atomic_write(path, data)
            written.append(path)
    return written


def _row(cells: list[Any], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in cells) + "</tr>"


def _table(caption: str, headers: list[str], rows: list[list[Any]]) -> str:
    return (
        f"<table><caption>{html.escape(caption)}</caption>"
        + _row(headers, "th")
        + "".join(_row(r) for r in rows)
        + "</table>"
    )


def write_html(path: Path, report: dict[str, Any], pngs_by_output: list[dict[str, bytes]]) -> None:
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>regloss diagnose: {html.escape(report['input'])}</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:auto;padding:1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;"
        "padding:3px 8px;text-align:right}caption{font-weight:bold;text-align:left}"
        "img{max-width:100%;display:block;margin:1em 0}</style></head><body>",
        f"<h1>regloss diagnose</h1><p>{html.escape(report['input'])}: "
        f"{report['rows_read']} rows, {report['rows_omitted']} omitted.</p>",
    ]
    parts += [
        f"<p class='warning'><b>Warning:</b> {html.escape(w)}</p>"
        for w in report.get("warnings", [])
    ]
    for out, pngs in zip(report["outputs"], pngs_by_output):
        rec = out["recommendation"]
        parts.append(f"<h2>{html.escape(out['output'])} ({out['n']} residuals)</h2>")
        parts.append(
            f"<p class='recommendation'><b>Recommended loss: "
            f"{html.escape(recommendation_text(out))}</b></p><ul>"
            + "".join(f"<li>{html.escape(r)}</li>" for r in rec["reasons"])
            + "</ul>"
        )
        if out["loss_variance"]["candidates"]:
            parts.append(
                _table(
                    "Each loss's variance relative to MSE's on these residuals",
                    VARIANCE_HEADERS,
                    variance_rows(out),
                )
            )
        parts.append(_table("Error sizes", ["measure", "value"], error_rows(out)))
        parts.append(_table("Noise model and normality", ["evidence", "value"], evidence_rows(out)))
        parts.append(
            _table("Largest contributions", ["row", "r^2", "prediction", "target"], top_rows(out))
        )
        for name, caption in FIGURES:
            data = base64.b64encode(pngs[name]).decode("ascii")
            parts.append(
                f"<figure><img class='plot' alt='{html.escape(caption)}' "
                f"src='data:image/png;base64,{data}'><figcaption>"
                f"{html.escape(caption)}</figcaption></figure>"
            )
        note = approximation_text(out)
        parts.append(f"<p><small>{html.escape(note[0].upper() + note[1:])}.</small></p>")
    parts.append("</body></html>")
    _atomic_write(path, "".join(parts).encode("utf-8"))
