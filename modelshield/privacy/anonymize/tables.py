"""Reading the table to anonymise in chunks, keeping only the columns the algorithms need.

Partitioning needs every row's quasi-identifiers at once, but not the rest of the row: a quasi-identifier
is held as one float (numeric; an ISO date ``2021-03-14`` as its day number since 1970-01-01, so dates
generalise into ranges like numbers do) or one int32 code (categorical), the sensitive attribute as one code, so a
million-row file with five quasi-identifiers costs about 40 MB however wide it is. The released table is
written in a second pass over the file (``release.write_release``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from modelshield.core.errors import InputError, MissingFileError
from modelshield.privacy.anonymize.hierarchy import Hierarchy, IntervalHierarchy, TreeHierarchy

CHUNK_ROWS = 200_000


def _parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def header(path: str | Path) -> list[str]:
    """The column names of a CSV or Parquet file."""
    file = Path(path)
    if not file.is_file():
        raise MissingFileError(f"{file} does not exist")
    if _parquet(file):
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(file).schema_arrow.names)
    try:
        return list(pd.read_csv(file, nrows=0).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{file}: not a readable CSV file ({str(exc).splitlines()[0]})") from None


def require_columns(path: str | Path, columns: Sequence[str]) -> list[str]:
    """Fail in one line naming the first column the file lacks."""
    names = header(path)
    missing = [c for c in columns if c not in names]
    if missing:
        raise InputError(f"{path}: no column {missing[0]!r} (columns: {', '.join(names[:20])})")
    return names


def read_chunks(
    path: str | Path, columns: Sequence[str] | None = None, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """The file's rows, ``chunk_rows`` at a time, every value as a string (empty cells as '')."""
    file = Path(path)
    if _parquet(file):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(file).iter_batches(
            batch_size=chunk_rows, columns=list(columns) if columns else None
        ):
            yield batch.to_pandas().astype(str).replace({"None": "", "nan": ""})
        return
    reader = pd.read_csv(
        file, usecols=list(columns) if columns else None, dtype=str, keep_default_na=False, chunksize=chunk_rows
    )
    try:
        yield from reader
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{file}: not a readable CSV file ({str(exc).splitlines()[0]})") from None


def read_table(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """The named columns of a CSV or Parquet file, as strings; one line naming a missing column."""
    require_columns(path, columns)
    chunks = list(read_chunks(path, list(dict.fromkeys(columns))))
    return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=list(columns))


def _numbers(values: pd.Series) -> np.ndarray | None:
    parsed = pd.to_numeric(values, errors="coerce")
    return None if parsed.isna().any() else parsed.to_numpy(dtype=np.float64)


_ISO_DATE = r"\d{4}-\d{2}-\d{2}"


def days(values: pd.Series) -> np.ndarray | None:
    """Day numbers (since 1970-01-01) when every value is an ISO date ``YYYY-MM-DD``, else None.

    This is how pandas writes a date column to CSV, and what a Parquet date or midnight timestamp reads
    back as; a column with any other value (a time, free text, an empty cell) stays as it was."""
    parsed = _parse_days(values)
    if parsed.isna().any():
        return None
    return parsed.to_numpy().astype("datetime64[D]").astype(np.int64).astype(np.float64)


def _parse_days(values: pd.Series) -> pd.Series:
    text = values.astype(str)
    return pd.to_datetime(text.where(text.str.fullmatch(_ISO_DATE)), format="%Y-%m-%d", errors="coerce")


def day_text(day: float) -> str:
    """A day number as its ISO date."""
    return str(np.datetime64(int(day), "D"))


@dataclass
class Encoded:
    """Quasi-identifiers and the sensitive attribute of every row, encoded for the algorithms.

    ``numeric[j]`` holds floats (day numbers where ``dates[j]``), otherwise ``codes`` into
    ``hierarchies[j].leaves`` (so leaf order is code order). ``sensitive`` codes index ``sensitive_values`` (sorted, so ordered when numeric).
    """

    columns: list[str]
    x: np.ndarray  # (n, q) float64: numbers, or leaf codes for categorical columns
    numeric: list[bool]
    hierarchies: list[Hierarchy]
    sensitive: np.ndarray | None
    sensitive_name: str | None
    sensitive_values: list[str]
    sensitive_numeric: bool
    dates: list[bool] = field(default_factory=list)

    def is_date(self, j: int) -> bool:
        return bool(self.dates) and self.dates[j]

    @property
    def rows(self) -> int:
        return int(self.x.shape[0])

    def row_keys(self) -> np.ndarray:
        """One id per distinct combination of raw quasi-identifier values: the classes before anonymising."""
        return np.unique(self.x, axis=0, return_inverse=True)[1].ravel()

    def low_high(self) -> tuple[np.ndarray, np.ndarray]:
        """Each column's smallest and largest value (codes for categorical)."""
        return self.x.min(axis=0), self.x.max(axis=0)


class _Codes:
    """Strings → stable int codes as chunks arrive; remapped to sorted order at the end."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.parts: list[np.ndarray] = []

    def add(self, values: pd.Series) -> None:
        codes, uniques = pd.factorize(values, sort=False)
        table = np.array([self.index.setdefault(u, len(self.index)) for u in uniques], dtype=np.int32)
        self.parts.append(table[codes] if len(table) else np.zeros(0, np.int32))

    def finish(self, order: Sequence[str]) -> np.ndarray:
        position = {v: i for i, v in enumerate(order)}
        remap = np.array([position[v] for v in self.index], dtype=np.int32)
        joined = np.concatenate(self.parts) if self.parts else np.zeros(0, np.int32)
        return remap[joined] if len(remap) else joined


def encode(
    chunks: Iterator[pd.DataFrame],
    quasi_identifiers: Sequence[str],
    sensitive: str | None = None,
    hierarchies: dict[str, Hierarchy] | None = None,
) -> Encoded:
    """Encode the quasi-identifiers (and sensitive attribute) of every chunk.

    A column is numeric when its hierarchy is an interval one, or when it has none and every value in the
    first chunk is a number; it is a date column (numeric, in days) when every value in the first chunk is
    an ISO date and no tree hierarchy is given for it. A later value that does not fit is an error naming it."""
    given = hierarchies or {}
    numeric: list[bool] | None = None
    dates: list[bool] = []
    floats: list[list[np.ndarray]] = [[] for _ in quasi_identifiers]
    codes = [_Codes() for _ in quasi_identifiers]
    secret = _Codes()
    seen = 0
    for chunk in chunks:
        if numeric is None:
            dates = [
                not isinstance(given.get(c), TreeHierarchy) and len(chunk) > 0 and days(chunk[c]) is not None
                for c in quasi_identifiers
            ]
            numeric = [
                dates[j]
                or isinstance(given.get(c), IntervalHierarchy)
                or (c not in given and len(chunk) > 0 and _numbers(chunk[c]) is not None)
                for j, c in enumerate(quasi_identifiers)
            ]
        for j, col in enumerate(quasi_identifiers):
            if dates[j]:
                values = days(chunk[col])
                if values is None:
                    bad = chunk[col][_parse_days(chunk[col]).isna()].iloc[0]
                    raise InputError(
                        f"column {col!r} holds dates but also {bad!r} near row {seen + 1}",
                        hint="give it a categorical hierarchy, or clean the value",
                    )
                floats[j].append(values)
            elif numeric[j]:
                values = _numbers(chunk[col])
                if values is None:
                    bad = chunk[col][pd.to_numeric(chunk[col], errors="coerce").isna()].iloc[0]
                    raise InputError(
                        f"column {col!r} is numeric but holds {bad!r} near row {seen + 1}",
                        hint="give it a categorical hierarchy, or clean the value",
                    )
                floats[j].append(values)
            else:
                codes[j].add(chunk[col])
        if sensitive is not None:
            secret.add(chunk[sensitive])
        seen += len(chunk)
    if numeric is None or seen == 0:
        raise InputError("the table has no rows")
    columns: list[np.ndarray] = []
    trees: list[Hierarchy] = []
    for j, col in enumerate(quasi_identifiers):
        if numeric[j]:
            values = np.concatenate(floats[j])
            columns.append(values)
            hier = given.get(col)
            if not isinstance(hier, IntervalHierarchy):
                hier = IntervalHierarchy.nice(col, float(values.min()), float(values.max()))
            trees.append(hier)
        else:
            observed = list(codes[j].index)
            hier = given.get(col)
            tree = hier.with_values(observed) if isinstance(hier, TreeHierarchy) else TreeHierarchy.flat(col, observed)
            trees.append(tree)
            columns.append(codes[j].finish(tree.leaves).astype(np.float64))
    secret_values: list[str] = []
    secret_numeric = False
    secret_codes: np.ndarray | None = None
    if sensitive is not None:
        raw = list(secret.index)
        as_numbers = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce")
        secret_numeric = not as_numbers.isna().any()
        secret_values = [raw[i] for i in np.argsort(as_numbers.to_numpy())] if secret_numeric else sorted(raw)
        secret_codes = secret.finish(secret_values)
    return Encoded(
        list(quasi_identifiers),
        np.column_stack(columns),
        numeric,
        trees,
        secret_codes,
        sensitive,
        secret_values,
        secret_numeric,
        dates,
    )


def encode_frame(
    frame: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    sensitive: str | None = None,
    hierarchies: dict[str, Hierarchy] | None = None,
) -> Encoded:
    """``encode`` for a table already in memory (values are read as strings, as from a file)."""
    missing = [c for c in [*quasi_identifiers, *([sensitive] if sensitive else [])] if c not in frame.columns]
    if missing:
        raise InputError(f"the table has no column {missing[0]!r}")
    cols = list(dict.fromkeys([*quasi_identifiers, *([sensitive] if sensitive else [])]))
    as_text = frame[cols].astype(str)
    return encode(iter([as_text]), quasi_identifiers, sensitive, hierarchies)
