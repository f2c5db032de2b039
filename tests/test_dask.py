"""regloss.dask on a LocalCluster of 2 worker processes: the report of many files (or a dask
DataFrame) equals the single-process report of their concatenation; metrics likewise; the
CLI's --scheduler; and the merge of diagnostics states it rests on."""

from __future__ import annotations

import copy
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regloss import dask as rdask
from regloss import metrics as M
from regloss.diagnostics import InputError, Pass, open_source, run_source
from regloss.diagnostics._accumulate import OutputAccumulator

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client() -> Any:
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def _table(seed: int, n: int, outputs: int = 1, bad: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    for j in range(outputs):
        t = rng.normal(size=n) * 3 + 1e6 * j
        p = t + rng.standard_t(3, size=n)
        if bad:
            p[rng.random(n) < 0.01] = np.nan
        suffix = "" if j == 0 else str(j)
        cols[f"prediction{suffix}"], cols[f"target{suffix}"] = p, t
    cols["w"] = rng.uniform(0, 2, size=n)
    return pa.table(cols)


@pytest.fixture(scope="module")
def files(tmp_path_factory: Any) -> dict[str, Any]:
    """Parquet and CSV data split over several files, and each concatenation in one file."""
    d = tmp_path_factory.mktemp("dask")
    out: dict[str, Any] = {}
    for kind, parts, rows, outputs, bad in (
        ("parquet", 5, 30_000, 2, False),
        ("csv", 3, 20_000, 1, True),
        ("many", 23, 500, 1, False),
    ):
        tables = [_table(i + 7 * len(kind), rows, outputs, bad) for i in range(parts)]
        suffix = "csv" if kind == "csv" else "parquet"
        paths = []
        for i, t in enumerate(tables):
            path = d / f"{kind}-{i:02d}.{suffix}"
            (pacsv.write_csv if suffix == "csv" else pq.write_table)(t, str(path))
            paths.append(path)
        whole = d / f"whole-{kind}.{suffix}"
        (pacsv.write_csv if suffix == "csv" else pq.write_table)(
            pa.concat_tables(tables), str(whole)
        )
        out[kind] = (str(d / f"{kind}-*.{suffix}"), paths, whole)
    return out


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        return {k2: v for k, v in d.items() for k2, v in _flat(v, f"{prefix}/{k}").items()}
    if isinstance(d, list):
        return {k2: v for i, v in enumerate(d) for k2, v in _flat(v, f"{prefix}[{i}]").items()}
    return {prefix: d}


def _same_report(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Equal but for the input's description; floats to 1e-12 (the exact sums are added in
    another order)."""
    a, b = _flat(got), _flat(want)
    assert a.keys() == b.keys()
    for key, value in b.items():
        if key == "/input":
            continue
        other = a[key]
        if isinstance(value, float) and isinstance(other, float):
            assert other == pytest.approx(value, rel=1e-12, abs=1e-300, nan_ok=True), key
        else:
            assert other == value, key


def test_parquet_files_on_the_cluster_equal_one_pass_over_their_concatenation(
    client: Any, files: dict[str, Any]
) -> None:
    pattern, _, whole = files["parquet"]
    cols = {"pred": ["prediction", "prediction1"], "target": ["target", "target1"]}
    want = run_source(open_source([str(whole)], weight="w", **cols))[0]
    got = rdask.diagnose(pattern, weight="w", client=client, **cols)
    _same_report(got, want)
    assert got["input"].startswith("5 files")


def test_csv_files_with_bad_rows_count_and_number_them_as_one_pass(
    client: Any, files: dict[str, Any]
) -> None:
    pattern, paths, whole = files["csv"]
    want = run_source(open_source([str(whole)]), nan_policy="omit")[0]
    got = rdask.diagnose([str(p) for p in paths], client=client, nan_policy="omit")
    _same_report(got, want)
    assert got["rows_nonfinite"] > 0
    with pytest.raises(InputError) as one:
        run_source(open_source([str(whole)]))
    with pytest.raises(InputError) as many:
        rdask.diagnose(pattern, client=client)
    row = str(one.value).split("the first at data row ")[1]
    assert str(many.value).endswith(row)  # the same global row number


def test_many_parts_merged_in_a_deep_tree(client: Any, files: dict[str, Any]) -> None:
    pattern, _, whole = files["many"]
    want = run_source(open_source([str(whole)], chunk_rows=128), top_k=25)[0]
    got = rdask.diagnose(pattern, client=client, split_every=2, chunk_rows=128, top_k=25)
    _same_report(got, want)


def test_a_dask_dataframe_is_diagnosed_partition_by_partition(
    client: Any, files: dict[str, Any]
) -> None:
    dd = pytest.importorskip("dask.dataframe")
    pattern, _, whole = files["parquet"]
    ddf = dd.read_parquet(pattern)
    assert ddf.npartitions == 5
    want = run_source(open_source([str(whole)], weight="w"))[0]
    got = rdask.diagnose(ddf, weight="w", client=client)
    _same_report(got, want)
    assert got["input"] == "dask DataFrame (5 partitions)"


def test_evaluate_equals_the_metrics_on_all_the_data(client: Any, files: dict[str, Any]) -> None:
    pattern, _, whole = files["parquet"]
    table = pq.read_table(whole)
    p = np.column_stack([table["prediction"], table["prediction1"]])
    t = np.column_stack([table["target"], table["target1"]])
    w = table["w"].to_numpy()
    metrics = [
        M.RootMeanSquaredError(multioutput="raw_values"),
        M.R2Score(multioutput="raw_values"),
        M.MedianAbsoluteError(),
        M.MeanLoss("huber", delta=2.0),
    ]
    got = rdask.evaluate(
        pattern,
        metrics,
        pred=["prediction", "prediction1"],
        target=["target", "target1"],
        weight="w",
        client=client,
    )
    for m, value in zip(metrics, got, strict=True):
        fresh = copy.deepcopy(m)
        np.testing.assert_allclose(value, fresh.update(p, t, w).compute(), rtol=1e-12)
        assert m.state_dict()["outputs"] is None  # the templates are left unchanged


def test_the_cli_runs_on_a_local_cluster(files: dict[str, Any], tmp_path: Path) -> None:
    pattern, _, whole = files["parquet"]
    cmd = [sys.executable, "-m", "regloss", "diagnose", pattern, "--json", "--quiet"]
    proc = subprocess.run([*cmd, "--scheduler", "local"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    single = subprocess.run(
        [sys.executable, "-m", "regloss", "diagnose", str(whole), "--json", "--quiet"],
        capture_output=True,
        text=True,
        check=True,
    )
    _same_report(json.loads(proc.stdout), json.loads(single.stdout))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scheduler", "nowhere"], "--scheduler must be 'local' or a scheduler address"),
        ([], "several files or a glob need --scheduler local"),
        (["--scheduler", "local", "--delimiter", ";"], "not supported with --scheduler"),
    ],
)
def test_cli_errors_are_one_line(files: dict[str, Any], args: list[str], message: str) -> None:
    pattern = files["parquet"][0]
    proc = subprocess.run(
        [sys.executable, "-m", "regloss", "diagnose", pattern, *args],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda f: rdask.diagnose(f + "/nothing-*.parquet"), "no file matches"),
        (lambda f: rdask.diagnose(3), "source must be a path"),
        (lambda f: rdask.diagnose([f + "/missing.parquet"]), "no such file"),
        (lambda f: rdask.diagnose(f + "/parquet-*.parquet", pred=[]), "pred must be"),
        (lambda f: rdask.diagnose(f + "/parquet-*.parquet", split_every=1), "split_every"),
        (lambda f: rdask.diagnose(f + "/parquet-*.parquet", nan_policy="x"), "nan_policy"),
        (lambda f: rdask.evaluate(f + "/parquet-*.parquet", []), "non-empty list"),
        (lambda f: rdask.evaluate(f + "/parquet-*.parquet", ["mse"]), "regloss.metrics"),
        (lambda f: rdask.diagnose(f + "/parquet-*.parquet", pred="nope"), "nope"),
    ],
)
def test_input_errors(files: dict[str, Any], call: Any, match: str) -> None:
    folder = str(Path(files["parquet"][2]).parent)
    with pytest.raises(InputError, match=match):
        call(folder)


# --- the merge underneath --------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(1, 2999), max_size=6))
def test_merged_accumulators_equal_one_pass(cuts: list[int]) -> None:
    """Accumulators over consecutive pieces (sharing the first piece's origin), merged,
    hold the same sums, extremes, exact residuals, sketches and top contributors as one."""
    rng = np.random.default_rng(5)
    p = rng.standard_cauchy(3000)
    t = rng.normal(size=3000)
    w = rng.uniform(0, 1, 3000)
    rows = np.arange(3000)
    one = OutputAccumulator(top_k=7)
    one.update(p, t, w, rows)
    bounds = [0, *sorted(set(cuts)), 3000]
    pieces = []
    for a, b in itertools.pairwise(bounds):
        if b > a:
            acc = OutputAccumulator(top_k=7)
            acc.preset(pieces[0].origin() if pieces else None)
            acc.update(p[a:b], t[a:b], w[a:b], rows[a:b])
            pieces.append(acc)
    # the first piece's origin, given to a single pass too
    ref = OutputAccumulator(top_k=7)
    ref.preset(pieces[0].origin())
    ref.update(p, t, w, rows)
    merged = pieces[0]
    for acc in pieces[1:]:
        merged.merge(acc)
    for key in ref.parts:
        assert merged.total(key) == pytest.approx(ref.total(key), rel=1e-13, abs=1e-300)
    assert (merged.n, merged.r_min, merged.r_max) == (ref.n, ref.r_min, ref.r_max)
    assert (merged.max_abs, merged.max_row) == (ref.max_abs, ref.max_row)
    assert sorted(merged.heap) == sorted(ref.heap)
    np.testing.assert_array_equal(merged.exact()[0], ref.exact()[0])  # type: ignore[index]
    for a, b in ((merged.sketch, ref.sketch), (merged.abs_sketch, ref.abs_sketch)):
        np.testing.assert_array_equal(a.keys, b.keys)
        np.testing.assert_allclose(a.stats, b.stats, rtol=1e-12)
    assert merged.sample.shape == ref.sample.shape


def test_accumulators_with_different_origins_do_not_merge() -> None:
    a, b = OutputAccumulator(), OutputAccumulator()
    a.update(np.ones(3), np.zeros(3), None, np.arange(3))
    b.update(np.full(3, 5.0), np.zeros(3), None, np.arange(3))
    with pytest.raises(ValueError, match="different origins"):
        a.merge(b)
    empty = Pass.new(1, 3)
    assert empty.merge(Pass.new(1, 3)).rows == 0
