"""CSV and Parquet read in chunks and written back in chunks, so memory follows the chunk, not the file.

A CSV is hashed as it is parsed (the digest is of the very bytes that were read, not of the file as it was
a moment earlier); a Parquet file, read by random access, is re-hashed after the last batch. Either way the
pipeline compares that digest with the one its provenance check proved, and refuses on a difference.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from modelshield.core.errors import DependencyError, FormatError, InputError, MissingFileError
from modelshield.core.files import hash_file
from modelshield.defenses.poisoning.schema import Schema
from modelshield.ingest.schema import check_columns, text_columns

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

TableFormat = Literal["csv", "parquet"]
_PARQUET_MAGIC = b"PAR1"


def _pandas() -> Any:
    try:
        import pandas as pd
        import pyarrow  # noqa: F401 - Parquet, and the writer of both formats
    except ImportError as e:
        raise DependencyError(
            "ingesting tables needs pandas and pyarrow", hint="pip install 'modelshield[data]'"
        ) from e
    return pd


def table_format(path: Path) -> TableFormat:
    """Parquet by its magic bytes, CSV otherwise; a missing or unreadable file is refused here, before any work."""
    if not path.exists():
        raise MissingFileError(f"{path} does not exist")
    if not path.is_file():
        raise InputError(f"{path} is not a regular file")
    with path.open("rb") as f:
        head = f.read(4)
    return "parquet" if head == _PARQUET_MAGIC else "csv"


class _HashingReader:
    """A binary file whose every byte read also goes through SHA-256."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self.sha256.update(data)
        return data

    def drain(self) -> str:
        """Hash whatever the parser did not read (trailing bytes) and return the digest."""
        while data := self._f.read(1 << 20):
            self.sha256.update(data)
        return f"sha256:{self.sha256.hexdigest()}"


@dataclass
class Chunk:
    """One slice of the table: ``raw`` as read (what the accepted file is written from), ``frame`` as pandas."""

    raw: Any  # pandas.DataFrame for CSV, pyarrow.RecordBatch for Parquet
    frame: pd.DataFrame
    first_row: int


class TableReader:
    """Iterate a table in chunks of ``chunk_rows`` records; ``digest`` is known once iteration ends."""

    def __init__(self, path: Path, schema: Schema, chunk_rows: int) -> None:
        if chunk_rows < 1:
            raise InputError(f"chunk size must be at least 1 record, got {chunk_rows}")
        self.path = path
        self.schema = schema
        self.chunk_rows = chunk_rows
        self.format = table_format(path)
        self.digest: str | None = None
        self.rows = 0
        self.arrow_schema: pa.Schema | None = None

    def columns(self) -> list[str]:
        """The header (CSV) or the schema's field names (Parquet), checked against the schema."""
        pd = _pandas()
        try:
            if self.format == "parquet":
                import pyarrow.parquet as pq

                self.arrow_schema = pq.read_schema(self.path)
                found = list(self.arrow_schema.names)
            else:
                found = [str(c) for c in pd.read_csv(self.path, nrows=0, encoding="utf-8").columns]
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            raise FormatError(f"cannot read {self.path} as {self.format}: {_one_line(exc)}") from None
        check_columns(found, self.schema, str(self.path))
        return found

    def __iter__(self) -> Iterator[Chunk]:
        return self._parquet() if self.format == "parquet" else self._csv()

    def _csv(self) -> Iterator[Chunk]:
        pd = _pandas()
        as_text = dict.fromkeys(text_columns(self.schema), str)
        with self.path.open("rb") as f:
            reader = _HashingReader(f)
            try:
                for raw in pd.read_csv(
                    reader, chunksize=self.chunk_rows, dtype=as_text, encoding="utf-8", keep_default_na=True
                ):
                    yield Chunk(raw, raw, self.rows)
                    self.rows += len(raw)
            except (ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError is a ValueError
                raise FormatError(f"cannot read {self.path} as csv: {_one_line(exc)}") from None
            self.digest = reader.drain()

    def _parquet(self) -> Iterator[Chunk]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            file = pq.ParquetFile(self.path)
            for batch in file.iter_batches(batch_size=self.chunk_rows):
                yield Chunk(batch, batch.to_pandas(), self.rows)
                self.rows += batch.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise FormatError(f"cannot read {self.path} as parquet: {_one_line(exc)}") from None
        self.digest = f"sha256:{hash_file(self.path)[0]}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


class TableWriter:
    """Writes the accepted records in the input's own format, chunk by chunk, to an already-open file."""

    def __init__(self, f: BinaryIO, fmt: TableFormat, arrow_schema: pa.Schema | None) -> None:
        self._f = f
        self._format = fmt
        self._header = True
        self._parquet: pq.ParquetWriter | None = None
        if fmt == "parquet":
            import pyarrow.parquet as pq

            assert arrow_schema is not None
            self._parquet = pq.ParquetWriter(f, arrow_schema)

    def write(self, chunk: Chunk, keep: Any) -> None:
        """Append the records of ``chunk`` where the boolean array ``keep`` is true."""
        if self._parquet is not None:
            import pyarrow as pa

            self._parquet.write_batch(chunk.raw.filter(pa.array(keep)))
            return
        part = chunk.raw[keep]
        if len(part) or self._header:
            self._f.write(part.to_csv(index=False, header=self._header, lineterminator="\n").encode("utf-8"))
            self._header = False

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()


def json_value(value: Any) -> Any:
    """A cell as JSON: numpy scalars as Python numbers, NaN and NA as null, anything else as its text."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else value if math.isfinite(value) else str(value)
    if isinstance(value, bool | int | str):
        return value
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return json.loads(json.dumps(value, default=str))
