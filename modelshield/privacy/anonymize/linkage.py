"""A linkage attack: join a released table with an auxiliary one (a voter list, a public register) on
the quasi-identifiers, as Sweeney joined Massachusetts' hospital discharges with Cambridge's voter roll.

Each auxiliary record is compared with every released class: a released value matches when it is the
same value, a range ``[lo-hi]`` holding the number (``first..last`` holding the date), a hierarchy label above the category, or ``*``. An
auxiliary record that matches exactly one released row is re-identified. When both tables carry a
ground-truth column (``truth``: an id the evaluator kept aside), the report also says how many of those
re-identifications are right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelshield.core.errors import InputError
from modelshield.privacy.anonymize.hierarchy import ROOT, Hierarchy, TreeHierarchy
from modelshield.privacy.anonymize.recalibrate import label_bounds
from modelshield.privacy.anonymize.tables import days

_PAIRS_PER_BLOCK = 4_000_000
_BUCKETS = 1024


@dataclass(frozen=True)
class LinkageResult:
    """How many auxiliary records the join pins down to a single released row."""

    auxiliary_records: int
    released_rows: int
    matched: float  # share of auxiliary records matching at least one released row
    reidentified: float  # share matching exactly one
    correct: float | None  # share re-identified *and* right, when a truth column is given
    mean_candidates: float  # mean number of released rows an auxiliary record matches, when it matches
    guessed: float  # expected share re-identified by picking one candidate at random (mean of 1/candidates)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ancestors(values: pd.Series, hierarchy: Hierarchy | None) -> pd.Series:
    """Every label a released value could carry for this raw value."""
    if isinstance(hierarchy, TreeHierarchy):
        known = set(hierarchy.leaves)
        return values.map(lambda v: list(hierarchy.path(v)) if v in known else [v, ROOT])
    return values.map(lambda v: [v, ROOT])


@dataclass(frozen=True)
class _Buckets:
    """One numeric column cut at quantiles of the auxiliary values, so a record is compared only with the
    classes whose range reaches its bucket, not with every class (a million records × a hundred thousand
    date ranges would not fit in memory)."""

    record: np.ndarray  # bucket of each auxiliary record
    first: np.ndarray  # per class: the first and last bucket its range reaches
    last: np.ndarray
    widest: int  # most classes reaching one bucket: a bound on the pairs per record

    @classmethod
    def best(cls, values: dict[str, np.ndarray], bounds: dict[str, tuple[np.ndarray, np.ndarray]]) -> _Buckets | None:
        """The numeric column whose buckets hold the fewest classes, or None when copying the classes into
        their buckets would cost more than comparing with all of them."""
        found: _Buckets | None = None
        for c, v in values.items():
            edges = np.unique(np.quantile(v, np.linspace(0, 1, _BUCKETS + 1)[1:-1]))
            first = np.searchsorted(edges, bounds[c][0], "right")
            last = np.maximum(np.searchsorted(edges, bounds[c][1], "right"), first - 1)  # an empty range: no copy
            if (last - first + 1).sum() > max(4 * len(first), _PAIRS_PER_BLOCK):
                continue
            reach = np.zeros(len(edges) + 2, dtype=np.int64)
            np.add.at(reach, first, 1)
            np.add.at(reach, last + 1, -1)
            widest = int(np.cumsum(reach).max())
            if found is None or widest < found.widest:
                found = cls(np.searchsorted(edges, v, "right"), first, last, widest)
        return found

    def spread(self, keyed: pd.DataFrame) -> pd.DataFrame:
        """``keyed`` (one row per class) with one copy of each class per bucket it reaches, in ``__bucket``."""
        copies = self.last - self.first + 1
        owner = np.repeat(np.arange(len(copies)), copies)
        offset = np.arange(len(owner)) - np.repeat(np.cumsum(copies) - copies, copies)
        return keyed.iloc[owner].assign(**{"__bucket": self.first[owner] + offset})


def link(
    released: pd.DataFrame,
    auxiliary: pd.DataFrame,
    on: Sequence[str],
    hierarchies: dict[str, Hierarchy] | None = None,
    truth: str | None = None,
) -> LinkageResult:
    """Join ``auxiliary`` (raw values) to ``released`` (raw or generalised) on ``on``; count unique matches."""
    given = hierarchies or {}
    for name, table in (("released", released), ("auxiliary", auxiliary)):
        missing = [c for c in [*on, *([truth] if truth else [])] if c not in table.columns]
        if missing:
            raise InputError(f"the {name} table has no column {missing[0]!r}")
    if not on:
        raise InputError("give the columns to join on")
    aux = auxiliary.reset_index(drop=True).astype({c: str for c in on})
    values: dict[str, np.ndarray] = {}
    for c in on:
        if isinstance(given.get(c), TreeHierarchy):
            continue
        as_days = days(aux[c]) if len(aux) else None
        if as_days is not None:
            values[c] = as_days
        elif pd.to_numeric(aux[c], errors="coerce").notna().all():
            values[c] = pd.to_numeric(aux[c]).to_numpy(np.float64)
    numeric = [c for c in on if c in values]
    categorical = [c for c in on if c not in numeric]
    rel = released.astype({c: str for c in on})
    groups = rel.groupby(list(on), sort=False, dropna=False)
    classes = groups.size().rename("size").reset_index()
    if truth:
        classes["truth"] = groups[truth].first().to_numpy().astype(str)
    bounds = {c: label_bounds(classes[c]) for c in numeric}
    for c in numeric:
        classes[f"{c}__low"], classes[f"{c}__high"] = bounds[c]
    count = np.zeros(len(aux), dtype=np.int64)
    hit = np.full(len(aux), -1, dtype=np.int64)  # a matching class, meaningful when count == 1
    keyed = classes.reset_index(names="class")
    buckets = _Buckets.best(values, bounds) if len(aux) and len(classes) else None
    keys = [*categorical, *(["__bucket"] if buckets else [])]
    if buckets:
        keyed = buckets.spread(keyed)
        block = max(1, _PAIRS_PER_BLOCK // max(1, buckets.widest))
    else:
        block = max(1, _PAIRS_PER_BLOCK // max(1, len(classes) if not categorical else 8 ** len(categorical)))
    for start in range(0, len(aux), block):
        part = aux.iloc[start : start + block]
        probe = pd.DataFrame({"row": np.arange(start, start + len(part))})
        for c in categorical:
            labels = _ancestors(part[c], given.get(c)).to_numpy()
            probe[c] = labels[probe["row"].to_numpy() - start]
            probe = probe.explode(c, ignore_index=True)
        if buckets:
            probe["__bucket"] = buckets.record[probe["row"].to_numpy()]
        if keys:
            pairs = probe.merge(keyed[["class", "size", *keys]], on=keys, how="inner")
        else:
            pairs = probe.merge(keyed[["class", "size"]], how="cross")
        row = pairs["row"].to_numpy(np.int64)
        klass = pairs["class"].to_numpy(np.int64)
        ok = np.ones(len(pairs), dtype=bool)
        for c in numeric:
            v = values[c][row]
            ok &= (bounds[c][0][klass] <= v) & (v <= bounds[c][1][klass])
        row, klass = row[ok], klass[ok]
        np.add.at(count, row, pairs["size"].to_numpy(np.int64)[ok])
        hit[row] = klass
    unique = count == 1
    correct: float | None = None
    if truth:
        names = classes["truth"].to_numpy()
        right = unique & (names[np.maximum(hit, 0)] == aux[truth].astype(str).to_numpy())
        correct = float(right.mean()) if len(aux) else 0.0
    matched = count > 0
    return LinkageResult(
        auxiliary_records=len(aux),
        released_rows=len(released),
        matched=float(matched.mean()) if len(aux) else 0.0,
        reidentified=float(unique.mean()) if len(aux) else 0.0,
        correct=correct,
        mean_candidates=float(count[matched].mean()) if matched.any() else 0.0,
        guessed=float((1.0 / count[matched]).sum() / len(aux)) if matched.any() else 0.0,
    )
