"""regloss.keras on the JAX and torch backends, each in its own process (Keras fixes its
backend at import): values against regloss.numpy for every setting and Keras reduction,
against Keras' own MSE/MAE/Huber/LogCosh, the gradient against the analytic ψ, a short
model.fit, saving and loading with the loss, and the errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# Keras is not imported here: its default backend (TensorFlow) is not installed
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", params=["jax", "torch"])
def run(request: Any) -> dict[str, Any]:
    env = {**os.environ, "KERAS_BACKEND": request.param, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "keras_worker.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["backend"] == request.param
    return out


def test_values_equal_the_numpy_front_end_for_every_setting_and_reduction(
    run: dict[str, Any],
) -> None:
    assert run["worst_value_vs_numpy"] < 2e-6  # float32 inputs


def test_values_equal_keras_own_losses_where_the_definitions_coincide(run: dict[str, Any]) -> None:
    assert run["worst_vs_keras"] < 1e-6


def test_the_backend_differentiates_with_the_analytic_psi(run: dict[str, Any]) -> None:
    assert run["worst_grad"] < 1e-6


def test_a_short_fit_lowers_the_loss_and_the_model_reloads_with_it(run: dict[str, Any]) -> None:
    losses = run["losses"]
    assert all(v == v and v < 1e30 for v in losses)
    assert losses[-1] < 0.5 * losses[0]
    assert run["reloaded_loss"] == "Loss"
    assert run["reloaded_config"]["loss"] == "cauchy" and run["reloaded_config"]["c"] == 0.5
    assert run["same_predictions"]
    assert run["config_round_trip"] and run["serialised"] == 2.0


def test_errors_are_one_line(run: dict[str, Any]) -> None:
    assert run["unknown_loss"].startswith("unknown loss 'l2'")
    assert "set KERAS_BACKEND=jax or torch" in run["unsupported_backend"]
