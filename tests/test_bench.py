"""The speed harness (regloss._bench) and ``regloss bench``: bookkeeping, not speeds.

Speeds are measured in benchmarks/, never asserted in unit tests; these tests check that
contenders alternate, that medians and ratios are what the tables print, and that the
command runs, explains a missing PyTorch and rejects bad options in one line.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

import numpy as np
import pytest
import torch

import regloss
from regloss import _bench
from regloss.cli import main


def test_alternate_flips_the_order_each_round_and_returns_medians() -> None:
    log: list[str] = []
    calls = [lambda: log.append("a"), lambda: log.append("b")]
    times = _bench.alternate(calls, seconds=1e-3, min_rounds=4)
    assert len(times) == 2 and all(t > 0 for t in times)
    assert log[:6] == ["a"] * 3 + ["b"] * 3  # two warm-up calls and a calibration call each
    runs = "".join(x for i, x in enumerate(log[6:], 6) if x != log[i - 1] or i == 6)
    # 4 rounds ab|ba|ab|ba: the batches of one contender meet at the turns -> "ababa"
    # (the same order every round would give "abababab")
    assert runs == "ababa"


def test_alternate_orders_slow_and_fast() -> None:
    fast, slow = _bench.alternate(
        [lambda: None, lambda: sum(range(20_000))], seconds=0.02, min_rounds=3
    )
    assert slow > 10 * fast


@pytest.mark.parametrize(
    ("calls", "seconds", "message"),
    [([], 1.0, "contenders is empty"), ([lambda: None], 0.0, "seconds must be > 0, got 0.0")],
)
def test_alternate_errors(calls: list, seconds: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _bench.alternate(calls, seconds=seconds)


def test_labels_and_formats() -> None:
    assert [_bench.size_label(n) for n in (3, 4, 1024, 1000, 1 << 20)] == [
        "3",
        "4",
        "2^10",
        "1000",
        "2^20",
    ]
    assert _bench.fmt_seconds(12.34e-6) == "12.3 us"
    assert _bench.fmt_seconds(4.567e-3) == "4.57 ms"
    assert _bench.fmt_seconds(1.234) == "1.23 s"
    cell = _bench.Cell({"loss": "mse"}, {"regloss": 2.0, "torch": 4.0})
    assert cell.ratio() == 0.5


def test_numpy_bandwidth_reports_fractions_of_copy() -> None:
    out = _bench.numpy_bandwidth(["mse", "huber"], 4096, np.float32, seconds=0.01)
    assert set(out) == {"copy", "mse", "huber"}
    assert out["copy"] > 1e6 and 0 < out["mse"] < 100 and 0 < out["huber"] < 100


def test_torch_cells_cover_the_grid_and_report_progress() -> None:
    pairs, extras = _bench.torch_peers()
    seen: list[_bench.Cell] = []
    cells = _bench.torch_cells(
        pairs,
        [3, 16],
        dtypes=[torch.float32, torch.float64],
        reductions=["mean", "sum"],
        weighted=[False, True],
        seconds=1e-3,
        extras=extras,
        progress=seen.append,
    )
    assert cells == seen and len(cells) == len(pairs) * 2 * 2 * 2 * 2
    assert {tuple(c.labels) for c in cells} == {("loss", "N", "dtype", "reduction", "weight")}
    assert {c.labels["loss"] for c in cells} == set(pairs)
    assert all(c.seconds["regloss"] > 0 and c.seconds["torch"] > 0 for c in cells)


def test_torch_peers_compute_the_same_losses() -> None:
    """Each pair is the same loss (value), so the ratio compares like with like."""
    pairs, extras = _bench.torch_peers()
    x, y = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    w = torch.rand(50, dtype=torch.float64) + 0.5
    for name, (ours, peer) in pairs.items():
        more = extras.get(name, lambda _: ())(y)
        torch.testing.assert_close(ours(x, y, *more), peer(x, y, *more))
        if name in ("mse", "l1", "smooth_l1", "gaussian_nll"):  # sum(w l) / sum(w) in both
            torch.testing.assert_close(
                ours(x, y, *more, weight=w), peer(x, y, *more, weight=w), msg=name
            )


def test_robust_vs_mse_covers_every_loss() -> None:
    got: list[str] = []
    ratios = _bench.robust_vs_mse(64, seconds=1e-3, progress=lambda n, r: got.append(n))
    assert list(ratios) == got == regloss.available_losses()
    assert ratios["mse"] > 0


def _bench_cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(["bench", "--seconds", "0.002", "--max-log2", "6", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_bench_prints_every_section(capsys: Any) -> None:
    code, out, err = _bench_cli(capsys)
    assert code == 0 and err == ""
    assert re.search(r"generated kernels: \d+ ready \(slowest build or load", out)
    assert "NumPy value_and_grad(out=), N = 2^6 float32: copy bandwidth" in out
    for name in ("mse", "l1", "huber", "smooth_l1", "gaussian_nll"):
        assert f"| {name} | 3 | no |" in out and f"| {name} | 3 | yes |" in out
    assert "Every loss at N = 2^6" in out
    assert all(f"| {name} | " in out for name in regloss.available_losses())


def test_cli_bench_says_when_kernels_are_off(capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("REGLOSS_KERNELS", "0")
    code, out, _ = _bench_cli(capsys, "--section", "robust")
    assert code == 0 and "generated kernels: none (disabled by REGLOSS_KERNELS=0)" in out


def test_cli_bench_one_section(capsys: Any) -> None:
    code, out, _ = _bench_cli(capsys, "--section", "robust")
    assert code == 0 and "NumPy" not in out and "Every loss" in out


def test_cli_bench_without_torch_names_the_extra(capsys: Any, monkeypatch: Any) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a)
    )
    code, out, _ = _bench_cli(capsys)
    assert code == 0
    assert "PyTorch is not installed: pip install 'regloss[torch]' to compare" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seconds", "0"], "regloss: error: --seconds must be > 0, got 0.0"),
        (["--max-log2", "40"], "regloss: error: --max-log2 must be between 4 and 26, got 40"),
        (["--section", "gpu"], "regloss: error: argument --section: invalid choice: 'gpu'"),
    ],
)
def test_cli_bench_bad_options_one_line(capsys: Any, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) if argv[0] == "--section" else _no_exit():
        code = main(["bench", *argv])
        assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


class _no_exit:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return False


def test_prepare_kernels_builds_every_loss_and_nll(monkeypatch: Any) -> None:
    monkeypatch.setenv("REGLOSS_KERNELS", "1")
    built = _bench.prepare_kernels()
    names = regloss.available_losses() + regloss.available_nll_losses()
    assert len(built) == len(names) and all(t >= 0 for t in built.values())
    assert all(any(key.startswith(n + "(") for key in built) for n in names)


def test_cli_bench_says_why_there_are_no_kernels(capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("REGLOSS_KERNELS", "1")
    monkeypatch.setenv("CC", "/nonexistent/cc")
    from regloss._kernels import c

    monkeypatch.setattr(c, "_KERNELS", {})
    monkeypatch.setattr(c, "_PER_CLASS", {})
    monkeypatch.setattr(c, "_READY", {})
    code, out, _ = _bench_cli(capsys, "--section", "numpy")
    assert code == 0
    assert "generated kernels: none (no C compiler: set CC, or install gcc)" in out
