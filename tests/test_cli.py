"""The regloss command: demo, verify, and one-line errors with exit code 2."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from regloss.cli import main
from regloss.cli import verify as verify_cmd
from regloss.gradcheck import Check, GradientReport


def test_demo_prints_the_seed_walkthrough(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    figs = tmp_path / "figs"
    assert main(["demo", "--quick", "--plot", str(tmp_path / "fig.png"), "--out", str(figs)]) == 0
    out = capsys.readouterr().out
    assert f"figures written into {figs}/:" in out
    for name in ("losses.png", "outlier_experiment.png"):
        assert (figs / name).read_bytes()[:4] == b"\x89PNG"
    # step 7 gives the constant in robust scales and in target units, and step 6's too
    assert re.search(r"recommends: \w+\((\w+=[0-9.]+)?\)", out)
    assert "in units of the target SD" in out
    for expected in [
        "| 0 |     1.5000 | 1.0000 |     0.5000 | 0.2500 |",
        "[0.2500, 0.0000, 1.0000]",
        "| mean      |                   0.4167 |",
        "| sum       |                   1.2500 |",
        "| batchmean |                   0.4167 |",
        "[0.3333, 0.0000, 0.6667]",
        "torch.nn.MSELoss + autograd",
        "loss and gradient agree: True",
        "| mse   |           100.0 |            10.0 | 10.0x |",
        "| mae   |            10.0 |            10.0 | 1.0x  |",
        "| huber |             9.5 |             5.0 | 1.9x  |",
        "6. the outlier experiment: clean-test RMSE",
        "7. regloss diagnose on the MSE model's training residuals at 20% outliers recommends",
    ]:
        assert expected in out, expected
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"
    rows = {
        line.split("|")[1].strip(): line
        for line in out.splitlines()
        if line.startswith("| ") and "%" not in line and line.count("|") == 4
    }
    rmse = {k: [float(c) for c in rows[k].split("|")[2:4]] for k in ("mse", "tukey")}
    assert rmse["mse"][1] > 2 * rmse["mse"][0]  # MSE is pulled by 20% outliers
    assert rmse["tukey"][1] < 1.2 * rmse["tukey"][0]  # Tukey is not


def test_verify_passes_for_every_loss(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify"]) == 0
    out = capsys.readouterr().out
    for name in [
        "mse()",
        "mae()",
        "huber(delta=1.0)",
        "smooth_l1(beta=0.0)",
        "quantile(q=0.9)",
        "tukey(c=1.5)",
        "log_cosh()",
        "geman_mcclure(c=3.787)",
    ]:
        assert name in out
    assert "all derivatives match" in out


def test_losses_prints_the_generated_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["losses"]) == 0
    narrow = capsys.readouterr().out
    assert max(len(line) for line in narrow.splitlines()) <= 100
    assert "--wide adds the formulas and noise models" in narrow
    monkeypatch.setenv("COLUMNS", "60")  # narrower: wrapped down to the longest words
    assert main(["losses"]) == 0
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 100
    assert main(["losses", "--wide"]) == 0
    out = capsys.readouterr().out
    assert "| tukey(c=4.685)" in out
    row = next(line for line in out.splitlines() if line.startswith("| tukey(c=4.685)"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[-7:] == ["no", "C²", "yes (max 3.658)", "yes", "-", "0.950", "0.5"]
    assert main(["losses", "--markdown"]) == 0
    assert capsys.readouterr().out.startswith("| loss | rho(r) | convex |")


def test_verify_exits_nonzero_on_mismatch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = GradientReport(
        "mse()",
        (Check("psi vs finite differences of rho", "numpy", "elementwise", 1.0, 0.5, 1e-6),),
    )
    monkeypatch.setattr(verify_cmd, "check_gradients", lambda name, **kw: bad)
    assert main(["verify", "--loss", "mse"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH mse(): psi vs finite differences of rho" in out
    assert "derivative MISMATCH found" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["verify", "--loss", "nope"], "regloss: error: --loss 'nope' is not a registered loss"),
        (["frobnicate"], "regloss: error: argument COMMAND: invalid choice: 'frobnicate'"),
        (["demo", "--bogus"], "regloss: error: unrecognized arguments: --bogus"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(argv: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "regloss", *argv], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(message)
    assert proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_python_m_regloss_and_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "regloss", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and proc.stdout.startswith("regloss 0.")


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_every_command_has_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    from regloss.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == {"bench", "demo", "diagnose", "losses", "verify"}  # type: ignore[union-attr]
    for name, parser in sub.choices.items():  # type: ignore[union-attr]
        assert parser.description and len(parser.description) > 60, name
        with pytest.raises(SystemExit):
            main([name, "--help"])
        assert parser.description.split()[0] in capsys.readouterr().out
