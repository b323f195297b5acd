"""Schema and constraint validation: the first screen, before any statistics.

A :class:`Schema` says, per column, its kind (number, integer, bool, category or free text), the
range it may take, the categories allowed and whether it may be missing. It is inferred from a
reference set you trust (in one streamed pass), saved as JSON for review and reuse, and each
record that breaks it is flagged with its reasons, so an ingestion pipeline can quarantine it
with a cause rather than drop it. Poison that needs out-of-range values, unseen categories or
missing fields is stopped here; poison inside the data's range is left to the statistical
detectors.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from modelshield.core.errors import DependencyError, InputError, MissingFileError

try:
    import pandas as pd
except ImportError as e:  # pragma: no cover - pandas comes with the data extra
    raise DependencyError("schema validation needs pandas", hint="pip install 'modelshield[data]'") from e
from modelshield.core.files import atomic_output
from modelshield.defenses.poisoning.base import PoisonDetector

Kind = Literal["number", "integer", "bool", "category", "text"]
KINDS: tuple[str, ...] = ("number", "integer", "bool", "category", "text")
SCHEMA_VERSION = 1


@dataclass
class ColumnRule:
    """What one column may hold."""

    name: str
    kind: Kind
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    nullable: bool = False


@dataclass
class Schema:
    """Rules for every column of a table; ``extra_columns`` says whether unknown columns pass."""

    columns: list[ColumnRule] = field(default_factory=list)
    extra_columns: bool = False

    def to_json(self) -> str:
        """The schema as indented JSON, for review and version control."""
        return json.dumps({"version": SCHEMA_VERSION, **asdict(self)}, indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Schema:
        """Read a schema written by :meth:`to_json`; malformed rules are refused with the column named."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"the schema is not valid JSON: {e}") from e
        if (
            not isinstance(doc, dict)
            or doc.get("version") != SCHEMA_VERSION
            or not isinstance(doc.get("columns"), list)
        ):
            raise InputError(f"not a modelshield schema (expected version {SCHEMA_VERSION} with a 'columns' list)")
        rules = []
        for c in doc["columns"]:
            if not isinstance(c, dict) or not isinstance(c.get("name"), str) or c.get("kind") not in KINDS:
                raise InputError(f"schema column {c!r} needs a name and a kind among {', '.join(KINDS)}")
            unknown = set(c) - {"name", "kind", "min", "max", "categories", "nullable"}
            if unknown:
                raise InputError(f"schema column {c['name']!r} has unknown keys: {', '.join(sorted(unknown))}")
            rules.append(ColumnRule(**c))
        return cls(rules, bool(doc.get("extra_columns", False)))

    def save(self, path: str | Path) -> None:
        """Write the schema atomically (an existing file is replaced only once the new one is complete)."""
        with atomic_output(Path(path), mode=0o644) as f:
            f.write(self.to_json().encode())

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        """Read a schema file."""
        p = Path(path)
        if not p.is_file():
            raise MissingFileError(f"schema file {p} does not exist")
        return cls.from_json(p.read_text(encoding="utf-8"))

    def violations(self, frame: Any) -> list[list[str]]:
        """Per row, the rules it breaks (an empty list for a valid row)."""
        df = as_frame(frame)
        reasons: list[list[str]] = [[] for _ in range(len(df))]
        for name, bad in self._masks(df):
            for i in np.flatnonzero(bad):
                reasons[i].append(name)
        return reasons

    def count_violations(self, frame: Any) -> np.ndarray:
        """Per row, how many rules it breaks."""
        df = as_frame(frame)
        counts = np.zeros(len(df), dtype=np.int64)
        for _, bad in self._masks(df):
            counts += bad
        return counts

    def _masks(self, df: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
        out: list[tuple[str, np.ndarray]] = []
        n = len(df)
        known = {c.name for c in self.columns}
        if not self.extra_columns:
            out += [(f"unexpected column {c!r}", np.ones(n, bool)) for c in df.columns if c not in known]
        for rule in self.columns:
            if rule.name not in df.columns:
                out.append((f"missing column {rule.name!r}", np.ones(n, bool)))
                continue
            out += _column_masks(rule, df[rule.name])
        return out


def _column_masks(rule: ColumnRule, col: pd.Series) -> list[tuple[str, np.ndarray]]:
    null = col.isna().to_numpy()
    out = [] if rule.nullable else [(f"{rule.name}: missing value", null)]
    if rule.kind in ("number", "integer"):
        num = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        present = ~null
        out.append((f"{rule.name}: infinite", present & np.isinf(num)))
        out.append((f"{rule.name}: not a number", present & np.isnan(num)))
        ok = present & np.isfinite(num)
        if rule.kind == "integer":
            out.append((f"{rule.name}: not an integer", ok & (np.mod(np.where(ok, num, 0), 1) != 0)))
        if rule.min is not None:
            out.append((f"{rule.name}: below {rule.min:g}", ok & (num < rule.min)))
        if rule.max is not None:
            out.append((f"{rule.name}: above {rule.max:g}", ok & (num > rule.max)))
    elif rule.kind == "bool":
        out.append((f"{rule.name}: not a boolean", ~null & ~col.isin([True, False, 0, 1]).to_numpy()))
    elif rule.kind == "category" and rule.categories is not None:
        allowed = set(rule.categories)
        out.append((f"{rule.name}: unknown category", ~null & ~col.astype(str).isin(allowed).to_numpy()))
    return out


def as_frame(x: Any) -> pd.DataFrame:
    """A DataFrame as given; arrays and tensors become one numeric column per flattened feature."""
    if isinstance(x, pd.DataFrame):
        return x
    arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    if arr.ndim < 2:
        raise InputError(
            f"schema validation needs rows of columns (a DataFrame or (N, D) array), got shape {arr.shape}"
        )
    arr = arr.reshape(arr.shape[0], -1)
    return pd.DataFrame(arr, columns=[str(i) for i in range(arr.shape[1])])


def _kind(col: pd.Series) -> Kind:
    if pd.api.types.is_bool_dtype(col):
        return "bool"
    if pd.api.types.is_integer_dtype(col):
        return "integer"
    if pd.api.types.is_numeric_dtype(col):
        vals = col.dropna().to_numpy(dtype=np.float64)
        return "integer" if vals.size and np.all(np.mod(vals, 1) == 0) and np.isfinite(vals).all() else "number"
    return "category"


class _ColumnSummary:
    """One column's running kind, range, categories and nulls over a stream."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.kind: Kind | None = None
        self.lo, self.hi = np.inf, -np.inf
        self.cats: set[str] | None = set()
        self.nullable = False

    def update(self, col: pd.Series, max_categories: int) -> None:
        self.nullable |= bool(col.isna().any())
        present = col.dropna()
        if present.empty:
            return
        kind = _kind(present)
        order = ("bool", "integer", "number")
        if self.kind is None:
            self.kind = kind
        elif self.kind != kind:  # widen: bool < integer < number; anything else with text is a category
            both_numeric = self.kind in order and kind in order
            self.kind = max(self.kind, kind, key=order.index) if both_numeric else "category"
        if kind in ("integer", "number"):
            vals = present.to_numpy(dtype=np.float64)
            self.lo, self.hi = min(self.lo, float(vals.min())), max(self.hi, float(vals.max()))
        if self.cats is not None:
            self.cats.update(present.astype(str).unique().tolist())
            if len(self.cats) > max_categories:
                self.cats = None

    def rule(self) -> ColumnRule:
        kind: Kind = self.kind or "text"
        if kind == "category" and self.cats is None:
            kind = "text"
        numeric = kind in ("integer", "number") and np.isfinite(self.lo)
        return ColumnRule(
            self.name,
            kind,
            min=self.lo if numeric else None,
            max=self.hi if numeric else None,
            categories=sorted(self.cats) if kind == "category" and self.cats is not None else None,
            nullable=self.nullable or self.kind is None,
        )


class SchemaValidator(PoisonDetector):
    """Flags rows that break a schema (given, or inferred from the data ``fit`` sees); one pass.

    The score of a row is how many rules it breaks; ``predict`` flags any row that breaks one;
    :meth:`reasons` says which. Inference keeps, per column, its kind, min and max, and up to
    ``max_categories`` distinct values (a column with more is free text, unchecked), so memory is
    bounded by the column count, not the row count, and streaming gives exactly the in-memory
    schema.

    Args:
        schema: the rules to enforce; ``None`` (default) infers them when fitted.
        max_categories: most distinct values a text column may have to be checked as a category.
    """

    name = "schema"

    def __init__(self, schema: Schema | None = None, *, max_categories: int = 50) -> None:
        super().__init__()
        if max_categories < 1:
            raise InputError(f"max_categories must be at least 1, got {max_categories}")
        self.max_categories = max_categories
        self.schema_ = schema
        self._given = schema is not None
        if self._given:
            self.fitted_ = True
        self._summaries: dict[str, _ColumnSummary] = {}

    def _start(self) -> None:
        self._summaries = {}

    def _update(self, pass_index: int, x: Any, y: Any) -> None:
        if self._given:
            return
        for name in (df := as_frame(x)).columns:
            key = str(name)
            self._summaries.setdefault(key, _ColumnSummary(key)).update(df[name], self.max_categories)

    def _finish(self, pass_index: int) -> None:
        if not self._given:
            self.schema_ = Schema([s.rule() for s in self._summaries.values()])

    def _score(self, x: Any, y: Any) -> np.ndarray:
        assert self.schema_ is not None
        return self.schema_.count_violations(x).astype(np.float64)

    def reasons(self, x: Any) -> list[list[str]]:
        """Per row, the rules it breaks."""
        self._ready()
        assert self.schema_ is not None
        return self.schema_.violations(x)


__all__ = ["ColumnRule", "Schema", "SchemaValidator"]
