"""regloss.dask: diagnose 30 M rows in 20 Parquet files in one process and on a LocalCluster,
and the cost of merging many partition states (issue 10).

Run on demand: ``python benchmarks/bench_dask.py [--rows 30000000] [--files 20]``. The data
is generated once into ``--dir`` (default: a temporary folder). Three contenders, alternated
in rounds, medians of ``--rounds``:

* ``single``: the parts one after the other in this process (Dask's synchronous scheduler);
* ``local-N``: a LocalCluster of N worker processes (one per core), one task per file;
* ``pyarrow``: pyarrow reading the same columns of every file (the read alone).

It prints rows/s, the peak resident memory of each worker process, and the time and pickled
size of merging 10, 100, 1,000 and 10,000 partition states in a tree of 8.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import statistics
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from distributed import Client, LocalCluster

from regloss import dask as rdask
from regloss.diagnostics import Pass
from regloss.diagnostics._io import Chunk


def make(folder: Path, rows: int, files: int) -> list[Path]:
    paths = sorted(folder.glob("part-*.parquet"))
    if len(paths) == files and sum(pq.read_metadata(p).num_rows for p in paths) == rows:
        return paths
    rng = np.random.default_rng(0)
    paths = []
    for i, n in enumerate(np.diff(np.linspace(0, rows, files + 1).astype(int))):
        t = rng.normal(size=n) * 3 + 50
        p = t + rng.standard_t(3, size=n)
        path = folder / f"part-{i:03d}.parquet"
        pq.write_table(pa.table({"prediction": p, "target": t}), path, row_group_size=1 << 20)
        paths.append(path)
    return paths


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def merge_cost(parts: int) -> tuple[float, int]:
    """(seconds to tree-merge ``parts`` one-chunk states, pickled bytes of one state)."""
    rng = np.random.default_rng(1)
    states = []
    origin = None
    for i in range(parts):
        p, t = rng.normal(size=(256, 1)), rng.normal(size=(256, 1))
        state = Pass.new(1, 10, [origin], seed=[i, 0])
        chunk = Chunk(p, t, None, np.arange(256) + (i << 40))
        state.accs[0].update(p[:, 0], t[:, 0], None, chunk.rows)
        state.rows = 256
        origin = origin or state.accs[0].origin()
        states.append(state)
    size = len(pickle.dumps(states[-1]))
    start = time.perf_counter()
    level = states
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), 8):
            first = level[i]
            for other in level[i + 1 : i + 8]:
                first.merge(other)
            nxt.append(first)
        level = nxt
    return time.perf_counter() - start, size


def _check_close(a: object, b: object, where: str) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _check_close(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _check_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == b or abs(a - b) <= 1e-12 * abs(b) or (a != a and b != b), where
    else:
        assert json.dumps(a) == json.dumps(b), where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000_000)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.gettempdir()) / "regloss-bench-dask"
    folder.mkdir(parents=True, exist_ok=True)
    paths = make(folder, args.rows, args.files)
    pattern = str(folder / "part-*.parquet")
    workers = os.cpu_count() or 1
    print(f"{args.rows:,} rows in {args.files} Parquet files, {workers} cores\n")

    times: dict[str, list[float]] = {"single": [], f"local-{workers}": [], "pyarrow": []}
    reports = []
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        for _ in range(args.rounds):
            start = time.perf_counter()
            with dask.config.set(scheduler="synchronous"):
                reports.append(rdask.diagnose(pattern))
            times["single"].append(time.perf_counter() - start)
            start = time.perf_counter()
            reports.append(rdask.diagnose(pattern, client=client))
            times[f"local-{workers}"].append(time.perf_counter() - start)
            start = time.perf_counter()
            for path in paths:
                pq.read_table(path, columns=["prediction", "target"])
            times["pyarrow"].append(time.perf_counter() - start)
        worker_rss = client.run(_peak_rss_mib)
    for r in reports[1:]:  # equal to 1e-12 (a chunk's sum may come from NumPy or the kernel)
        _check_close(r["outputs"], reports[0]["outputs"], "outputs")

    print("| contender | median s | rows/s | vs single |")
    print("| --- | --- | --- | --- |")
    single = statistics.median(times["single"])
    for name, values in times.items():
        s = statistics.median(values)
        print(f"| {name} | {s:.2f} | {args.rows / s / 1e6:.1f} M | {single / s:.2f}x |")
    print(f"\npeak RSS per worker process: {sorted(round(v) for v in worker_rss.values())} MiB")
    print(f"peak RSS of this process (single runs here): {_peak_rss_mib():.0f} MiB")

    print("\n| partition states | tree merge (8 per task) | per state | pickled state |")
    print("| --- | --- | --- | --- |")
    for parts in (10, 100, 1000, 10_000):
        seconds, size = merge_cost(parts)
        print(
            f"| {parts:,} | {seconds:.3f} s | {seconds / parts * 1e6:.0f} us | "
            f"{size / 1024:.0f} KiB |"
        )


if __name__ == "__main__":
    main()
