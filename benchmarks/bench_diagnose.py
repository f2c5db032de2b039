"""Rows per second of ``regloss diagnose`` on a generated Parquet file, against pyarrow's own
read speed, and the peak memory of each, for two file sizes (memory should stay flat).

Run on demand: ``python benchmarks/bench_diagnose.py [--rows 30000000] [--rounds 3]``. Each
measurement runs in a fresh subprocess so its peak RSS (``ru_maxrss``) is its own; the
contenders — pyarrow's read, diagnose with its compiled per-chunk pass, diagnose on the
NumPy path (``REGLOSS_KERNELS=0``) — alternate in rounds (order flipped each round) and the
table reports medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

READ = """
import json, resource, sys, time
import pyarrow.parquet as pq
t = time.perf_counter(); n = 0
pf = pq.ParquetFile(sys.argv[1], pre_buffer=False, buffer_size=1 << 20)
for batch in pf.iter_batches(batch_size=65536):
    n += batch.num_rows
    batch.column(0).to_numpy(); batch.column(1).to_numpy()
dt = time.perf_counter() - t
print(json.dumps({"rows": n, "seconds": dt,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

DIAGNOSE = """
import json, resource, sys, time
import pyarrow.parquet  # imported before the clock starts, as in READ
from regloss.diagnostics import _fused, diagnose_source, open_source
_fused.library(wait=True)  # loaded from the disk cache, as in any run after the first
t = time.perf_counter()
report = diagnose_source(open_source([sys.argv[1]], chunk_rows=65536))
dt = time.perf_counter() - t
print(json.dumps({"rows": report["rows_read"], "seconds": dt,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _write(path: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    with pq.ParquetWriter(
        path, pa.schema([("prediction", pa.float64()), ("target", pa.float64())])
    ) as writer:
        for start in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - start)
            y = rng.normal(size=n)
            noise = np.where(rng.random(n) < 0.05, rng.normal(scale=20, size=n), rng.normal(size=n))
            writer.write_table(pa.table({"prediction": y + noise, "target": y}))


def _run(code: str, path: Path, kernels: str = "1") -> dict[str, float]:
    env = {**os.environ, "REGLOSS_KERNELS": kernels}
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True, env=env
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000_000, help="rows of the large file")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(
        "| rows | pyarrow read (rows/s) | diagnose (rows/s) | share of read | "
        "NumPy path (rows/s) | share | peak MB pyarrow / diagnose / NumPy path |"
    )
    print("|---|---|---|---|---|---|---|")
    contenders = {"read": (READ, "1"), "diagnose": (DIAGNOSE, "1"), "numpy": (DIAGNOSE, "0")}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (args.rows // 10, args.rows):
            path = Path(tmp) / f"r{rows}.parquet"
            t = time.perf_counter()
            _write(path, rows)
            made = time.perf_counter() - t
            runs: dict[str, list[dict[str, float]]] = {k: [] for k in contenders}
            for r in range(args.rounds):
                order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
                for k in order:
                    runs[k].append(_run(*contenders[k][:1], path, contenders[k][1]))
            rate = {k: statistics.median(rows / x["seconds"] for x in v) for k, v in runs.items()}
            peak = {k: max(x["peak_mb"] for x in v) for k, v in runs.items()}
            print(
                f"| {rows:,} | {rate['read']:,.0f} | {rate['diagnose']:,.0f} | "
                f"{rate['diagnose'] / rate['read']:.3f} | {rate['numpy']:,.0f} | "
                f"{rate['numpy'] / rate['read']:.3f} | "
                f"{peak['read']:.0f} / {peak['diagnose']:.0f} / {peak['numpy']:.0f} |",
                flush=True,
            )
            print(
                f"  (file {path.stat().st_size / 1e6:.0f} MB, written in {made:.1f} s)",
                file=sys.stderr,
            )


if __name__ == "__main__":
    main()
