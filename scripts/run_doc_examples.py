"""Run every ```python example in docs/*.md and generate the figures and tables the pages
include (docs/generated/, not committed). `make docs` runs this before `mkdocs build --strict`.

Each page's examples run in order in one namespace (as a reader would type them), in a
temporary directory; any exception fails the build and names the page and the block.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def generate() -> None:
    """What the pages include: the losses table and the diagnose figures."""
    from regloss.cli.losses import markdown_table
    from regloss.diagnostics import run_source
    from regloss.diagnostics._io import open_source
    from regloss.diagnostics._report import figures, write_pngs

    out = DOCS / "generated"
    out.mkdir(exist_ok=True)
    (out / "losses.md").write_text(markdown_table() + "\n")
    rng = np.random.default_rng(3)
    y = rng.normal(size=20_000)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "p.npy", y + rng.standard_t(3, y.size))
        np.save(Path(tmp) / "t.npy", y)
        source = open_source([str(Path(tmp) / "p.npy"), str(Path(tmp) / "t.npy")])
        report, accs = run_source(source)
    write_pngs(out, [figures(accs[0], report["outputs"][0])])


def run_examples() -> int:
    count = 0
    for page in sorted(DOCS.glob("*.md")):
        blocks = BLOCK.findall(page.read_text())
        namespace: dict[str, object] = {"__name__": "__docs__"}
        with tempfile.TemporaryDirectory() as tmp:
            cwd = os.getcwd()
            os.chdir(tmp)
            try:
                for i, code in enumerate(blocks, 1):
                    try:
                        exec(compile(code, f"{page.name}[{i}]", "exec"), namespace)
                    except Exception:
                        traceback.print_exc()
                        print(f"docs: example {i} of {page.name} failed", file=sys.stderr)
                        raise SystemExit(1) from None
                    count += 1
            finally:
                os.chdir(cwd)
    return count


def main() -> None:
    start = time.perf_counter()
    generate()
    n = run_examples()
    print(
        f"docs: {n} examples ran, figures in docs/generated ({time.perf_counter() - start:.1f} s)"
    )


if __name__ == "__main__":
    main()
