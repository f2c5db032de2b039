"""Reading predictions and targets in chunks from CSV/TSV (plain, .gz, .bz2), Parquet,
.npy and .npz files.

Every problem with the input is an :class:`InputError` whose message is one line naming
the file, what is wrong and where (column, row, line), so the CLI can print it and exit 2.
Integer columns stay integers until the residual is formed (exact beyond 2^53); missing
cells (empty or null) are counted apart from NaN and inf.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from .._optional import require

__all__ = ["Chunk", "InputError", "Source", "open_source"]

#: pyarrow's CSV block size is an int32: cap what --chunk-rows asks for.
_MAX_BLOCK = 1 << 30
_EXACT_INT = 2**53  # beyond this an int64 is not a float64
_COMPRESSION = {".gz": "gzip", ".bz2": "bz2"}
_TEXT = {f"{ext}{z}" for ext in (".csv", ".tsv") for z in ("", ".gz", ".bz2")}
#: CSV cells read as missing values (the rest must parse as numbers, nan and inf included).
MISSING_MARKERS = ["", "NA", "N/A", "n/a", "NULL", "null", "None", "#N/A"]
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"PAR1": "Parquet", b"\x93NUMPY": ".npy"}

DEFAULT_PRED, DEFAULT_TARGET = "prediction", "target"


class InputError(ValueError):
    """Bad input: the message is the whole story, on one line."""


@dataclass
class Chunk:
    pred: np.ndarray  # (rows, outputs) float64
    target: np.ndarray  # (rows, outputs) float64
    weight: np.ndarray | None  # (rows,) float64
    rows: np.ndarray  # (rows,) 0-based data row numbers
    resid: np.ndarray | None = None  # (rows, outputs) pred - target, formed exactly
    missing: np.ndarray | None = None  # (rows,) bool: an empty cell or null in the row
    bytes_read: int | None = None  # input bytes consumed so far (for progress)


@dataclass
class Source:
    """An opened input: its column names and a way to iterate over it in chunks."""

    description: str
    pred_cols: list[str]
    target_cols: list[str]
    weight_col: str | None
    total_rows: int | None
    _iter: Any
    total_bytes: int | None = field(default=None)
    #: numbers parsed from text as float64: integers beyond 2^53 there are already rounded
    from_text: bool = False

    def chunks(self, *, prefetch: int = 0) -> Iterator[Chunk]:
        """The chunks in order; with ``prefetch`` > 0, read that many ahead on a background
        thread, so decoding the next chunk (pyarrow and NumPy release the GIL) overlaps the
        work on this one."""
        if prefetch <= 0:
            yield from self._iter()
        else:
            yield from _prefetched(self._iter(), prefetch)


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


def _prefetched(chunks: Iterator[Chunk], depth: int) -> Iterator[Chunk]:
    """``chunks`` read by a worker thread up to ``depth`` ahead. The reader's exceptions are
    re-raised here, in order; closing this generator stops the worker, which closes the
    reader (its files) itself, so nothing outlives an early exit."""
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for chunk in chunks:
                if not put(chunk):
                    return
            put(_END)
        except BaseException as exc:  # delivered to the consumer, raised there
            put(_Raised(exc))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name="regloss-read", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        worker.join()


def _pick(
    columns: list[str],
    pred: list[str] | None,
    target: list[str] | None,
    weight: str | None,
    where: str,
) -> tuple[list[str], list[str]]:
    pred = pred or ([DEFAULT_PRED] if DEFAULT_PRED in columns else [])
    target = target or ([DEFAULT_TARGET] if DEFAULT_TARGET in columns else [])
    if not pred or not target:
        raise InputError(
            f"{where}: no columns named '{DEFAULT_PRED}' and '{DEFAULT_TARGET}'; choose them "
            f"with --pred COL --target COL from the columns {columns}"
        )
    for col in [*pred, *target, *([weight] if weight else [])]:
        if col not in columns:
            raise InputError(f"{where}: no column {col!r}; the columns are {columns}")
        if columns.count(col) > 1:
            raise InputError(
                f"{where}: {columns.count(col)} columns are named {col!r}; rename them so "
                "each name is unique"
            )
    if len(pred) != len(target):
        raise InputError(
            f"{where}: {len(pred)} prediction column(s) but {len(target)} target column(s); "
            "give one --target per --pred"
        )
    return pred, target


def _residual(p: np.ndarray, t: np.ndarray) -> np.ndarray | None:
    """p − t formed in integers when both are integers beyond float64's exact range."""
    if p.dtype.kind not in "iu" or t.dtype.kind not in "iu" or p.size == 0:
        return None
    big = max(int(np.abs(p).max()), int(np.abs(t).max()))
    if big <= _EXACT_INT:
        return None  # float64 holds both exactly; its difference is correctly rounded
    if big < 2**62:  # no int64 overflow in the difference
        return (p.astype(np.int64) - t.astype(np.int64)).astype(np.float64)
    return np.array([float(int(a) - int(b)) for a, b in zip(p.tolist(), t.tolist())])


def _chunk(
    table: dict[str, np.ndarray],
    pred: list[str],
    target: list[str],
    weight: str | None,
    start: int,
    missing: np.ndarray | None = None,
    bytes_read: int | None = None,
) -> Chunk:
    raw = [(table[p], table[t]) for p, t in zip(pred, target)]
    if len(raw) == 1:  # one output: a column view, no copy
        p = np.asarray(raw[0][0], dtype=np.float64)[:, None]
        t = np.asarray(raw[0][1], dtype=np.float64)[:, None]
    else:
        p = np.column_stack([np.asarray(a, dtype=np.float64) for a, _ in raw])
        t = np.column_stack([np.asarray(b, dtype=np.float64) for _, b in raw])
    exact = [_residual(np.asarray(a), np.asarray(b)) for a, b in raw]
    resid = None
    if any(e is not None for e in exact):
        resid = np.column_stack(
            [e if e is not None else pc - tc for e, pc, tc in zip(exact, p.T, t.T)]
        )
    w = None if weight is None else np.asarray(table[weight], dtype=np.float64)
    return Chunk(p, t, w, np.arange(start, start + p.shape[0]), resid, missing, bytes_read)


def _arrow_columns(batch: Any, wanted: list[str]) -> tuple[dict[str, np.ndarray], Any]:
    """NumPy columns (nulls as NaN, integers kept) and the rows holding a null."""
    pa = require("pyarrow", "reading CSV and Parquet files")
    pc = require("pyarrow.compute", "reading CSV and Parquet files")
    table: dict[str, np.ndarray] = {}
    missing = None
    for c in wanted:
        col = batch.column(c)
        if col.null_count:
            nulls = col.is_null().to_numpy(zero_copy_only=False)
            missing = nulls if missing is None else missing | nulls
            col = pc.cast(col, pa.float64())
        elif pa.types.is_decimal(col.type):
            col = pc.cast(col, pa.float64())
        table[c] = col.to_numpy(zero_copy_only=False)
    return table, missing


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _sniff(path: Path) -> str | None:
    """What the first bytes say the file is (gzip, bz2, Parquet, .npy), if anything."""
    with path.open("rb") as f:
        head = f.read(8)
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)


def _text(path: Path, compression: str | None, encoding: str) -> IO[str]:
    opener: Any = {"gzip": gzip.open, "bz2": bz2.open, None: open}[compression]
    return opener(path, "rt", encoding=encoding, newline="")  # type: ignore[no-any-return]


def _decode_error(path: Path, exc: UnicodeDecodeError, encoding: str) -> InputError:
    return InputError(
        f"{path}: not {encoding} text (byte 0x{exc.object[exc.start]:02x} at offset "
        f"{exc.start} of a block); pass --encoding latin-1 (or the file's encoding)"
    )


def _open_csv(
    path: Path,
    pred: list[str] | None,
    target: list[str] | None,
    weight: str | None,
    chunk_rows: int,
    delimiter: str | None = None,
    encoding: str = "utf-8",
) -> Source:
    pa = require("pyarrow", "reading CSV files")
    pcsv = require("pyarrow.csv", "reading CSV files")
    name = path.name.lower()
    compression = _COMPRESSION.get(path.suffix.lower())
    kind = _sniff(path)
    if kind is not None and kind != compression:
        stem = path.name[: -len(path.suffix)] if compression else path.name
        better = {
            "gzip": f"{stem}.gz",
            "bz2": f"{stem}.bz2",
            "Parquet": f"{Path(stem).stem}.parquet",
        }
        hint = f"name it {better.get(kind, Path(stem).stem + '.npy')}"
        raise InputError(f"{path}: the content is {kind}, not CSV text; {hint}")
    if delimiter is None:
        delimiter = "\t" if name.endswith((".tsv", ".tsv.gz", ".tsv.bz2")) else ","
    if len(delimiter) != 1:
        raise InputError(f"--delimiter must be one character, got {delimiter!r}")
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"--encoding: unknown encoding {encoding!r}") from None
    # utf-8-sig drops the byte-order mark Excel writes ("CSV UTF-8"); pyarrow skips it too.
    text_encoding = "utf-8-sig" if codec.name == "utf-8" else encoding
    try:
        with _text(path, compression, text_encoding) as f:
            header = next(csv.reader(f, delimiter=delimiter), None)
    except UnicodeDecodeError as exc:
        raise _decode_error(path, exc, encoding) from None
    except (OSError, EOFError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the file ({exc})") from None
    if not header:
        raise InputError(f"{path}: the file is empty (no header row)")
    p_cols, t_cols = _pick(header, pred, target, weight, str(path))
    wanted = list(dict.fromkeys([*p_cols, *t_cols, *([weight] if weight else [])]))
    size = path.stat().st_size

    def chunks() -> Iterator[Chunk]:
        # float64 throughout: type inference per block would fail on a column whose first
        # block looks integer. Only true gaps are missing values; "nan" and "inf" are numbers.
        opts = pcsv.ConvertOptions(
            include_columns=wanted,
            column_types={c: pa.float64() for c in wanted},
            null_values=MISSING_MARKERS,
        )
        block = min(_MAX_BLOCK, max(1 << 16, chunk_rows * 16 * len(header)))
        read = pcsv.ReadOptions(block_size=block, encoding=encoding)
        parse = pcsv.ParseOptions(delimiter=delimiter)
        start = 0
        raw = pa.OSFile(str(path))
        stream = raw if compression is None else pa.CompressedInputStream(raw, compression)
        try:
            reader = pcsv.open_csv(
                stream, read_options=read, parse_options=parse, convert_options=opts
            )
            for batch in reader:
                table, missing = _arrow_columns(batch, wanted)
                yield _chunk(table, p_cols, t_cols, weight, start, missing, raw.tell())
                start += batch.num_rows
        except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
            raise _csv_cell_error(path, compression, encoding, delimiter, header, wanted) or (
                InputError(
                    f"{path}: cannot parse the CSV file past data row {start} "
                    f"({str(exc).splitlines()[0]})"
                )
            ) from None
        finally:
            stream.close()

    return Source(f"CSV file {path}", p_cols, t_cols, weight, None, chunks, size, True)


def _csv_cell_error(
    path: Path,
    compression: str | None,
    encoding: str,
    delimiter: str,
    header: list[str],
    wanted: list[str],
) -> InputError | None:
    """Find the first bad row of the wanted columns (only on the error path): a non-numeric
    cell, a row with the wrong number of fields, or undecodable bytes. Blank lines are
    skipped, as pyarrow skips them, so data row numbers match the report's."""
    index = {c: header.index(c) for c in wanted}
    row_no = 0
    line = 1
    try:
        with _text(path, compression, encoding if encoding != "utf-8" else "utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            next(reader)
            for row in reader:
                if not row:
                    line = reader.line_num
                    continue
                where = f"at data row {row_no} (line {line + 1})"
                if len(row) != len(header):
                    return InputError(
                        f"{path}: {len(row)} field(s) {where}, but the header has "
                        f"{len(header)}; fix that row (is a delimiter inside an unquoted value?)"
                    )
                for col, i in index.items():
                    cell = row[i]
                    if cell.strip() in MISSING_MARKERS:
                        continue  # a missing value, counted later
                    try:
                        float(cell)
                    except ValueError:
                        return InputError(
                            f"{path}: non-numeric value {cell!r} in column {col!r} {where}; "
                            "fix or remove that row"
                        )
                row_no += 1
                line = reader.line_num
    except UnicodeDecodeError as exc:
        return _decode_error(path, exc, encoding)
    except (OSError, EOFError, csv.Error) as exc:
        return InputError(f"{path}: cannot read the file near line {line + 1} ({exc})")
    return None


def _open_parquet(
    path: Path,
    pred: list[str] | None,
    target: list[str] | None,
    weight: str | None,
    chunk_rows: int,
) -> Source:
    pa = require("pyarrow", "reading Parquet files")
    pq = require("pyarrow.parquet", "reading Parquet files")
    try:
        # pre_buffer=False: the default read-ahead keeps the whole file in memory (measured:
        # 453 MB peak for a 320 MB file, against 150 MB streaming).
        pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        schema = pf.schema_arrow
    except Exception as exc:  # damaged metadata raises Arrow, OS and Unicode errors alike
        raise InputError(
            f"{path}: cannot read the Parquet file ({_first_line(exc)}); is it "
            "truncated or not Parquet?"
        ) from None
    p_cols, t_cols = _pick(schema.names, pred, target, weight, str(path))
    wanted = list(dict.fromkeys([*p_cols, *t_cols, *([weight] if weight else [])]))
    for c in wanted:
        typ = schema.field(c).type
        if not (pa.types.is_floating(typ) or pa.types.is_integer(typ) or pa.types.is_decimal(typ)):
            raise InputError(
                f"{path}: column {c!r} has type {typ}; it needs numbers (integer, floating "
                "point or decimal)"
            )

    def chunks() -> Iterator[Chunk]:
        start = 0
        try:
            for batch in pf.iter_batches(batch_size=chunk_rows, columns=wanted):
                table, missing = _arrow_columns(batch, wanted)
                yield _chunk(table, p_cols, t_cols, weight, start, missing)
                start += batch.num_rows
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise InputError(
                f"{path}: cannot read the Parquet file past row {start} "
                f"({_first_line(exc)}); is it truncated?"
            ) from None

    return Source(f"Parquet file {path}", p_cols, t_cols, weight, pf.metadata.num_rows, chunks)


def _numeric(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.dtype.kind not in "fiu":
        raise InputError(f"{where}: the array has dtype {arr.dtype}, not numbers")
    if arr.ndim not in (1, 2):
        raise InputError(f"{where}: expected a 1-D or 2-D array, got shape {arr.shape}")
    return arr if arr.ndim == 2 else arr[:, None]


def _arrays_source(
    desc: str,
    p: np.ndarray,
    t: np.ndarray,
    w: np.ndarray | None,
    names: tuple[list[str], list[str], str | None],
    chunk_rows: int,
) -> Source:
    if p.shape != t.shape:
        raise InputError(
            f"{desc}: prediction has shape {p.shape} but target has shape {t.shape}; "
            "they must have the same number of rows and outputs"
        )
    if w is not None and w.shape[0] != p.shape[0]:
        raise InputError(f"{desc}: weight has {w.shape[0]} rows but the data has {p.shape[0]}")

    def chunks() -> Iterator[Chunk]:
        for start in range(0, p.shape[0], chunk_rows):
            stop = min(start + chunk_rows, p.shape[0])
            ps, ts = np.asarray(p[start:stop]), np.asarray(t[start:stop])
            table = {f"p{j}": ps[:, j] for j in range(ps.shape[1])}
            table |= {f"t{j}": ts[:, j] for j in range(ts.shape[1])}
            if w is not None:
                table["w"] = np.asarray(w[start:stop])
            k = range(ps.shape[1])
            yield _chunk(
                table,
                [f"p{j}" for j in k],
                [f"t{j}" for j in k],
                None if w is None else "w",
                start,
            )

    return Source(desc, names[0], names[1], names[2], p.shape[0], chunks)


def _open_npy(paths: list[Path], chunk_rows: int) -> Source:
    if len(paths) != 2:
        raise InputError(
            f"{paths[0]}: .npy input takes two files, predictions then targets "
            "(regloss diagnose pred.npy target.npy)"
        )
    arrays = []
    for path in paths:
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:  # a damaged header raises anything from tokenize to zip
            raise InputError(f"{path}: cannot read the .npy file ({_first_line(exc)})") from None
        arrays.append(_numeric(arr, str(path)))
    k = arrays[0].shape[1]
    names = ([f"prediction[{i}]" for i in range(k)], [f"target[{i}]" for i in range(k)], None)
    return _arrays_source(
        f"{paths[0]} and {paths[1]}", arrays[0], arrays[1], None, names, chunk_rows
    )


def _open_npz(
    path: Path,
    pred: list[str] | None,
    target: list[str] | None,
    weight: str | None,
    chunk_rows: int,
) -> Source:
    try:
        data = np.load(path, allow_pickle=False)
        p_cols, t_cols = _pick(list(data.files), pred, target, weight, str(path))
        # an .npz member is read (and its CRC checked) only when accessed: read them here
        arrays = {c: data[c] for c in {*p_cols, *t_cols, *([weight] if weight else [])}}
    except InputError:
        raise
    except Exception as exc:  # a damaged archive raises anything from zlib to tokenize
        raise InputError(f"{path}: cannot read the .npz file ({_first_line(exc)})") from None
    p = np.column_stack([_numeric(arrays[c], f"{path}[{c}]") for c in p_cols])
    t = np.column_stack([_numeric(arrays[c], f"{path}[{c}]") for c in t_cols])
    w = None
    if weight is not None:
        w = _numeric(arrays[weight], f"{path}[{weight}]")
        if w.shape[1] != 1:
            raise InputError(
                f"{path}[{weight}]: the weight must be 1-D (one weight per row), got shape "
                f"{arrays[weight].shape}"
            )
        w = w[:, 0]
    return _arrays_source(str(path), p, t, w, (p_cols, t_cols, weight), chunk_rows)


def open_source(
    paths: list[str],
    *,
    pred: list[str] | None = None,
    target: list[str] | None = None,
    weight: str | None = None,
    chunk_rows: int = 1 << 16,
    delimiter: str | None = None,
    encoding: str = "utf-8",
) -> Source:
    """Open the input named on the command line (one file, or two .npy files)."""
    if not isinstance(chunk_rows, int) or isinstance(chunk_rows, bool) or chunk_rows < 1:
        raise InputError(f"--chunk-rows must be a positive integer, got {chunk_rows!r}")
    files = [Path(p) for p in paths]
    for f in files:
        if f.is_dir():
            raise InputError(f"{f}: is a directory; name a file in it")
        if not f.exists():
            raise InputError(f"{f}: no such file")
        if not f.is_file():
            raise InputError(f"{f}: not a regular file")
    name = files[0].name.lower()
    suffix = files[0].suffix.lower()
    if suffix in _COMPRESSION:
        suffix = Path(name[: -len(suffix)]).suffix + suffix
    if delimiter is not None and suffix not in _TEXT:
        raise InputError(f"{files[0]}: --delimiter applies to CSV/TSV files, not {suffix}")
    if suffix == ".npy":
        if pred or target or weight:
            raise InputError(
                f"{files[0]}: --pred/--target/--weight name columns; .npy files "
                "have none (pass the prediction and target files)"
            )
        return _open_npy(files, chunk_rows)
    if len(files) != 1:
        raise InputError(f"{files[1]}: only .npy input takes two files")
    if suffix in _TEXT:
        return _open_csv(files[0], pred, target, weight, chunk_rows, delimiter, encoding)
    if suffix in (".parquet", ".pq"):
        return _open_parquet(files[0], pred, target, weight, chunk_rows)
    if suffix == ".npz":
        return _open_npz(files[0], pred, target, weight, chunk_rows)
    raise InputError(
        f"{files[0]}: unknown file type {suffix!r}; use .csv, .tsv (optionally .gz or .bz2), "
        ".parquet, .npy or .npz"
    )
