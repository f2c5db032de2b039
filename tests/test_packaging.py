"""``import regloss`` needs only NumPy; the framework front-ends say how to get theirs."""

from __future__ import annotations

import subprocess
import sys

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
    assert "regloss.torch needs PyTorch: pip install 'regloss[torch]'" in proc.stderr


def test_jax_frontend_without_jax_explains() -> None:
    proc = _run("import regloss.jax")
    assert "regloss.jax needs JAX: pip install 'regloss[jax]'" in proc.stderr


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
