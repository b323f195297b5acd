"""The table's shape, checked before its records are: the columns, and that numeric columns hold numbers.

The rules themselves are :class:`modelshield.defenses.poisoning.schema.Schema` (one schema format for the
whole project: given as a JSON file, or inferred from the trusted reference). Ingestion adds the line between
a bad *file* and a bad *record*: a column missing or unexpected, or a numeric column holding text, is refused
whole (nothing in such a file can be trusted to line up, exit 2); a record that breaks a value rule — out of
range, an unknown category, an empty cell where none is allowed — is quarantined with the rule it broke.

An inferred schema keeps the reference's kinds, categories and nullability but not its numeric min/max: a
trusted sample's extremes are not a contract, and a million honest records will step past a few thousand
reference records' range. Ranges you write in a schema file are enforced.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelshield.core.errors import InputError
from modelshield.defenses.poisoning.schema import Schema, SchemaValidator

if TYPE_CHECKING:
    import pandas as pd

NUMERIC = ("number", "integer")


def load_or_infer(path: Path | None, reference: pd.DataFrame) -> Schema:
    """The schema file if one is given, else the reference's schema without numeric ranges."""
    if path is not None:
        schema = Schema.load(path)
        if schema.extra_columns:
            raise InputError(f"schema {path} allows extra columns; ingestion needs every column named")
        return schema
    validator = SchemaValidator()
    validator.fit(reference)
    inferred = validator.schema_
    assert inferred is not None
    return Schema([replace(c, min=None, max=None) if c.kind in NUMERIC else c for c in inferred.columns])


def names(schema: Schema) -> list[str]:
    return [c.name for c in schema.columns]


def check_columns(found: list[str], schema: Schema, where: str) -> None:
    """The header must name exactly the schema's columns (any order), each once."""
    wanted = names(schema)
    if missing := [c for c in wanted if c not in found]:
        raise InputError(f"{where} has no column {', '.join(map(repr, missing))} (it has: {', '.join(found)})")
    if extra := [c for c in found if c not in wanted]:
        raise InputError(
            f"{where} has columns the schema does not know: {', '.join(map(repr, extra))}",
            hint="add them to the schema or drop them before ingesting",
        )
    if len(set(found)) != len(found):
        raise InputError(f"{where} repeats a column name")


def text_columns(schema: Schema) -> list[str]:
    """Columns read as text (so ``007`` stays ``007``)."""
    return [c.name for c in schema.columns if c.kind in ("category", "text")]


def coerce(chunk: pd.DataFrame, schema: Schema, where: str, first_row: int) -> pd.DataFrame:
    """Numeric columns as float64, categories and text as str (empty cells kept); text in a numeric column is refused."""
    import pandas as pd

    out = {}
    for c in schema.columns:
        col = chunk[c.name]
        if c.kind in NUMERIC:
            if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
                parsed = pd.to_numeric(col, errors="coerce")
                bad = parsed.isna().to_numpy() & col.notna().to_numpy()
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise InputError(
                        f"{where}: column {c.name!r} is numeric in the schema but record {first_row + i} holds "
                        f"{str(col.iloc[i])[:40]!r}"
                    )
                col = parsed
            out[c.name] = col.astype("float64")
        elif c.kind == "bool":
            out[c.name] = col
        else:
            out[c.name] = col.astype(object).where(col.notna(), None).map(lambda v: v if v is None else str(v))
    return pd.DataFrame(out, index=chunk.index)


@dataclass(frozen=True)
class Violation:
    """One record breaking one schema rule; ``rule`` is the schema's own words (``age: above 120``)."""

    row: int
    column: str | None
    rule: str
    value: Any


def violations(frame: pd.DataFrame, schema: Schema) -> list[Violation]:
    """Every (record, rule) a coerced chunk breaks; ``row`` is the position in ``frame``."""
    columns = sorted(names(schema), key=len, reverse=True)  # longest first: "a_b: ..." is not column "a"
    found = []
    for i, rules in enumerate(schema.violations(frame)):
        for rule in rules:
            column = next((c for c in columns if rule.startswith(f"{c}: ")), None)
            found.append(Violation(i, column, rule, frame[column].iloc[i] if column else None))
    return found
