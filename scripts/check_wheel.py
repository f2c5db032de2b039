"""Build the wheel and install it into fresh virtual environments, bare and with each extra
alone; run the CLI and Python snippets in each and check that every feature either works or
says in one line which extra to install. Prints the matrix as Markdown.

    python scripts/check_wheel.py [--keep DIR] [--only EXTRA ...]

Run by `make wheel-check` (and so by .ci/run). torch is constrained to the pinned version of
requirements/test.txt, whose CPU wheel is on the CI machines. Each environment is removed as
soon as its checks have run (unless --keep), and pip keeps no cache: the CI disk holds one
environment at a time (the torch ones are about 1 GB each), not seven.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENVS: dict[str, set[str]] = {  # extra -> the optional packages it brings
    "bare": set(),
    "stats": {"scipy"},
    "plot": {"matplotlib"},
    "diagnose": {"pyarrow", "rich", "matplotlib"},
    "torch": {"torch"},
    "jax": {"jax"},
    "demo": {"torch", "matplotlib"},
    "dask": {"dask", "pyarrow"},
    "xgboost": {"xgboost"},
    "lightgbm": {"lightgbm"},
    "sklearn": {"sklearn"},
}


@dataclass
class Check:
    name: str
    argv: list[str]
    needs: set[str]  # packages without which the feature must name its extra
    extra: str  # the extra the message must name
    ok_text: str = ""  # what a working run prints
    soft: bool = False  # without its packages it still exits 0 with the message


CHECKS = [
    Check("version", ["regloss", "--version"], set(), "", "regloss "),
    Check(
        "numpy front-end",
        [
            "python",
            "-c",
            "import regloss.numpy as r; print(r.mse([1.5, 2.0, 4.0], [1.0, 2.0, 3.0]))",
        ],
        set(),
        "",
        "0.41666",
    ),
    Check(
        "metrics",
        [
            "python",
            "-c",
            "from regloss.metrics import R2Score; "
            "print(R2Score().update([1.5, 2.0, 4.0], [1.0, 2.0, 3.0]).compute())",
        ],
        set(),
        "",
        "0.375",
    ),
    Check("losses", ["regloss", "losses"], {"scipy"}, "stats", "tukey(c=4.685)", soft=True),
    Check(
        "efficiency()",
        ["python", "-c", "import regloss; print(regloss.efficiency('huber', delta=1.345))"],
        {"scipy"},
        "stats",
        "0.950",
    ),
    Check("diagnose .npy", ["regloss", "diagnose", "p.npy", "t.npy"], set(), "", "recommended"),
    Check("diagnose CSV", ["regloss", "diagnose", "r.csv"], {"pyarrow"}, "diagnose", "recommended"),
    Check(
        "diagnose --report",
        ["regloss", "diagnose", "p.npy", "t.npy", "--report", "r.html"],
        {"matplotlib"},
        "plot",
        "recommended",
    ),
    Check(
        "demo --quick",
        ["regloss", "demo", "--quick", "--out", "figs"],
        {"torch"},
        "torch",
        "7. regloss diagnose",
        soft=True,
    ),
    Check(
        "diagnose --scheduler local",
        ["regloss", "diagnose", "r.csv", "--scheduler", "local", "--quiet"],
        {"dask", "pyarrow"},
        "dask",
        "recommended",
    ),
    Check("import regloss.keras", ["python", "-c", "import regloss.keras"], {"keras"}, "keras"),
    Check(
        "RobustLinearRegression",
        [
            "python",
            "-c",
            "from regloss.sklearn import RobustLinearRegression as R; "
            "print(R().fit([[0.0], [1.0], [2.0], [3.0]], [0.0, 1.0, 2.0, 3.0]).coef_)",
        ],
        {"sklearn"},
        "sklearn",
        "[1.]",
    ),
    Check(
        "xgboost objective",
        ["python", "-c", "import regloss.xgboost as x; print(x.objective('tukey'))"],
        {"xgboost"},
        "xgboost",
        "objective(tukey(c=4.685))",
    ),
    Check(
        "lightgbm objective",
        ["python", "-c", "import regloss.lightgbm as x; print(x.objective('tukey'))"],
        {"lightgbm"},
        "lightgbm",
        "objective(tukey(c=4.685))",
    ),
    Check("import regloss.torch", ["python", "-c", "import regloss.torch"], {"torch"}, "torch"),
    Check(
        "import regloss.torch.metrics",
        ["python", "-c", "import regloss.torch.metrics"],
        {"torch"},
        "torch",
    ),
    Check("import regloss.jax", ["python", "-c", "import regloss.jax"], {"jax"}, "jax"),
]


def _sh(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, env=env, check=False, timeout=900
    )
    return proc.returncode, proc.stdout, proc.stderr


OPTIONAL = (
    *("scipy", "matplotlib", "pyarrow", "rich", "torch", "jax"),
    *("dask", "xgboost", "lightgbm", "sklearn", "keras"),
)


def _importable(venv: Path) -> set[str]:
    """The optional packages the environment really has (jax brings scipy, for one)."""
    code = f"import importlib.util as u; print(*[m for m in {OPTIONAL!r} if u.find_spec(m)])"
    _, out, _ = _sh([str(venv / "bin/python"), "-c", code], venv)
    return set(out.split())


def _size(d: Path) -> int:
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file() and not f.is_symlink())


def _drop(venv: Path, keep: Path | None) -> None:
    """Remove an environment once its checks have run, so that the disk holds one at a time."""
    if keep is None:
        shutil.rmtree(venv, ignore_errors=True)


def _data(d: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    y = rng.normal(size=2000)
    p = y + rng.standard_t(3, 2000)
    np.save(d / "p.npy", p)
    np.save(d / "t.npy", y)
    lines = ["prediction,target", *(f"{a!r},{b!r}" for a, b in zip(p.tolist(), y.tolist()))]
    (d / "r.csv").write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="build the environments here and keep them")
    ap.add_argument("--only", nargs="*", choices=list(ENVS), help="only these environments")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="regloss-wheel-"))
    work.mkdir(parents=True, exist_ok=True)
    pin = next(
        line
        for line in (ROOT / "requirements/test.txt").read_text().splitlines()
        if line.startswith("torch==")
    )
    (work / "constraints.txt").write_text(pin + "\n")
    code, out, err = _sh(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"), "."],
        ROOT,
    )
    if code:
        print(err, file=sys.stderr)
        return 1
    wheel = next((work / "dist").glob("regloss-*.whl"))
    _data(work)
    rows: list[tuple[str, str, int, str, str]] = []
    failures: list[str] = []
    installed: dict[str, set[str]] = {}
    for extra in args.only or list(ENVS):
        venv = work / f"venv-{extra}"
        start = time.perf_counter()
        _sh([sys.executable, "-m", "venv", "--clear", str(venv)], work)
        spec = str(wheel) if extra == "bare" else f"{wheel}[{extra}]"
        env = {**os.environ, "PIP_CONSTRAINT": str(work / "constraints.txt")}
        code, _, err = _sh(
            [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-cache-dir", spec],
            work,
            env,
        )
        if code:
            free = shutil.disk_usage(work).free / 2**30
            last = err.strip().splitlines()[-1]
            failures.append(f"{extra}: pip install failed ({free:.1f} GiB free in {work}): {last}")
            _drop(venv, args.keep)
            continue
        have = installed[extra] = _importable(venv)
        if not ENVS[extra] <= have:
            failures.append(f"{extra}: the extra did not install {sorted(ENVS[extra] - have)}")
        run_env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
        run_env.pop("PYTHONPATH", None)
        for check in CHECKS:
            argv = [str(venv / "bin" / check.argv[0]), *check.argv[1:]]
            code, out, err = _sh(argv, work, run_env)
            missing = check.needs - have
            hint = f"pip install 'regloss[{check.extra}]'"
            lines = [x for x in (out + err).splitlines() if x.strip()]
            if not missing:
                good = code == 0 and check.ok_text in out
                shown = next((x for x in lines if check.ok_text and check.ok_text in x), "")
            elif check.soft:
                good = code == 0 and hint in out + err
                shown = next((x for x in lines if hint in x), "")
            else:
                err_lines = [x for x in err.splitlines() if x.strip()]
                if check.argv[0] == "regloss":  # the CLI: one line, exit 2, no traceback
                    good = code == 2 and len(err_lines) == 1 and hint in err
                else:  # Python: an ImportError whose message names the extra
                    good = code != 0 and bool(err_lines) and hint in err_lines[-1]
                shown = err_lines[-1] if err_lines else ""
            rows.append((extra, check.name, code, "ok" if good else "FAIL", shown.strip()))
            if not good:
                failures.append(f"{extra} / {check.name}: exit {code}: {(out + err)[-600:]}")
        size = _size(venv) / 2**20
        _drop(venv, args.keep)
        print(f"{extra}: {time.perf_counter() - start:.0f} s, {size:.0f} MiB", file=sys.stderr)
    print("| install | optional packages present | check | exit | verdict | what it printed |")
    print("|---|---|---|---|---|---|")
    for extra, name, code, verdict, shown in rows:
        shown = re.sub(r"\s+", " ", shown)[:110].replace("|", "\\|")
        present = " ".join(sorted(installed[extra])) or "-"
        print(f"| {extra} | {present} | {name} | {code} | {verdict} | `{shown}` |")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print("FAILED:", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
