"""Tables read in chunks, so drift is measured on files larger than memory.

A source is a CSV (header row), a Parquet file, an ``.npz`` (1-D arrays are columns; a 2-D array ``x`` becomes
columns ``x[0]``, ``x[1]``, ...), a pandas DataFrame or a mapping of column name → 1-D array. CSV and Parquet are
streamed through pyarrow, a block at a time; an ``.npz`` is read whole (zip members cannot be sliced) and then
chunked. Every chunk arrives already split by kind: numeric columns as float64 arrays (missing → NaN), categorical
columns (text, booleans, dictionary-encoded) as their distinct values with counts, which is all drift tests need
from them and far smaller than the strings.

Values are read as users mean them, and alike whatever the source: dates, timestamps (any time zone, as UTC) and
durations are numbers of seconds; a pandas ``Categorical`` is categorical even when its categories are numbers;
pandas' missing markers (``pd.NA``, ``NaT``) and ±∞ are missing; a category's text is spelled as Arrow spells it (booleans
``true``/``false`` — also when a CSV wrote ``True`` — and whole floats without ``.0``), so a sketch made from a
DataFrame reads the same data from the Parquet or CSV file pandas writes of it.
"""

from __future__ import annotations

import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelshield.core.errors import DependencyError, FormatError, InputError, MissingFileError
from modelshield.core.file_formats import detect_format, refuse_pickled_npy

#: rows per chunk for Parquet and in-memory data (CSV blocks are sized in bytes to about the same)
CHUNK_ROWS = 65_536
_CSV_BLOCK = 16 << 20


@dataclass
class Chunk:
    """One slice of a table: numeric columns as float64 (NaN = missing), categorical ones as value counts."""

    rows: int
    #: every column, in the table's order
    columns: list[str] = field(default_factory=list)
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, dict[str, int]] = field(default_factory=dict)
    #: rows with no value, per categorical column (numeric columns carry NaN instead)
    missing: dict[str, int] = field(default_factory=dict)


#: a way to read the same data again from the start (a reference sketch makes two passes)
ChunkSource = Callable[[], Iterator[Chunk]]


def chunk_source(
    data: str | Path | Mapping[str, Any] | Any, chunk_rows: int = CHUNK_ROWS, categorical: Iterable[str] = ()
) -> ChunkSource:
    """A re-readable chunk stream over a file path, a DataFrame or a mapping of columns.

    ``categorical`` names columns to treat as categories even though they hold numbers (codes, small integers).
    """
    if chunk_rows < 1:
        raise InputError(f"chunk size must be at least one row, not {chunk_rows}")
    forced = frozenset(categorical)
    if isinstance(data, str | Path):
        path = Path(data)
        if not path.is_file():
            raise MissingFileError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
        fmt = detect_format(path)
        if fmt == "parquet":
            return lambda: _parquet_chunks(path, chunk_rows, forced)
        if fmt == "npz":
            columns = _npz_columns(path)
            return lambda: _array_chunks(columns, chunk_rows, forced)
        if fmt != "unknown":
            raise FormatError(f"{path} is a {fmt} file, not a table; drift reads CSV, Parquet or .npz")
        return lambda: _csv_chunks(path, forced)
    if hasattr(data, "columns") and hasattr(data, "__getitem__"):  # a pandas DataFrame, without importing pandas
        columns, categories = _frame_columns(data)
        return lambda: _array_chunks(columns, chunk_rows, forced | categories)
    if isinstance(data, Mapping):
        columns = {str(k): np.asarray(v) for k, v in data.items()}
        return lambda: _array_chunks(columns, chunk_rows, forced)
    raise InputError(f"cannot read a table from a {type(data).__name__}; pass a path, a DataFrame or a dict of arrays")


def _frame_columns(frame: Any) -> tuple[dict[str, np.ndarray], frozenset[str]]:
    """A DataFrame's columns as numpy arrays, and the names of its ``Categorical`` columns.

    numpy turns a time-zone-aware column into Timestamp objects and a Categorical into its categories' own type
    (numbers for codes): the former is read as UTC datetime64, the latter as objects marked categorical."""
    columns: dict[str, np.ndarray] = {}
    categories: set[str] = set()
    unique_names([str(c) for c in frame.columns])
    for c in frame.columns:
        col, dtype = frame[c], getattr(frame[c], "dtype", None)
        if getattr(dtype, "name", "") == "category":
            columns[str(c)] = np.asarray(col, dtype=object)
            categories.add(str(c))
        elif getattr(dtype, "tz", None) is not None:
            columns[str(c)] = np.asarray(col, dtype="datetime64[us]")
        else:
            columns[str(c)] = np.asarray(col)
    return columns, frozenset(categories)


def unique_names(names: list[str]) -> None:
    """Refuse a table whose columns repeat a name: one would silently stand for both."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"column {name!r} appears twice in the table; rename one of them")
        seen.add(name)


def finite(values: np.ndarray) -> np.ndarray:
    """Float values with ±∞ read as missing (NaN), in a copy only when there are any: one infinity makes the
    moments NaN, which no report can carry, and says nothing about the distribution a test could use."""
    infinite = np.isinf(values)
    return np.where(infinite, np.nan, values) if infinite.any() else values


def _seconds(values: np.ndarray) -> np.ndarray:
    """Dates, timestamps and durations as float seconds (since the epoch for the former); NaT → NaN."""
    unit = "datetime64[us]" if values.dtype.kind == "M" else "timedelta64[us]"
    micro = values.astype(unit)
    out = micro.view(np.int64) / 1e6
    out[np.isnat(micro)] = np.nan
    return out


def _npz_columns(path: Path) -> dict[str, np.ndarray]:
    """Columns of an .npz; member headers are checked first so an object array is never unpickled."""
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                with zf.open(name) as f:
                    refuse_pickled_npy(f, f"{path}:{name}")
        with np.load(path, allow_pickle=False) as arrays:
            loaded = {name: arrays[name] for name in arrays.files}
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise FormatError(f"cannot read {path} as .npz: {e}") from e
    columns: dict[str, np.ndarray] = {}
    for name, arr in loaded.items():
        if arr.ndim == 1:
            columns[name] = arr
        elif arr.ndim == 2:
            columns.update({f"{name}[{j}]": arr[:, j] for j in range(arr.shape[1])})
        else:
            raise InputError(f"{path}: array {name!r} has shape {arr.shape}; drift reads 1-D columns or 2-D tables")
    return columns


def _array_chunks(columns: dict[str, np.ndarray], chunk_rows: int, forced: frozenset[str]) -> Iterator[Chunk]:
    lengths = {len(c) for c in columns.values()}
    if len(lengths) > 1:
        raise InputError(f"columns have different lengths: {sorted(lengths)}")
    if not columns:
        raise InputError("the table has no columns")
    n = lengths.pop()
    for start in range(0, n, chunk_rows):
        chunk = Chunk(rows=min(chunk_rows, n - start), columns=list(columns))
        for name, col in columns.items():
            part = col[start : start + chunk_rows]
            if part.dtype.kind in "iuf" and name not in forced:
                chunk.numeric[name] = finite(part.astype(np.float64, copy=False))
            elif part.dtype.kind in "Mm" and name not in forced:
                chunk.numeric[name] = _seconds(part)
            else:
                _add_categories(chunk, name, part)
        yield chunk


def _add_categories(chunk: Chunk, name: str, values: np.ndarray) -> None:
    """Count the distinct values of one column slice; None, NaN, NaT, pd.NA and empty strings are missing.

    Python counts objects that compare equal as one, so in a column mixing them True is counted with 1."""
    counts: Counter[str] = Counter()
    if values.dtype.kind == "O":  # counted as objects first (at C speed), then each distinct value spelled once
        items = values.tolist()
        try:
            distinct = Counter(items)
        except TypeError:  # lists, dicts (parsed JSON): counted by their text
            distinct = Counter(str(v) if type(v).__hash__ is None else v for v in items)
        for v, c in distinct.items():
            if type(v) is str:  # most values: spare them the general checks
                if v:
                    counts[_BOOL_TEXT.get(v, v)] += c
            elif _present(v):
                counts[_text(v)] += c
        present = sum(counts.values())
    else:
        kept = values[~np.isnan(values)] if values.dtype.kind == "f" else values
        kept = kept[~np.isnat(kept)] if kept.dtype.kind in "Mm" else kept
        kept = kept[kept != ""] if kept.dtype.kind in "US" else kept
        keys, n = np.unique(kept, return_counts=True)
        for k, c in zip(keys.tolist(), n.tolist(), strict=True):
            counts[_text(k)] += c
        present = len(kept)
    chunk.categorical[name] = dict(counts)
    chunk.missing[name] = len(values) - present


def _present(v: Any) -> bool:
    """False for None, NaN, NaT, pd.NA (whose comparisons are neither true nor false) and the empty string."""
    try:
        return not (v is None or bool(v != v) or (isinstance(v, str) and v == ""))
    except TypeError:
        return False


#: booleans as Arrow casts them to text, and the spellings CSV writers use for them
_BOOL_TEXT = {"True": "true", "TRUE": "true", "False": "false", "FALSE": "false"}


def _text(v: Any) -> str:
    """A category's text as Arrow's cast to string writes it: true/false, whole floats without '.0'."""
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    text = str(v)
    return _BOOL_TEXT.get(text, text)


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
    except ImportError as e:
        raise DependencyError("reading CSV and Parquet needs pyarrow", hint="pip install 'modelshield[data]'") from e
    return pa


def _parquet_chunks(path: Path, chunk_rows: int, forced: frozenset[str]) -> Iterator[Chunk]:
    pa = _pyarrow()
    import pyarrow.parquet as pq

    try:
        # a buffered stream, not pre-buffered column chunks: pyarrow's default read-ahead grows with the file
        # (peak 448 MiB of pool at 1M rows × 50 against 198 MiB at 250k); buffered, it stays at 149 MiB for both
        reader = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        forced = forced | _parquet_categories(reader.schema_arrow)
        batches = reader.iter_batches(batch_size=chunk_rows)
        yield from (_arrow_chunk(b, forced) for b in batches)
    except (pa.ArrowException, OSError) as e:
        raise FormatError(f"cannot read {path} as Parquet: {_short(e)}") from e


def _parquet_categories(schema: Any) -> frozenset[str]:
    """Columns the writer declared categorical — a pandas Categorical (in pandas' metadata) or an Arrow
    dictionary — which batches read back as their plain values (integers, for codes)."""
    import pyarrow as pa

    declared = {
        c.get("name")
        for c in (schema.pandas_metadata or {}).get("columns", [])
        if c.get("pandas_type") == "categorical"
    }
    declared |= {f.name for f in schema if pa.types.is_dictionary(f.type)}
    return frozenset(str(c) for c in declared if c is not None)


def _csv_chunks(path: Path, forced: frozenset[str]) -> Iterator[Chunk]:
    """CSV a block at a time; forced categorical columns are read as text so '007' stays '007'."""
    pa = _pyarrow()
    import pyarrow.csv as pacsv

    try:
        with open(path, "rb") as f:
            if b"\x00" in f.read(1 << 16):
                raise FormatError(f"{path} is not a CSV, Parquet or .npz table (binary content)")
        convert = pacsv.ConvertOptions(column_types=dict.fromkeys(forced, pa.string()))
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK), convert_options=convert)
        yield from (_arrow_chunk(b, forced) for b in reader)
    except pa.ArrowInvalid as e:
        typed = "conversion error" in str(e).lower()  # a column's type changed after the first block
        hint = "name a column of mixed numbers and text with --categorical" if typed else ""
        raise InputError(f"cannot read {path} as CSV: {_short(e)}", hint=hint) from e
    except (pa.ArrowException, UnicodeDecodeError) as e:
        raise FormatError(f"cannot read {path} as CSV: {_short(e)}") from e


def _arrow_chunk(batch: Any, forced: frozenset[str]) -> Chunk:
    import pyarrow as pa
    import pyarrow.compute as pc

    unique_names(batch.schema.names)
    chunk = Chunk(rows=batch.num_rows, columns=list(batch.schema.names))
    for name, col in zip(batch.schema.names, batch.columns, strict=True):
        kind = col.type
        if name in forced:
            pass
        elif pa.types.is_null(kind):  # no values in the whole column: pandas' all-NaN float column
            chunk.numeric[name] = np.full(len(col), np.nan)
            continue
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            chunk.numeric[name] = finite(col.cast(pa.float64()).to_numpy(zero_copy_only=False))
            continue
        elif pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_duration(kind):
            chunk.numeric[name] = _seconds(col.to_numpy(zero_copy_only=False))
            continue
        present = pc.drop_null(col.cast(pa.string()))
        present = pc.filter(present, pc.not_equal(present, ""))
        counts = pc.value_counts(present)
        merged: Counter[str] = Counter()
        for value, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True):
            merged[_BOOL_TEXT.get(value, value)] += n
        chunk.categorical[name] = dict(merged)
        chunk.missing[name] = len(col) - len(present)
    return chunk


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:200]


__all__ = ["CHUNK_ROWS", "Chunk", "ChunkSource", "chunk_source", "finite"]
