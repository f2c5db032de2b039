"""``import regloss`` needs only NumPy; the framework front-ends say how to get theirs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BLOCK = "import sys; sys.modules['torch'] = None; sys.modules['jax'] = None; "


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code], capture_output=True, text=True, check=False
    )


def test_import_without_torch_or_jax() -> None:
    proc = _run(
        "import regloss, regloss.numpy as rnp; "
        "print(rnp.mse([1.5, 2.0, 4.0], [1.0, 2.0, 3.0])); "
        "assert 'torch' not in {m for m in sys.modules if sys.modules[m] is not None}"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("0.4166")


def test_torch_frontend_without_torch_explains() -> None:
    proc = _run("import regloss.torch")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "regloss._optional.MissingExtra: regloss.torch needs torch: pip install 'regloss[torch]'"
    )


def test_jax_frontend_without_jax_explains() -> None:
    proc = _run("import regloss.jax")
    assert "regloss.jax needs jax: pip install 'regloss[jax]'" in proc.stderr


def test_check_gradients_without_frameworks_skips_them() -> None:
    proc = _run(
        "import regloss; r = regloss.check_gradients('huber'); "
        "print(r.ok, sorted({c.backend for c in r.checks}), r.skipped)"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "True ['numpy'] ('torch (not installed)', 'jax (not installed)')"
    )


def test_demo_without_torch_says_how_to_compare() -> None:
    proc = _run("from regloss.cli import main; main(['demo'])")
    assert proc.returncode == 0, proc.stderr
    assert "PyTorch is not installed" in proc.stdout


DIAGNOSE, PLOT = "pip install 'regloss[diagnose]'", "pip install 'regloss[plot]'"


def _cli(block: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    code = f"import sys; sys.modules[{block!r}] = None; from regloss.cli import main; "
    code += f"sys.exit(main({argv!r}))"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=cwd
    )


@pytest.mark.parametrize(
    ("block", "argv", "message"),
    [
        ("pyarrow", ["diagnose", "r.csv"], f"reading CSV files needs pyarrow: {DIAGNOSE}"),
        ("pyarrow", ["diagnose", "r.parquet"], f"reading Parquet files needs pyarrow: {DIAGNOSE}"),
        ("matplotlib", ["diagnose", "p.npy", "t.npy", "--report", "r.html"],
         f"writing the report and figures needs matplotlib: {PLOT}"),
        ("matplotlib", ["demo", "--plot", "x.png"], f"--plot needs matplotlib: {PLOT}"),
    ],
)  # fmt: skip
def test_a_missing_extra_is_one_line_and_exit_2(
    tmp_path: Path, block: str, argv: list[str], message: str
) -> None:
    np.save(tmp_path / "p.npy", np.arange(5.0))
    np.save(tmp_path / "t.npy", np.zeros(5))
    (tmp_path / "r.csv").write_text("prediction,target\n1,2\n")
    (tmp_path / "r.parquet").write_bytes(b"PAR1")
    proc = _cli(block, argv, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert proc.stdout == "" and not (tmp_path / "r.html").exists()


def test_without_optional_packages_the_rest_works(tmp_path: Path) -> None:
    np.save(tmp_path / "p.npy", np.random.default_rng(0).normal(size=500))
    np.save(tmp_path / "t.npy", np.zeros(500))
    for block in ("pyarrow", "scipy", "rich", "matplotlib"):
        proc = _cli(block, ["diagnose", "p.npy", "t.npy"], tmp_path)
        assert proc.returncode == 0, (block, proc.stderr)
        assert "recommended loss: mse()" in proc.stdout
    proc = _cli("scipy", ["losses"], tmp_path)
    assert proc.returncode == 0
    assert (
        "'-' under Gaussian efficiency: Gaussian efficiency needs scipy (numerical " in proc.stdout
    )
    proc = _cli("matplotlib", ["demo", "--quick"], tmp_path)
    assert proc.returncode == 0
    assert "figures skipped: they need matplotlib: pip install 'regloss[plot]'" in proc.stdout
    assert not (tmp_path / "regloss-demo").exists()


def test_the_experiment_without_torch_names_the_extra() -> None:
    proc = _run("from regloss.experiment import outlier_experiment; outlier_experiment()")
    assert proc.stderr.strip().splitlines()[-1] == (
        "regloss._optional.MissingExtra: the outlier experiment needs torch: "
        "pip install 'regloss[torch]'"
    )


def test_efficiency_without_scipy_names_the_extra() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['scipy'] = None; import regloss; "
         "regloss.efficiency('huber')"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.stderr.strip().splitlines()[-1] == (
        "regloss._optional.MissingExtra: the Gaussian efficiency needs scipy: "
        "pip install 'regloss[stats]'"
    )
