"""Every registered loss with the parameter settings worth testing; shared by the test files.

``test_losses.test_every_registered_loss_is_covered_here`` fails when a registered loss is
missing, so a new loss gets every registry-wide test by being added here once.
"""

from __future__ import annotations

from typing import Any

import pytest

SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("mse", {}),
    ("mae", {}),
    ("huber", {}),
    ("huber", {"delta": 0.7}),
    ("huber", {"delta": 7.0}),
    ("smooth_l1", {}),
    ("smooth_l1", {"beta": 0.0}),
    ("smooth_l1", {"beta": 0.7}),
    ("pseudo_huber", {}),
    ("pseudo_huber", {"delta": 0.3}),
    ("log_cosh", {}),
    ("quantile", {}),
    ("quantile", {"q": 0.1}),
    ("quantile", {"q": 0.9}),
    ("cauchy", {}),
    ("cauchy", {"c": 0.5}),
    ("geman_mcclure", {}),
    ("geman_mcclure", {"c": 0.8}),
    ("welsch", {}),
    ("welsch", {"c": 0.9}),
    ("tukey", {}),
    ("tukey", {"c": 1.5}),
    ("fair", {}),
    ("fair", {"c": 0.5}),
    ("barron", {}),
    ("barron", {"alpha": 2.0, "scale": 0.5}),
    ("barron", {"alpha": 0.0}),
    ("barron", {"alpha": -2.0}),
    ("barron", {"alpha": float("-inf")}),
    ("barron", {"alpha": 1.999999}),
    ("barron", {"alpha": 1e-6, "scale": 2.0}),
    ("barron", {"alpha": 3.5}),
]


def _id(name: str, params: dict[str, Any]) -> str:
    return "-".join([name, *(f"{v:g}" for v in params.values())])


def params(settings: list[tuple[str, dict[str, Any]]] | None = None) -> list[Any]:
    """pytest.param objects with readable ids, e.g. ``huber-0.7``."""
    return [pytest.param(n, p, id=_id(n, p)) for n, p in (settings or SETTINGS)]
