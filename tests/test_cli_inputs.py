"""The files users really have: every case from issue 8's list, compressed and delimited
text, strict JSON, and a seeded fuzz of malformed CSV, Parquet and .npy input.

Every run either exits 0 with a report or exits 2 with one stderr line naming the file;
never a traceback, never a partial output file.
"""

from __future__ import annotations

import bz2
import gzip
import json
import os
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from regloss.cli import main
from regloss.diagnostics import InputError, diagnose

CSV = "prediction,target,w\n1.5,1,1\n2,2,1\n4,3,2\n0.5,1,1\n"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["diagnose", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = _run(capsys, *argv)
    assert code == 2, (out, err)
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("regloss: "), err
    return err


def _strict(text: str) -> dict[str, Any]:
    def bad(token: str) -> None:
        raise AssertionError(f"not strict JSON: {token}")

    return json.loads(text, parse_constant=bad)  # type: ignore[no-any-return]


def test_all_zero_weights_name_the_column(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "z.csv"
    path.write_text("prediction,target,w\n1,2,0\n3,4,0\n")
    err = _error(capsys, str(path), "--weight", "w")
    assert "z.csv" in err and "weights in column 'w' sum to 0" in err


def test_a_byte_order_mark_is_skipped(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + CSV.encode())
    code, out, _ = _run(capsys, str(path), "--json", "--weight", "w")
    assert code == 0
    assert _strict(out)["outputs"][0]["n"] == 4


def test_duplicate_column_names_are_named(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "dup.parquet"
    cols = [pa.array([1.0, 2.0]), pa.array([1.0, 3.0]), pa.array([0.0, 1.0])]
    pq.write_table(pa.Table.from_arrays(cols, names=["prediction", "prediction", "target"]), path)
    err = _error(capsys, str(path))
    assert "dup.parquet: 2 columns are named 'prediction'" in err
    csv_path = tmp_path / "dup.csv"
    csv_path.write_text("prediction,target,target\n1,2,3\n")
    assert "2 columns are named 'target'" in _error(capsys, str(csv_path))


@pytest.mark.parametrize("scale", [1e103, 1e160, 1e300])
def test_huge_residuals_give_strict_json(tmp_path: Path, capsys: Any, scale: float) -> None:
    r = np.random.default_rng(0).standard_t(4, 500) * scale
    np.save(tmp_path / "p.npy", r)
    np.save(tmp_path / "t.npy", np.zeros(500))
    code, out, _ = _run(capsys, str(tmp_path / "p.npy"), str(tmp_path / "t.npy"), "--json")
    assert code == 0
    report = _strict(out)
    o = report["outputs"][0]
    assert o["normality"]["excess_kurtosis"] is not None
    if scale > 1e154:  # r² overflows float64: MSE is inf, reported as null with the reason
        assert o["errors"]["mse"] is None
        assert "beyond the float64 range" in report["nulls"]["outputs[0].errors.mse"]


def test_constant_targets_give_a_null_r2_with_its_reason(tmp_path: Path, capsys: Any) -> None:
    np.save(tmp_path / "p.npy", np.array([1.0, 2.0, 4.0]))
    np.save(tmp_path / "t.npy", np.zeros(3))
    code, out, _ = _run(capsys, str(tmp_path / "p.npy"), str(tmp_path / "t.npy"), "--json")
    report = _strict(out)
    assert code == 0 and report["outputs"][0]["errors"]["r2"] is None
    assert "targets are constant" in report["nulls"]["outputs[0].errors.r2"]


def test_a_huge_chunk_size_on_csv(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "a.csv"
    path.write_text(CSV)
    assert _run(capsys, str(path), "--chunk-rows", str(10**12))[0] == 0


def test_blank_lines_do_not_shift_the_line_number(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "b.csv"
    path.write_text("prediction,target\n1,2\n\n3,4\n\n5,x\n")
    err = _error(capsys, str(path))
    assert "b.csv: non-numeric value 'x' in column 'target' at data row 2 (line 6)" in err


def test_latin1_is_named_with_the_fix(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "l.csv"
    path.write_bytes("prediction,target,note\n1,2,caf\xe9\n3,4,ok\n".encode("latin-1"))
    err = _error(capsys, str(path))
    assert "l.csv: not utf-8 text" in err and "--encoding latin-1" in err
    assert _run(capsys, str(path), "--encoding", "latin-1")[0] == 0


def test_compressed_content_under_a_plain_name(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "g.csv"
    path.write_bytes(gzip.compress(CSV.encode()))
    assert "g.csv: the content is gzip, not CSV text; name it g.csv.gz" in _error(capsys, str(path))


def test_parquet_or_npy_content_under_a_csv_name(tmp_path: Path, capsys: Any) -> None:
    pq.write_table(pa.table({"prediction": [1.0], "target": [2.0]}), tmp_path / "a.csv")
    assert "a.csv: the content is Parquet, not CSV text; name it a.parquet" in _error(
        capsys, str(tmp_path / "a.csv")
    )
    np.save(tmp_path / "b.npy", np.ones(2))
    (tmp_path / "b.npy").rename(tmp_path / "b.csv.bz2")
    assert "b.csv.bz2: the content is .npy, not CSV text; name it b.npy" in _error(
        capsys, str(tmp_path / "b.csv.bz2")
    )


def test_a_directory_is_called_a_directory(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "d.csv").mkdir()
    assert "d.csv: is a directory" in _error(capsys, str(tmp_path / "d.csv"))


def test_decimal_parquet_columns_are_numbers(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "dec.parquet"
    dec = pa.decimal128(10, 3)
    table = pa.table(
        {
            "prediction": pa.array([Decimal("1.500"), Decimal("2.000"), Decimal("4.000")], dec),
            "target": pa.array([Decimal("1.000"), Decimal("2.000"), Decimal("3.000")], dec),
        }
    )
    pq.write_table(table, path)
    code, out, _ = _run(capsys, str(path), "--json")
    assert code == 0
    assert _strict(out)["outputs"][0]["errors"]["mse"] == pytest.approx(1.25 / 3)


def test_missing_values_are_not_called_nan(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "m.csv"
    path.write_text("prediction,target\n1,2\n,4\n3,nan\n5,NA\n")
    err = _error(capsys, str(path))
    assert "3 row(s) to skip: 2 with missing values (empty cells or nulls) and 1 with NaN" in err
    code, out, _ = _run(capsys, str(path), "--nan-policy", "omit", "--json")
    assert code == 0
    report = _strict(out)
    assert (report["rows_missing"], report["rows_nonfinite"]) == (2, 1)
    pq_path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"prediction": [1.0, None], "target": [2.0, 3.0]}), pq_path)
    assert "1 with missing values" in _error(capsys, str(pq_path))


def test_integers_beyond_2_53_keep_exact_residuals(tmp_path: Path, capsys: Any) -> None:
    big = 2**60
    pred = np.array([big + 1, big + 3, big - 2], dtype=np.int64)
    target = np.array([big, big, big], dtype=np.int64)
    np.save(tmp_path / "p.npy", pred)
    np.save(tmp_path / "t.npy", target)
    pq.write_table(pa.table({"prediction": pred, "target": target}), tmp_path / "i.parquet")
    for args in ([str(tmp_path / "p.npy"), str(tmp_path / "t.npy")], [str(tmp_path / "i.parquet")]):
        code, out, _ = _run(capsys, *args, "--json")
        assert code == 0
        assert _strict(out)["outputs"][0]["errors"]["mse"] == (1 + 9 + 4) / 3  # not 0


def test_csv_integers_beyond_2_53_are_not_rounded_silently(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "big.csv"
    path.write_text("prediction,target\n9007199254740993,9007199254740992\n1,2\n")
    code, out, _ = _run(capsys, str(path))
    assert code == 0
    assert "warning: column 'prediction' holds integers beyond 2^53 (data row 0" in out
    code, out, _ = _run(capsys, str(path), "--json")
    assert "store them as int64 in Parquet" in _strict(out)["warnings"][0]


def test_a_2d_weight_array_is_refused(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "w.npz"
    np.savez(path, prediction=np.ones(3), target=np.zeros(3), w=np.ones((3, 2)))
    err = _error(capsys, str(path), "--weight", "w")
    assert "w.npz[w]: the weight must be 1-D (one weight per row), got shape (3, 2)" in err


@pytest.mark.parametrize("command", [["losses"], ["demo", "--quick"]])
def test_an_ascii_terminal_does_not_crash(command: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "LC_ALL": "C"}
    proc = subprocess.run(
        [sys.executable, "-m", "regloss", *command],
        capture_output=True,
        env=env,
        check=False,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prediction": ["a", "b"], "target": [1, 2]}, "prediction must be an array of numbers"),
        ({"prediction": [1.0, 2.0], "target": [[1.0], [2.0], [3.0]]}, "prediction has shape"),
        ({"prediction": [], "target": []}, r"prediction has shape \(0,\); pass at least one"),
        ({"prediction": 3.0, "target": 1.0}, r"prediction has shape \(\)"),
        ({"weight": np.ones((3, 2))}, r"weight has shape \(3, 2\); it needs one weight per row"),
        ({"weight": [1.0]}, r"weight has shape \(1,\)"),
        ({"top_k": -1}, "top_k must be an integer >= 0, got -1"),
        ({"chunk_rows": 0}, "chunk_rows must be an integer >= 1, got 0"),
        ({"chunk_rows": 2.5}, "chunk_rows must be an integer >= 1, got 2.5"),
        ({"nan_policy": "drop"}, "nan_policy must be 'raise' or 'omit', got 'drop'"),
    ],
)
def test_diagnose_arguments_are_checked(kwargs: dict[str, Any], message: str) -> None:
    args = {"prediction": [1.5, 2.0, 4.0], "target": [1.0, 2.0, 3.0], **kwargs}
    with pytest.raises(InputError, match=message):
        diagnose(**args)


@pytest.mark.parametrize(
    ("name", "write", "extra"),
    [
        ("r.csv.gz", lambda p, t: p.write_bytes(gzip.compress(t.encode())), []),
        ("r.csv.bz2", lambda p, t: p.write_bytes(bz2.compress(t.encode())), []),
        ("r.tsv", lambda p, t: p.write_text(t.replace(",", "\t")), []),
        ("r.tsv.gz", lambda p, t: p.write_bytes(gzip.compress(t.replace(",", "\t").encode())), []),
        ("r.csv", lambda p, t: p.write_text(t.replace(",", ";")), ["--delimiter", ";"]),
    ],
)
def test_compressed_and_delimited_text(
    tmp_path: Path, capsys: Any, name: str, write: Any, extra: list[str]
) -> None:
    (tmp_path / "plain.csv").write_text(CSV)
    _, ref, _ = _run(capsys, str(tmp_path / "plain.csv"), "--json", "--weight", "w")
    write(tmp_path / name, CSV)
    code, out, _ = _run(capsys, str(tmp_path / name), "--json", "--weight", "w", *extra)
    assert code == 0
    got, want = _strict(out), _strict(ref)
    assert got["outputs"] == want["outputs"]


def test_delimiter_and_encoding_are_checked(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "a.csv").write_text(CSV)
    assert "--delimiter must be one character, got ';;'" in _error(
        capsys, str(tmp_path / "a.csv"), "--delimiter", ";;"
    )
    assert "--encoding: unknown encoding 'klingon'" in _error(
        capsys, str(tmp_path / "a.csv"), "--encoding", "klingon"
    )
    np.save(tmp_path / "p.npy", np.ones(3))
    assert "--delimiter applies to CSV/TSV files, not .npy" in _error(
        capsys, str(tmp_path / "p.npy"), str(tmp_path / "p.npy"), "--delimiter", ";"
    )


def test_unwritable_outputs_fail_before_reading(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "a.csv").write_text(CSV)
    (tmp_path / "file").write_text("x")
    a = str(tmp_path / "a.csv")
    assert "--plots" in _error(capsys, a, "--plots", str(tmp_path / "file"))
    assert "exists and is not a directory" in _error(capsys, a, "--plots", str(tmp_path / "file"))
    assert "cannot write into" in _error(capsys, a, "--report", str(tmp_path / "file" / "r.html"))
    (tmp_path / "d.html").mkdir()
    assert "is a directory; name a file" in _error(capsys, a, "--report", str(tmp_path / "d.html"))


def test_the_summary_fits_the_terminal(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    np.save(tmp_path / "p.npy", np.random.default_rng(1).standard_t(3, 5000))
    np.save(tmp_path / "t.npy", np.zeros(5000))
    code, out, _ = _run(capsys, str(tmp_path / "p.npy"), str(tmp_path / "t.npy"))
    assert code == 0
    lines = out.splitlines()[1:]  # the first names the input, however long its path
    assert max(len(line) for line in lines) <= 100
    assert sum(line.startswith("  - ") for line in lines) >= 4  # reasons, wrapped


def test_report_and_plots_say_where_they_wrote(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "a.csv").write_text(CSV)
    html, plots = tmp_path / "out" / "r.html", tmp_path / "figs"
    code, _, err = _run(
        capsys, str(tmp_path / "a.csv"), "--report", str(html), "--plots", str(plots)
    )
    assert code == 0
    assert f"wrote the report to {html}" in err and f"into {plots}" in err


# --- the fuzz ------------------------------------------------------------------------------

TOKENS = ["", " ", "nan", "inf", "-inf", "1e999", "-0", "abc", '"1,5"', '"', "NA", "null",
          "1e-320", "9007199254740993", "0x10", "1_000", "١٢", "\x00", "1;2", "é"]  # fmt: skip


def _mutated_csv(rng: random.Random) -> bytes:
    rows = [["prediction", "target", "w"]]
    for _ in range(rng.randint(0, 30)):
        rows.append([repr(rng.gauss(0, 1)), repr(rng.gauss(0, 1)), repr(rng.random())])
    for _ in range(rng.randint(0, 4)):
        i = rng.randrange(len(rows))
        j = rng.randrange(3)
        kind = rng.random()
        if kind < 0.5 and j < len(rows[i]):
            rows[i][j] = rng.choice(TOKENS)
        elif kind < 0.7:
            rows[i] = rows[i][: rng.randint(0, 3)]
        elif kind < 0.85:
            rows.insert(i, [])
        else:
            rows[i].append("extra")
    text = "\n".join(",".join(r) for r in rows).encode("utf-8", errors="replace")
    mode = rng.random()
    if mode < 0.1:
        text = b"\xef\xbb\xbf" + text
    elif mode < 0.2:
        text = text[: rng.randint(0, len(text))]
    elif mode < 0.3:
        text = text.replace(b",", b"\xe9", 1)
    elif mode < 0.35:
        text = gzip.compress(text)
    return text


def _mutated_binary(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    kind = rng.random()
    if kind < 0.4:
        return bytes(data[: rng.randint(0, len(data))])
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def _fuzz_case(rng: random.Random, d: Path) -> tuple[list[str], list[Path]]:
    """A malformed input and the command-line arguments that read it."""
    kind = rng.choice(["csv", "csv", "parquet", "npy", "npz"])
    flags: list[str] = []
    if rng.random() < 0.3:
        flags += ["--nan-policy", "omit"]
    if rng.random() < 0.3:
        flags += ["--chunk-rows", str(rng.choice([1, 3, 7, 10**9]))]
    n = rng.randint(1, 40)
    if kind == "csv":
        path = d / rng.choice(["f.csv", "f.tsv", "f.csv.gz"])
        body = _mutated_csv(rng)
        if path.suffix == ".gz":
            body = gzip.compress(body)
        path.write_bytes(body)
        if rng.random() < 0.5:
            flags += ["--weight", "w"]
        return [str(path), *flags], [path]
    if kind == "parquet":
        path = d / "f.parquet"
        sink = pa.BufferOutputStream()
        values = np.random.default_rng(rng.randrange(1000)).normal(size=(n, 2))
        if rng.random() < 0.3:
            values[rng.randrange(n), rng.randrange(2)] = rng.choice([np.nan, np.inf, 1e300])
        pq.write_table(pa.table({"prediction": values[:, 0], "target": values[:, 1]}), sink)
        data = sink.getvalue().to_pybytes()
        path.write_bytes(_mutated_binary(data, rng) if rng.random() < 0.6 else data)
        return [str(path), *flags], [path]
    gen = np.random.default_rng(rng.randrange(1000))
    p = gen.normal(size=n)
    if rng.random() < 0.3:
        p = p.astype(rng.choice([np.int64, np.float32, np.complex128, np.bool_, "U3"]))
    if kind == "npy":
        paths = [d / "p.npy", d / "t.npy"]
        np.save(paths[0], p)
        np.save(paths[1], gen.normal(size=rng.choice([n, n, n + 1, 0])))
        victim = rng.choice(paths)
        if rng.random() < 0.5:
            victim.write_bytes(_mutated_binary(victim.read_bytes(), rng))
        return [str(x) for x in paths] + [f for f in flags if f != "--nan-policy"][:0], paths
    path = d / "f.npz"
    np.savez(path, prediction=p, target=gen.normal(size=n))
    if rng.random() < 0.5:
        path.write_bytes(_mutated_binary(path.read_bytes(), rng))
    return [str(path), *flags], [path]


FUZZ_CASES = int(os.environ.get("REGLOSS_FUZZ_CASES", "300"))


def test_fuzz_never_a_traceback_never_a_partial_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(20261128)
    exits = {0: 0, 2: 0}
    for case in range(FUZZ_CASES):
        d = tmp_path / str(case)
        d.mkdir()
        argv, inputs = _fuzz_case(rng, d)
        report = d / "out" / "report.html"
        with_report = rng.random() < 0.15
        if with_report:
            argv += ["--report", str(report)]
        code = main(["diagnose", *argv, "--json"])
        out, err = capsys.readouterr()
        assert code in (0, 2), (case, argv, err)
        exits[code] += 1
        if code == 0:
            _strict(out)
        else:
            assert out == "", (case, argv)
            assert err.count("\n") == 1 and "Traceback" not in err, (case, err)
            assert any(p.name in err for p in inputs) or "--" in err, (case, argv, err)
            assert not report.exists() and not any((d / "out").glob("*")), case
    print(f"fuzz: {FUZZ_CASES} inputs, exit 0: {exits[0]}, exit 2: {exits[2]}, tracebacks: 0")
    assert exits[0] > FUZZ_CASES // 10 and exits[2] > FUZZ_CASES // 10  # both paths exercised
