"""regloss diagnose: known answers, streaming equals in-memory, every bad input, JSON."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from regloss import numpy as rnp
from regloss.diagnostics import diagnose

N = 20000
RNG = np.random.default_rng(11)
Y = RNG.normal(size=N)
NOISE = {
    "gaussian": RNG.normal(scale=0.7, size=N),
    "laplace": RNG.laplace(size=N),
    "contaminated": np.where(RNG.random(N) < 0.1, RNG.normal(scale=25, size=N), RNG.normal(size=N)),
}


def _out(noise: str, **kw: Any) -> dict[str, Any]:
    return diagnose(Y + NOISE[noise], Y, **kw)["outputs"][0]


def test_gaussian_residuals_pass_normality_and_lead_to_mse() -> None:
    d = _out("gaussian")
    assert d["normality"]["p_value"] >= 0.01
    assert d["noise_model"]["favoured"] == "gaussian"
    assert d["recommendation"]["loss"] == "mse"
    assert d["normality"]["robust_scale"] == pytest.approx(0.7, rel=0.05)


def test_laplace_residuals_lead_to_huber_with_scaled_delta() -> None:
    d = _out("laplace")
    assert d["normality"]["p_value"] < 1e-6
    assert d["noise_model"]["favoured"] == "laplace"
    rec = d["recommendation"]
    assert rec["loss"] == "huber"
    # Laplace(b=1): MAD = ln 2, robust scale 1.4826 ln 2 = 1.028; delta in those units
    scale = d["normality"]["robust_scale"]
    assert scale == pytest.approx(1.4826 * np.log(2), rel=0.03)
    assert rec["params"]["delta"] == pytest.approx(rec["constant_in_robust_scales"] * scale)
    # MAE's variance is half MSE's under Laplace noise; Huber with a small delta is close
    assert 0.5 < rec["variance_ratio"] < 0.65
    assert len(rec["reasons"]) >= 4


def test_contaminated_residuals_lead_to_a_redescending_loss() -> None:
    d = _out("contaminated")
    rec = d["recommendation"]
    assert rec["loss"] in ("tukey", "cauchy")
    k = rec["constant_in_robust_scales"]
    assert rec["params"]["c"] == pytest.approx(k * d["normality"]["robust_scale"], rel=1e-12)
    assert d["normality"]["robust_scale"] == pytest.approx(1.1, rel=0.15)  # not inflated
    assert d["outliers"]["sse_share_worst"][0]["share"] > 0.3
    assert any("gross outliers" in r for r in rec["reasons"])


def _between_middle_order_statistics(value: float, x: np.ndarray, tol: float) -> bool:
    """``value`` lies within relative ``tol`` of the span of the two middle order statistics
    (the sketch returns a quantile by rank; np.median averages the two middle values)."""
    s = np.sort(x)
    lo, hi = s[(x.size - 1) // 2], s[x.size // 2]
    return bool(lo - tol * abs(lo) <= value <= hi + tol * abs(hi))


def test_constant_residuals_are_a_bias_not_outliers() -> None:
    y = RNG.normal(size=1000)
    d = diagnose(y + 0.1, y)["outputs"][0]
    assert d["normality"]["constant_residuals"] is True
    assert d["outliers"]["beyond_3_robust_scales"] == 0
    assert d["recommendation"]["loss"] == "mse"
    assert "constant bias" in d["recommendation"]["reasons"][0]


def test_order_statistics_are_within_the_stated_error() -> None:
    r = NOISE["laplace"]
    d = _out("laplace")
    tol = d["approximation"]["order_statistics_relative_error"]
    med = d["normality"]["median_residual"]
    assert _between_middle_order_statistics(med, r, tol)
    assert _between_middle_order_statistics(d["errors"]["median_absolute_error"], np.abs(r), tol)
    mad = d["normality"]["robust_scale"] / 1.4826
    assert _between_middle_order_statistics(mad, np.abs(r - np.median(r)), 3 * tol)
    srt = np.sort(r**2)[::-1]
    for s in d["outliers"]["sse_share_worst"]:
        k = s["fraction"] * N
        exact = srt[: int(k)].sum() / srt.sum()
        assert s["share"] == pytest.approx(exact, rel=0.01)
    top = d["outliers"]["top"]
    order = np.argsort(-(r**2))[: len(top)]
    assert [t["row"] for t in top] == order.tolist()


def test_error_sizes_match_the_losses() -> None:
    p, y = Y + NOISE["gaussian"], Y
    w = RNG.uniform(0.1, 2.0, N)
    e = diagnose(p, y, w)["outputs"][0]["errors"]
    assert e["mse"] == pytest.approx(rnp.mse(p, y, weight=w), rel=1e-13)
    assert e["mae"] == pytest.approx(rnp.mae(p, y, weight=w), rel=1e-13)
    assert e["huber"]["mean"] == pytest.approx(
        rnp.huber(p, y, weight=w, delta=e["huber"]["delta"]), rel=1e-3
    )
    from sklearn.metrics import r2_score

    assert e["r2"] == pytest.approx(r2_score(y, p, sample_weight=w), rel=1e-12)


def _leaves(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_leaves(v, f"{prefix}.{k}"))
        return out
    if isinstance(d, list):
        out = {}
        for i, v in enumerate(d):
            out.update(_leaves(v, f"{prefix}[{i}]"))
        return out
    return {prefix: d}


def _assert_same(a: dict[str, Any], b: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
    la, lb = _leaves(a), _leaves(b)
    assert la.keys() == lb.keys()
    for k in la:
        if any(s in k for s in skip):
            continue
        if isinstance(la[k], float):
            assert la[k] == pytest.approx(lb[k], rel=1e-12, abs=1e-12, nan_ok=True), k
        else:
            assert la[k] == lb[k], k


def test_streamed_equals_in_memory() -> None:
    p = Y + NOISE["contaminated"]
    _assert_same(diagnose(p, Y, chunk_rows=777), diagnose(p, Y, chunk_rows=10**9))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regloss", "diagnose", *args],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("data")
    p = Y[:3000] + NOISE["laplace"][:3000]
    y = Y[:3000]
    w = np.linspace(0.5, 1.5, 3000)
    out = {
        "csv": d / "r.csv",
        "parquet": d / "r.parquet",
        "npz": d / "r.npz",
        "pred": d / "p.npy",
        "target": d / "t.npy",
    }
    with out["csv"].open("w") as f:
        f.write("id,prediction,target,w,p2,t2\n")
        for i, (a, b, c) in enumerate(zip(p, y, w)):
            a, b, c = float(a), float(b), float(c)
            f.write(f"{i},{a!r},{b!r},{c!r},{2 * a!r},{b!r}\n")
    pq.write_table(
        pa.table({"prediction": p, "target": y, "w": w}), out["parquet"], row_group_size=700
    )
    np.savez(out["npz"], prediction=p, target=y)
    np.save(out["pred"], p)
    np.save(out["target"], y)
    return out


def test_every_format_gives_the_same_report(files: dict[str, Path]) -> None:
    reports = []
    for args in (
        [str(files["csv"])],
        [str(files["parquet"])],
        [str(files["npz"])],
        [str(files["pred"]), str(files["target"])],
    ):
        proc = _cli(*args, "--json", "--chunk-rows", "500")
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""  # no progress bar when not a terminal
        reports.append(json.loads(proc.stdout)["outputs"][0])
    for r in reports[1:]:
        _assert_same(reports[0], r, skip=("output",))
    ref = diagnose(Y[:3000] + NOISE["laplace"][:3000], Y[:3000])["outputs"][0]
    _assert_same(reports[0], ref, skip=("output",))


def test_multi_output_and_weight_columns(files: dict[str, Path]) -> None:
    proc = _cli(
        str(files["csv"]),
        "--pred",
        "prediction",
        "--target",
        "target",
        "--pred",
        "p2",
        "--target",
        "t2",
        "--weight",
        "w",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [o["output"] for o in report["outputs"]] == ["prediction vs target", "p2 vs t2"]
    assert report["weight"] == "w"
    data = np.genfromtxt(files["csv"], delimiter=",", names=True)
    assert report["outputs"][1]["errors"]["mse"] == pytest.approx(
        rnp.mse(data["p2"], data["t2"], weight=data["w"]), rel=1e-12
    )


def test_terminal_summary(files: dict[str, Path]) -> None:
    proc = _cli(str(files["parquet"]))
    assert proc.returncode == 0
    assert "recommended loss: huber(delta=" in proc.stdout
    assert "Jarque-Bera p-value" in proc.stdout
    assert "largest contributions" in proc.stdout


def test_json_schema(files: dict[str, Path]) -> None:
    report = json.loads(_cli(str(files["npz"]), "--json").stdout)
    assert set(report) == {
        "schema_version",
        "input",
        "rows_read",
        "rows_omitted",
        "rows_missing",
        "rows_nonfinite",
        "weight",
        "warnings",
        "outputs",
        "nulls",
    }
    out = report["outputs"][0]
    assert set(out) == {
        "output",
        "n",
        "errors",
        "noise_model",
        "normality",
        "outliers",
        "approximation",
        "loss_variance",
        "recommendation",
    }
    assert set(out["errors"]) == {
        "mse",
        "rmse",
        "mae",
        "huber",
        "median_absolute_error",
        "max_error",
        "max_error_row",
        "r2",
    }
    assert set(out["recommendation"]) == {
        "loss",
        "params",
        "constant_in_robust_scales",
        "variance_ratio",
        "variance_ratio_se",
        "reasons",
    }
    assert {c["loss"] for c in out["loss_variance"]["candidates"]} == {
        "mse",
        "huber",
        "mae",
        "cauchy",
        "tukey",
    }
    assert report["schema_version"] == 1


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD: list[Any] = [
    pytest.param(lambda d: [str(d / "missing.csv")], r"missing.csv: no such file", id="missing"),
    pytest.param(lambda d: [str(_write(d / "e.csv", ""))], r"e.csv: the file is empty", id="empty"),
    pytest.param(
        lambda d: [str(_write(d / "h.csv", "prediction,target\n"))],
        r"h.csv: no data rows",
        id="header-only",
    ),
    pytest.param(
        lambda d: [str(_write(d / "c.csv", "a,b\n1,2\n"))],
        r"no columns named 'prediction' and 'target'; choose them with --pred COL "
        r"--target COL from the columns \['a', 'b'\]",
        id="no-default-columns",
    ),
    pytest.param(
        lambda d: [str(_write(d / "x.csv", "prediction,target\n1,2\n3,abc\n5,6\n"))],
        r"x.csv: non-numeric value 'abc' in column 'target' at data row 1 \(line 3\)",
        id="non-numeric",
    ),
    pytest.param(
        lambda d: [str(_write(d / "n.csv", "prediction,target\n1,2\n3,nan\ninf,6\n"))],
        r"2 row\(s\) to skip: 2 with NaN or inf values, the first at data row 1; clean "
        r"them or pass --nan-policy omit",
        id="nan-raise",
    ),
    pytest.param(
        lambda d: [str(_write(d / "a.csv", "prediction,target\nnan,2\n"))],
        r"a.csv: 1 row\(s\) to skip: 1 with NaN or inf",
        id="all-nan",
    ),
    pytest.param(
        lambda d: [
            str(_write(d / "w.csv", "prediction,target,w\n1,2,1\n3,4,-1\n")),
            "--weight",
            "w",
        ],
        r"negative weight -1 at data row 1; weights must be >= 0",
        id="negative-weight",
    ),
    pytest.param(
        lambda d: [str(_write(d / "t.parquet", "not parquet at all"))],
        r"t.parquet: cannot read the Parquet file .*is it truncated or not Parquet\?",
        id="not-parquet",
    ),
    pytest.param(
        lambda d: [str(d / "trunc.parquet")],
        r"trunc.parquet: cannot read the Parquet",
        id="truncated-parquet",
    ),
    pytest.param(
        lambda d: [str(d / "p3.npy"), str(d / "t4.npy")],
        r"prediction has shape \(3, 1\) but target has shape \(4, 1\)",
        id="different-lengths",
    ),
    pytest.param(
        lambda d: [str(_write(d / "f.txt", "x"))], r"unknown file type '.txt'", id="unknown-type"
    ),
    pytest.param(lambda d: [str(d / "p3.npy")], r"\.npy input takes two files", id="one-npy"),
]


@pytest.mark.parametrize(("make_args", "message"), BAD)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, make_args: Any, message: str) -> None:
    np.save(tmp_path / "p3.npy", np.zeros(3))
    np.save(tmp_path / "t4.npy", np.zeros(4))
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"prediction": np.zeros(10000), "target": np.ones(10000)}), good)
    (tmp_path / "trunc.parquet").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    proc = _cli(*make_args(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""  # never a partial report
    assert proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
    import re

    assert re.search(message, proc.stderr), proc.stderr


def test_nan_policy_omit_counts_and_skips(tmp_path: Path) -> None:
    path = _write(tmp_path / "n.csv", "prediction,target\n1,2\n3,nan\ninf,6\n4,4.5\n")
    report = json.loads(_cli(str(path), "--nan-policy", "omit", "--json").stdout)
    assert report["rows_read"] == 4 and report["rows_omitted"] == 2
    assert report["outputs"][0]["n"] == 2
    assert report["outputs"][0]["errors"]["mse"] == pytest.approx((1 + 0.25) / 2)


def test_shipped_dataset_and_experiment() -> None:
    from regloss.experiment import load_diabetes, outlier_experiment

    x, y = load_diabetes()
    assert x.shape == (442, 10) and y.shape == (442,)
    assert y.min() == 25 and y.max() == 346  # the published range of the target
    r = outlier_experiment(levels=(0.0, 0.3), seeds=(0,), steps=80, diagnosis_level=0.3)
    assert r.mean("mse")[1] > 2 * r.mean("mse")[0]
    assert r.mean("tukey")[1] < 1.2 * r.mean("tukey")[0]
    pred, target = r.diagnosis_data
    rec = diagnose(pred, target)["outputs"][0]["recommendation"]
    # 30% one-sided gross errors on ~330 residuals: a robust loss, at a fraction of MSE's
    # variance (which one is within the sampling error of a density estimate at n = 330)
    assert rec["loss"] in ("huber", "mae", "cauchy", "tukey")
    assert rec["variance_ratio"] < 0.5
    with pytest.raises(ValueError, match=r"diagnosis_level 0\.2 is not one of the levels"):
        outlier_experiment(levels=(0.0,), seeds=(0,), steps=1)


def _run_in_terminal(args: list[str], command: str = "diagnose") -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; return (exit code, what stderr showed)."""
    import os
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "regloss", command, *args],
        stdout=subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(), b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_a_terminal_only(files: dict[str, Path]) -> None:
    rc, shown = _run_in_terminal([str(files["parquet"]), "--chunk-rows", "100"])
    assert rc == 0
    assert "reading" in shown  # rich's progress bar, on stderr
    assert re.search(r"\d+%", shown) and " rows" in shown
    rc, shown = _run_in_terminal([str(files["csv"]), "--chunk-rows", "100"])
    assert rc == 0
    assert re.search(r"\d+%", shown) and re.search(r"\d+(\.\d+)?/\d+(\.\d+)? kB", shown)

    rc, shown = _run_in_terminal([str(files["parquet"]), "--chunk-rows", "100", "--quiet"])
    assert rc == 0
    assert shown == ""


def test_step_progress_shows_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """verify's and the demo's bars: count and what runs, on a tty only."""
    import io

    from regloss.cli._progress import steps

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    for tty, shown in ((Tty(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", tty)
        with steps("verifying", 3) as advance:
            for what in ("mse", "huber", "tukey"):
                advance(what)
        text = tty.getvalue()
        assert ("verifying" in text and "3/3" in text) is shown, text


def test_sketches_merge_to_the_sketch_of_all_the_data() -> None:
    from regloss.diagnostics._sketch import RelativeSketch

    a, b = RNG.normal(size=3000), RNG.laplace(size=2000)
    one, left, right = RelativeSketch(), RelativeSketch(), RelativeSketch()
    one.update(np.concatenate([a, b]))
    left.update(a)
    right.update(b)
    left.merge(right)
    np.testing.assert_array_equal(left.keys, one.keys)
    np.testing.assert_allclose(left.stats, one.stats, rtol=1e-12)
    assert left.quantile(0.5) == one.quantile(0.5)


def test_sketch_handles_values_spanning_the_float_range() -> None:
    from regloss.diagnostics._sketch import RelativeSketch

    x = np.array([1e-300, -1e-300, 1e300, -1e300, 0.0, 1.0, 2.0])
    sk = RelativeSketch()
    sk.update(x)  # the key range is too wide to count densely: the sorting path
    lo, hi, stats, cum = sk.table()
    assert cum[-1] == x.size
    assert stats[:, 0].tolist() == [1, 1, 1, 1, 1, 1, 1]
    assert np.all(lo <= hi)
    assert sk.quantile(0.5) == pytest.approx(0.0, abs=1e-299)


def test_plot_sample_is_a_uniform_sample_of_every_chunk_together() -> None:
    """Bottom-k sampling: once the sample is full, a chunk's entrants are drawn directly (a
    binomial count at uniform rows, keys uniform below the sample's largest) instead of a
    key per row. The sample stays exact-size, distinct, consistent with its rows, and
    uniform over all rows (Kolmogorov-Smirnov and a chi-square over the chunks, seeded)."""
    from scipy import stats

    from regloss.diagnostics._accumulate import OutputAccumulator

    n, size, chunk = 300_000, 6_000, 4000
    acc = OutputAccumulator()
    pred = np.arange(n, dtype=np.float64)  # the prediction names its row
    target = np.full(n, 0.5)
    for start in range(0, n, size):
        sl = slice(start, start + size)
        acc.update(pred[sl], target[sl], None, np.arange(n)[sl])
    sample = acc.sample
    assert sample.shape == (chunk, 3)
    rows = sample[:, 1].astype(np.int64)
    assert np.unique(rows).size == chunk
    np.testing.assert_array_equal(sample[:, 2], pred[rows] - 0.5)
    assert stats.kstest((rows + 0.5) / n, "uniform").pvalue > 1e-3
    assert stats.kstest((rows % size + 0.5) / size, "uniform").pvalue > 1e-3  # within chunks
    per_chunk = np.bincount(rows // size, minlength=n // size)
    assert stats.chisquare(per_chunk).pvalue > 1e-3
    # the keys are the 4000 smallest of n uniforms: their largest is Beta(4000, n - 3999)
    largest = float(sample[:, 0].max())
    mean, sd = chunk / (n + 1), math.sqrt(chunk * (n - chunk + 1)) / (n + 1) / math.sqrt(n + 2)
    assert abs(largest - mean) < 5 * sd, (largest, mean, sd)


def test_sketch_switches_from_dense_to_sorted_bins_without_losing_any() -> None:
    """Chunks counted densely per sign, then a chunk spanning the float range (sorted
    bins), merged with a dense sketch: the same bins as one sketch of everything."""
    from regloss.diagnostics._sketch import RelativeSketch

    a = RNG.normal(size=5000)
    b = np.array([1e-300, -1e-300, 1e300, -1e300, 0.0, 3.0])
    c = RNG.laplace(size=3000) * 1e3
    one = RelativeSketch()
    one.update(np.concatenate([a, b, c]))
    step = RelativeSketch()
    for part in (a, b):
        step.update(part)
    dense = RelativeSketch()
    dense.update(c)
    step.merge(dense)
    np.testing.assert_array_equal(step.keys, one.keys)
    np.testing.assert_allclose(step.stats, one.stats, rtol=1e-12)
    assert np.all(np.diff(step.keys) > 0) and step.stats[:, 0].sum() == 8006


@pytest.mark.parametrize("kernels", ["0", "1"])
def test_residuals_up_to_finfo_max_give_a_report(
    kernels: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the compiled pass's property test, in the NumPy path too: a spread beyond
    2^1023 made the moments' unit 2^1024 (OverflowError), and sums whose partial totals pass
    finfo.max made math.fsum raise. Both paths, every chunking."""
    monkeypatch.setenv("REGLOSS_KERNELS", kernels)
    big = np.finfo(np.float64).max
    r = np.array([big, -big, 1.2e308, 0.0, 1.0, -2.0, 3.0, 0.5])
    t = np.zeros_like(r)
    for chunk_rows in (1, 3, 8):
        with np.errstate(over="ignore", invalid="ignore"):
            out = diagnose(r + t, t, chunk_rows=chunk_rows)["outputs"][0]
        assert out["n"] == r.size
        assert out["errors"]["max_error"] == big and out["errors"]["max_error_row"] == 0
        assert out["errors"]["mse"] == np.inf  # the honest total: Σr² overflows
