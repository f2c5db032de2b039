"""Every public function and class is visible to type checkers: the generated blocks of the
front-ends match the registry (no drift), and mypy catches what users get wrong."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _generator() -> object:
    spec = importlib.util.spec_from_file_location(
        "make_frontends", ROOT / "scripts/make_frontends.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_front_ends_match_the_registry() -> None:
    gen = _generator()
    for path in gen.TARGETS:  # type: ignore[attr-defined]
        text = (ROOT / path).read_text()
        assert gen.BEGIN in text and gen.END in text, path  # type: ignore[attr-defined]
        fresh = gen.render(path, text)  # type: ignore[attr-defined]
        assert fresh == text, (
            f"{path} drifted from the registry: run python scripts/make_frontends.py"
        )


CORRECT = """
import numpy as np
import torch
from regloss import numpy as rnp
from regloss.torch import HuberLoss, cauchy_loss, gaussian_nll_loss, huber_loss, mse_loss

x, y = torch.zeros(3), torch.zeros(3)
a: torch.Tensor = huber_loss(x, y, "sum", 2.0)
b: torch.Tensor = mse_loss(x, y, reduction="mean", weight=torch.ones(3))
c: torch.Tensor = cauchy_loss(x, y, c=2.0, mask=x > 0)
d: torch.Tensor = gaussian_nll_loss(x, y, 0.5)
crit = HuberLoss(delta=0.5)
delta: float = crit.delta
e = rnp.quantile(np.zeros(3), np.zeros(3), q=[0.1, 0.5, 0.9])
"""

#: One line per mistake (file line numbers are checked) and what mypy must say about it.
MISTAKES = [
    (
        "from regloss.torch import hubber_loss",
        r'Module "regloss.torch" has no attribute "hubber_loss"',
    ),
    (
        "huber_loss(torch.zeros(1), torch.zeros(1), delta='big')",
        r'Argument "delta" to "huber_loss" has incompatible type "str"; expected "float"',
    ),
    (
        "rnp.cauchy(np.zeros(1), np.zeros(1), cc=2.0)",
        r'Unexpected keyword argument "cc" for "cauchy"',
    ),
    ("HuberLoss(reduction='meen')", r'Argument "reduction" to "HuberLoss" has incompatible type'),
    (
        "rjax.welsch(np.zeros(1), np.zeros(1), c='2')",
        r'Argument "c" to "welsch" has incompatible type',
    ),
]
HEADER = (
    "import numpy as np\nimport torch\nfrom regloss import jax as rjax\n"
    "from regloss import numpy as rnp\nfrom regloss.torch import HuberLoss, huber_loss\n"
)


@pytest.mark.slow
def test_mypy_on_user_code(tmp_path: Path) -> None:
    """One mypy --strict run over a correct user file and a file of typical mistakes."""
    (tmp_path / "correct.py").write_text(CORRECT)
    (tmp_path / "mistakes.py").write_text(HEADER + "\n".join(code for code, _ in MISTAKES) + "\n")
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "correct.py", "mistakes.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "correct.py" not in out.stdout, out.stdout
    first = HEADER.count("\n") + 1
    for i, (_, message) in enumerate(MISTAKES):
        line = [ln for ln in out.stdout.splitlines() if ln.startswith(f"mistakes.py:{first + i}:")]
        assert any(re.search(message, ln) for ln in line), (message, out.stdout)
