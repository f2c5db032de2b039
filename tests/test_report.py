"""The HTML report and PNG figures of regloss diagnose, checked in real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

CHECK = """<script>
window.addEventListener('load', () => {
  const visible = e => { const r = e.getBoundingClientRect();
                         return r.width > 50 && r.height > 20 &&
                                getComputedStyle(e).visibility !== 'hidden'; };
  const imgs = [...document.querySelectorAll('img.plot')];
  const tables = [...document.querySelectorAll('table')];
  document.title = 'RESULT' + JSON.stringify({
    imgs: imgs.length,
    imgs_ok: imgs.filter(i => i.complete && i.naturalWidth > 100 && visible(i)).length,
    tables: tables.length,
    tables_ok: tables.filter(visible).length,
    resources: performance.getEntriesByType('resource').map(e => e.name),
  });
});
</script>"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(5)
    y = rng.normal(size=4000)
    p = y + np.where(
        rng.random(4000) < 0.05, rng.normal(scale=15, size=4000), rng.normal(size=4000)
    )
    with (d / "r.csv").open("w") as f:
        f.write("prediction,target,p2,t2\n")
        for a, b in zip(p, y):
            f.write(f"{float(a)!r},{float(b)!r},{float(b) + rng.normal()!r},{float(b)!r}\n")
    html = d / "out" / "report.html"
    plots = d / "plots"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "regloss",
            "diagnose",
            str(d / "r.csv"),
            "--pred",
            "prediction",
            "--target",
            "target",
            "--pred",
            "p2",
            "--target",
            "t2",
            "--report",
            str(html),
            "--plots",
            str(plots),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return html, plots


def test_report_is_self_contained(report: tuple[Path, Path]) -> None:
    text = report[0].read_text()
    assert not re.search(r"(?:src|href)\s*=\s*['\"](?!data:)", text)  # only data: URIs
    assert "http://" not in text and "https://" not in text
    assert text.count("data:image/png;base64,") == 8  # 4 figures x 2 outputs
    # 5% gross outliers in the first output: a redescending loss, in data units and scales
    assert re.search(r"Recommended loss: (tukey|cauchy)\(c=[0-9.]+\) +\(c = [0-9.]+ robust", text)
    assert "Recommended loss: mse()" in text or "Recommended loss: huber(" in text


def test_plots_directory_has_every_png(report: tuple[Path, Path]) -> None:
    names = sorted(p.name for p in report[1].iterdir())
    assert names == sorted(
        f"output{i}_{n}.png"
        for i in (0, 1)
        for n in ("histogram", "qq", "sse_share", "residuals_vs_predictions")
    )
    for p in report[1].iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "chromium is required: `make test` installs Debian's chromium package"
    return path


def test_report_renders_in_headless_chromium_with_the_network_off(
    report: tuple[Path, Path], tmp_path: Path
) -> None:
    page = tmp_path / "checked.html"
    page.write_text(report[0].read_text().replace("</body>", CHECK + "</body>"))
    proc = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    match = re.search(r"<title>RESULT(.*?)</title>", proc.stdout, re.S)
    assert match, proc.stderr[-2000:]
    result = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["imgs"] == 8 and result["imgs_ok"] == 8
    # per output: loss variances, error sizes, evidence, largest contributions
    assert result["tables"] == 8 and result["tables_ok"] == 8
    assert result["resources"] == []  # nothing requested from anywhere


def test_report_path_must_be_html(tmp_path: Path) -> None:
    np.save(tmp_path / "p.npy", np.zeros(5))
    np.save(tmp_path / "t.npy", np.ones(5))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "regloss",
            "diagnose",
            str(tmp_path / "p.npy"),
            str(tmp_path / "t.npy"),
            "--report",
            str(tmp_path / "r.pdf"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("regloss: error: --report must name an .html file")
    assert not (tmp_path / "r.pdf").exists()
