"""The domain of a table: which values each column may take, and how rows become cell indices.

Marginal-based synthesis (MST, AIM) works on finite domains: a categorical column keeps its values, a
numeric one is cut into equal-width bins between bounds. Where the bounds and category lists come from
matters for privacy: read from a declared domain (``--domain DOMAIN.yaml``), they are public and the whole
release is differentially private; inferred from the private table (the default when no domain is given)
they are not covered by the guarantee, and :attr:`Domain.inferred` lists the columns so the report says so.

DOMAIN.yaml::

    columns:
      age: {type: numeric, lower: 17, upper: 90, bins: 16}
      income: {type: numeric, lower: 0, upper: 200000, bins: 20, integer: true}
      sex: {type: categorical, values: [Female, Male]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelshield.core.errors import InputError, MissingFileError
from modelshield.core.files import load_yaml

if TYPE_CHECKING:
    import pandas as pd

#: numeric columns with at most this many distinct values are treated as categorical when inferred
CATEGORICAL_MAX_DISTINCT = 20
DEFAULT_BINS = 16
#: an inferred category list longer than this (or than half the rows) is an identifier or free text: its
#: values are the private records themselves, and synthetic rows would copy them
INFERRED_MAX_CATEGORIES = 1000


@dataclass(frozen=True)
class Categorical:
    """A column whose values are listed (kept as text, the way a CSV holds them)."""

    name: str
    values: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Numeric:
    """A numeric column cut into ``bins`` equal-width bins on [lower, upper]; values outside are clipped."""

    name: str
    lower: float
    upper: float
    bins: int = DEFAULT_BINS
    integer: bool = False

    @property
    def size(self) -> int:
        return self.bins

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.lower, self.upper, self.bins + 1)


Column = Categorical | Numeric


def _text(series: pd.Series) -> np.ndarray:
    """A column as text, missing values as the empty string (what a CSV writes for them)."""
    return np.asarray(series.astype(object).where(series.notna(), "").astype(str))


@dataclass(frozen=True)
class Domain:
    """The columns of a table in order, with the names of those whose domain came from the private data."""

    columns: tuple[Column, ...]
    inferred: tuple[str, ...] = field(default=())

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def sizes(self) -> list[int]:
        return [c.size for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise InputError(f"column {name!r} is not in the domain ({', '.join(self.names)})")

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows as cell indices, shape (n, columns): category positions, numeric bin numbers."""
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            raise InputError(f"the table has no column {missing[0]!r} that the domain declares")
        out = np.empty((len(frame), len(self.columns)), dtype=np.int64)
        for j, col in enumerate(self.columns):
            series = frame[col.name]
            if isinstance(col, Categorical):
                text = _text(series)
                index = {v: i for i, v in enumerate(col.values)}
                codes = np.fromiter((index.get(v, -1) for v in text), dtype=np.int64, count=len(text))
                if (codes < 0).any():
                    bad = text[codes < 0][0]
                    raise InputError(f"column {col.name!r} holds {bad!r}, which its domain does not list")
                out[:, j] = codes
            else:
                values = _numbers(series, col.name)
                inner = col.edges[1:-1]
                out[:, j] = np.searchsorted(inner, values, side="right")
        return out

    def decode(self, cells: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """Cell indices back to values: categories as text, a numeric bin as a uniform draw inside it."""
        import pandas as pd

        data: dict[str, Any] = {}
        for j, col in enumerate(self.columns):
            codes = cells[:, j]
            if isinstance(col, Categorical):
                data[col.name] = np.asarray(col.values, dtype=object)[codes]
            else:
                edges = col.edges
                values = rng.uniform(edges[codes], edges[codes + 1])
                data[col.name] = (
                    np.clip(np.rint(values), col.lower, col.upper).astype(np.int64) if col.integer else values
                )
        return pd.DataFrame(data)


def _numbers(series: pd.Series, name: str) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(values) & series.notna().to_numpy()
    if bad.any():
        raise InputError(f"column {name!r} must hold numbers but holds {series[bad].iloc[0]!r}")
    if np.isnan(values).any():
        raise InputError(f"column {name!r} has missing values; declare it categorical or fill them")
    return values


def infer_domain(frame: pd.DataFrame, *, bins: int = DEFAULT_BINS) -> Domain:
    """A domain read from the table itself (not differentially private: every column is listed as inferred).

    Numeric columns with more than :data:`CATEGORICAL_MAX_DISTINCT` distinct values get ``bins`` bins on
    [min, max]; every other column is categorical with the values it holds, unless it holds so many
    (:data:`INFERRED_MAX_CATEGORIES`, or half the rows) that it is refused as an identifier or free text."""
    if frame.shape[1] == 0 or len(frame) == 0:
        raise InputError("the table is empty")
    columns: list[Column] = []
    most = min(INFERRED_MAX_CATEGORIES, max(CATEGORICAL_MAX_DISTINCT, len(frame) // 2))
    for name in frame.columns:
        series = frame[name]
        distinct = int(series.nunique())
        if series.dtype.kind in "iuf" and distinct > CATEGORICAL_MAX_DISTINCT:
            if series.isna().any():
                raise InputError(
                    f"column {name!r} is numeric with missing values, so it cannot be binned",
                    hint="fill them or drop those rows, or declare the column's domain with --domain",
                )
            lo, hi = float(series.min()), float(series.max())
            columns.append(Numeric(str(name), lo, hi if hi > lo else lo + 1, bins, series.dtype.kind in "iu"))
        elif distinct > most:
            raise InputError(
                f"column {name!r} has {distinct:,} distinct values in {len(frame):,} rows, like an identifier or "
                "free text: listed from the table, its values are the private records, and synthetic rows "
                "would copy them",
                hint="drop the column, group its values into fewer categories, or declare its domain with --domain",
            )
        else:
            columns.append(Categorical(str(name), tuple(sorted(set(_text(series).tolist())))))
    return Domain(tuple(columns), inferred=tuple(str(n) for n in frame.columns))


def _column_from_spec(name: str, spec: Any) -> Column:
    if not isinstance(spec, dict) or spec.get("type") not in ("numeric", "categorical"):
        raise InputError(f"domain column {name!r}: give a mapping with type: numeric or type: categorical")
    if spec["type"] == "categorical":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise InputError(f"domain column {name!r}: a categorical column needs a non-empty 'values' list")
        return Categorical(name, tuple(dict.fromkeys("" if v is None else str(v) for v in values)))
    try:
        lower, upper = float(spec["lower"]), float(spec["upper"])
        bins = int(spec.get("bins", DEFAULT_BINS))
    except (KeyError, TypeError, ValueError):
        raise InputError(f"domain column {name!r}: a numeric column needs numbers 'lower' and 'upper'") from None
    if not upper > lower or bins < 1:
        raise InputError(f"domain column {name!r}: need lower < upper and bins ≥ 1")
    return Numeric(name, lower, upper, bins, bool(spec.get("integer", False)))


def load_domain(path: Path) -> Domain:
    """Read a declared (public) domain from YAML; see the module docstring for the format."""
    if not path.is_file():
        raise MissingFileError(f"domain file not found: {path}")
    doc = load_yaml(path)
    columns = doc.get("columns") if isinstance(doc, dict) else None
    if not isinstance(columns, dict) or not columns:
        raise InputError(f"{path}: expected a 'columns' mapping of column name → spec")
    return Domain(tuple(_column_from_spec(str(n), s) for n, s in columns.items()))
