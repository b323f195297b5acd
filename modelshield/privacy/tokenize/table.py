"""Tokenize, rotate and reveal columns of CSV tables, streamed row by row.

Referential integrity comes from determinism: a value gets the same token in every table tokenized with
the same key, method and context, so joins on tokenized columns give the same rows as joins on the values.
Rotation keeps that: each token is revealed under the old key and tokenized under the new one, so a value
gets the same new token in every table (and the same one a fresh tokenization under the new key gives).
HMAC tokens are one-way and cannot be rotated from the tokens: re-tokenize the source under the new key.

Revealing values is the one sensitive operation: ``reveal_csv`` hands a ``RevealEvent`` (who, why, what)
to the caller's ``record`` callback *before* it writes a single value, and writes nothing if that fails.
The CLI appends the event to the hash-chained audit log.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelshield.core.errors import InputError, MissingFileError
from modelshield.core.files import atomic_output
from modelshield.privacy.tokenize.tokens import Tokenizer

REVEAL_ACTION = "privacy.detokenize"
CACHE_VALUES = 1 << 16


@dataclass(frozen=True)
class TableSummary:
    """What a table operation did."""

    rows: int
    values: int
    columns: tuple[str, ...]


@dataclass(frozen=True)
class RevealEvent:
    """An audit record of a detokenization: who asked, why, for which key and columns of which file."""

    actor: str
    reason: str
    key_id: str
    method: str
    columns: tuple[str, ...]
    input_sha256: str
    rows: int
    time: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    def to_event(self) -> dict[str, Any]:
        """The audit-log event (``action`` privacy.detokenize); values and tokens are never in it."""
        return {**asdict(self), "columns": list(self.columns), "action": REVEAL_ACTION, "decision": "allow"}


@contextmanager
def _reader(path: Path) -> Iterator[tuple[list[str], Iterator[list[str]]]]:
    if not path.is_file():
        raise MissingFileError(f"no such file: {path}")
    with path.open(newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if not header:
            raise InputError(f"{path} has no header row")
        yield header, rows


def _indices(header: Sequence[str], columns: Sequence[str], path: Path) -> list[int]:
    if not columns:
        raise InputError("name at least one column (--columns a,b)")
    missing = [c for c in columns if c not in header]
    if missing:
        raise InputError(f"{path} has no column {', '.join(map(repr, missing))} (it has: {', '.join(header)})")
    return [header.index(c) for c in columns]


def _transform(src: Path, dst: Path, columns: Sequence[str], fn: Callable[[str], str]) -> TableSummary:
    """Apply ``fn`` to every non-empty cell of ``columns``; empty cells stay empty (a missing value is no value).

    ``fn`` is deterministic, so repeated values (the ones joins are about) are looked up in a bounded cache."""
    fn = functools.lru_cache(maxsize=CACHE_VALUES)(fn)
    n_rows = n_values = 0
    with _reader(src) as (header, rows), atomic_output(dst, mode=0o600) as raw:
        idx = _indices(header, columns, src)
        out = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        writer = csv.writer(out)
        writer.writerow(header)
        for line, row in enumerate(rows, start=2):
            if len(row) != len(header):
                raise InputError(f"{src}:{line}: {len(row)} fields, the header has {len(header)}")
            for i in idx:
                if row[i]:
                    try:
                        row[i] = fn(row[i])
                    except InputError as exc:
                        raise InputError(f"{src}:{line}, column {header[i]!r}: {exc}") from None
                    n_values += 1
            writer.writerow(row)
            n_rows += 1
        out.flush()
        out.detach()
    return TableSummary(n_rows, n_values, tuple(columns))


def tokenize_csv(src: Path, dst: Path, columns: Sequence[str], tokenizer: Tokenizer) -> TableSummary:
    """Write ``src`` to ``dst`` with ``columns`` tokenized."""
    return _transform(src, dst, columns, tokenizer.tokenize)


def rotate_csv(src: Path, dst: Path, columns: Sequence[str], old: Tokenizer, new: Tokenizer) -> TableSummary:
    """Re-tokenize ``columns`` of an already tokenized table from the ``old`` key to the ``new`` one."""
    if not old.reversible:
        raise InputError(
            "HMAC tokens are one-way and cannot be rotated from the tokens",
            hint="tokenize the source table again under the new key id",
        )
    if old.method is not new.method:
        raise InputError(f"rotation keeps the method: old is {old.method}, new is {new.method}")
    return _transform(src, dst, columns, lambda token: new.tokenize(old.detokenize(token)))


def _digest_rows(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    rows = -1
    with path.open("rb") as f:
        for line in f:
            h.update(line)
            rows += 1
    return h.hexdigest(), max(rows, 0)


def reveal_csv(
    src: Path,
    dst: Path,
    columns: Sequence[str],
    tokenizer: Tokenizer,
    *,
    key_id: str,
    actor: str,
    reason: str,
    record: Callable[[RevealEvent], object],
) -> tuple[TableSummary, RevealEvent]:
    """Write ``src`` to ``dst`` with ``columns`` detokenized, after ``record`` has durably logged who and why.

    ``record`` raising stops the reveal before any value is written (fail closed).
    """
    if not reason.strip():
        raise InputError("revealing tokens needs a reason (--reason TEXT): it goes into the audit log")
    if not actor.strip():
        raise InputError("revealing tokens needs an actor (who asks)")
    if not tokenizer.reversible:
        raise InputError("HMAC tokens are one-way: there is no value to reveal")
    with _reader(src) as (header, _rows):
        _indices(header, columns, src)
    digest, rows = _digest_rows(src)
    event = RevealEvent(actor.strip(), reason.strip(), key_id, str(tokenizer.method), tuple(columns), digest, rows)
    record(event)
    return _transform(src, dst, columns, tokenizer.detokenize), event
