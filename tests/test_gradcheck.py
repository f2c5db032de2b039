"""check_gradients finds agreement for every registered loss, and finds a planted error."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import regloss
from regloss.gradcheck import check_gradients
from regloss.losses import Loss, SquaredError


@pytest.mark.parametrize("name", regloss.available_losses())
def test_every_registered_loss_passes(name: str) -> None:
    report = check_gradients(name)
    assert report.ok, str(report)
    backends = {c.backend for c in report.checks}
    assert backends == {"numpy", "torch", "jax"}
    reductions = {c.case.split(",")[0] for c in report.checks if c.case != "elementwise"}
    assert reductions == {"none", "sum", "mean", "batchmean"}
    assert any("NaN targets" in c.case for c in report.checks)
    assert any("double backward" in c.what for c in report.checks)


@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class _WrongPsi(SquaredError):
    """psi off by 1% (a wrong factor, the bug this tool exists for)."""

    def psi(self, r):  # type: ignore[no-untyped-def]
        return 2.02 * r

    psi_slope = 2.02


@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class _WrongPsiPrime(SquaredError):
    def psi_prime(self, r):  # type: ignore[no-untyped-def]
        return np.ones_like(r) * 1.0 if isinstance(r, np.ndarray) else r * 0 + 1.0


def test_detects_a_wrong_psi() -> None:
    report = check_gradients(_WrongPsi())
    assert not report.ok
    whats = {c.what for c in report.failures}
    assert "psi vs finite differences of rho" in whats
    assert "gradient vs finite differences" in whats
    assert "backward (prediction) vs autograd of reference" in whats
    assert "FAIL" in str(report)


def test_detects_a_wrong_psi_prime() -> None:
    report = check_gradients(_WrongPsiPrime())
    assert not report.ok
    whats = {c.what for c in report.failures}
    assert "psi_prime vs finite differences of psi" in whats
    assert "double backward (Hessian-vector) vs autograd" in whats
    assert "Hessian-vector product vs autodiff" in whats


def test_report_exposes_worst_errors() -> None:
    report = regloss.check_gradients("huber", delta=0.5)
    worst = report.worst()
    assert worst.max_rel_error <= worst.tolerance
    assert report.loss == "huber(delta=0.5)"
    assert isinstance(Loss, type)
