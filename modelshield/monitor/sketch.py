"""The reference sketch: everything drift tests need from the reference data, computed once and stored.

Users of drift monitors ask not to recompute reference statistics on every check (evidently#506). A sketch
holds, per feature, its type, moments and missing count; for numeric features the edges of ``bins`` quantile
bins with the reference's exact count in each; for categorical ones the counts of the (at most
``max_categories``) most frequent values; and, across numeric features, a uniform sample of ``reservoir``
rows for the multivariate MMD test. It is versioned JSON (``schema``/``version``) carrying a SHA-256 digest
of its own canonical form, checked on load, and may name the data file and model it was made for.

Two passes over the reference: the first collects moments, categories and a ``sample``-row uniform sample
whose quantiles place the bin edges; the second counts every reference value into those bins exactly. Memory
is bounded by the chunk size, the sample and the bins, not by the number of rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from modelshield.core.errors import FormatError, InputError, IntegrityError, MissingFileError
from modelshield.core.files import atomic_output, hash_file
from modelshield.monitor.profile import CategoryCounts, Moments, bin_counts, check_kinds, column_kinds
from modelshield.monitor.reservoir import Reservoir
from modelshield.monitor.tables import ChunkSource

SCHEMA = "modelshield.monitor.sketch"
VERSION = 1
DEFAULT_BINS = 1000
DEFAULT_SAMPLE = 20_000
DEFAULT_RESERVOIR = 1000
DEFAULT_MAX_CATEGORIES = 1000


@dataclass
class NumericFeature:
    """A numeric column: moments, range, and exact reference counts in bins (−∞, e_0], ..., (e_last, ∞)."""

    name: str
    count: int
    missing: int
    mean: float
    std: float
    min: float
    max: float
    edges: np.ndarray
    counts: np.ndarray
    type: str = "numeric"


@dataclass
class CategoricalFeature:
    """A categorical column: counts of its most frequent values; rarer ones are summed in ``other``."""

    name: str
    count: int
    missing: int
    categories: dict[str, int]
    other: int = 0
    type: str = "categorical"


Feature = NumericFeature | CategoricalFeature


@dataclass
class ReferenceSketch:
    """A reference dataset's summary, for drift tests against it without the data."""

    rows: int
    features: list[Feature]
    #: uniform sample of rows over the numeric features (NaN where missing), in ``reservoir_columns`` order
    reservoir: np.ndarray
    reservoir_columns: list[str]
    bins: int
    seed: int
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    source: dict[str, Any] | None = None
    model: dict[str, Any] | None = None

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise InputError(f"the sketch has no feature {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, digest included."""
        body = _body(self)
        return {**body, "digest": _digest(body)}

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON, computed once (a sketch is not changed after it is built or loaded)."""
        return _digest(_body(self))


def build_sketch(
    source: ChunkSource,
    *,
    bins: int = DEFAULT_BINS,
    sample: int = DEFAULT_SAMPLE,
    reservoir: int = DEFAULT_RESERVOIR,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    seed: int = 0,
    source_info: dict[str, Any] | None = None,
    model_info: dict[str, Any] | None = None,
) -> ReferenceSketch:
    """Summarise the reference data that ``source`` streams (read twice)."""
    if bins < 2 or sample < bins or reservoir < 2 or reservoir > sample or max_categories < 1:
        raise InputError(
            f"sketch sizes need bins ≥ 2, sample ≥ bins, 2 ≤ reservoir ≤ sample and max_categories ≥ 1 "
            f"(got bins={bins}, sample={sample}, reservoir={reservoir}, max_categories={max_categories})"
        )
    kinds: dict[str, str] = {}
    moments: dict[str, Moments] = {}
    categories: dict[str, CategoryCounts] = {}
    sampler: Reservoir | None = None
    rows = 0
    for chunk in source():
        if sampler is None:
            kinds = column_kinds(chunk)
            moments = {c: Moments() for c, k in kinds.items() if k == "numeric"}
            categories = {c: CategoryCounts(max_categories) for c, k in kinds.items() if k == "categorical"}
            sampler = Reservoir(sample, len(moments), seed)
        check_kinds(kinds, chunk, "the reference")
        rows += chunk.rows
        for name, m in moments.items():
            m.add(chunk.numeric[name])
        for name, c in categories.items():
            c.add(chunk.categorical[name], chunk.missing.get(name, 0))
        sampler.add([chunk.numeric[name] for name in moments])
    if sampler is None or rows == 0:
        raise InputError("the reference data has no rows")
    numeric = list(moments)
    drawn = sampler.sample()
    edges = {name: _quantile_edges(drawn[:, j], moments[name].lo, bins) for j, name in enumerate(numeric)}
    counts = {name: np.zeros(len(e) + 1, dtype=np.int64) for name, e in edges.items()}
    second = 0
    for chunk in source():
        second += chunk.rows
        for name in numeric:
            x = chunk.numeric[name]
            counts[name] += bin_counts(edges[name], x[~np.isnan(x)])
    if second != rows:
        raise InputError(f"the reference data changed while it was read ({rows} rows, then {second})")
    features: list[Feature] = []
    for name, kind in kinds.items():
        if kind == "numeric":
            m = moments[name]
            features.append(
                NumericFeature(
                    name, m.count, m.missing, m.mean, m.std, _finite(m.lo), _finite(m.hi), edges[name], counts[name]
                )
            )
        else:
            c = categories[name]
            c.finish()
            features.append(CategoricalFeature(name, sum(c.counts.values()) + c.other, c.missing, c.counts, c.other))
    return ReferenceSketch(
        rows=rows,
        features=features,
        reservoir=drawn[:reservoir],
        reservoir_columns=numeric,
        bins=bins,
        seed=seed,
        source=source_info,
        model=model_info,
    )


def _quantile_edges(values: np.ndarray, lowest: float, bins: int) -> np.ndarray:
    """The sample's quantiles at 1/bins, ..., (bins−1)/bins, below them the float just under the reference's
    minimum: the first bin then holds no reference value, so current values below the reference's range are
    told apart from its minimum (on n ≤ bins distinct values every CDF step is an edge, and KS's D is exact)."""
    present = values[~np.isnan(values)]
    if not len(present):
        return np.empty(0)
    inner = np.unique(np.quantile(present, np.arange(1, bins) / bins, method="inverted_cdf"))
    return np.concatenate([[np.nextafter(lowest, -np.inf)], inner])


def _finite(v: float) -> float:
    return v if np.isfinite(v) else 0.0


def file_info(path: Path) -> dict[str, Any]:
    """Name, SHA-256 and size of a file a sketch was made from or for."""
    digest, size = hash_file(path)
    return {"name": path.name, "sha256": digest, "bytes": size}


def _nan_to_none(rows: np.ndarray) -> list[list[float | None]]:
    return [[None if v != v else float(v) for v in row] for row in rows.tolist()]


def _body(s: ReferenceSketch) -> dict[str, Any]:
    features: list[dict[str, Any]] = []
    for f in s.features:
        if isinstance(f, NumericFeature):
            features.append(
                {
                    "name": f.name, "type": f.type, "count": f.count, "missing": f.missing,
                    "mean": f.mean, "std": f.std, "min": f.min, "max": f.max,
                    "edges": [float(e) for e in f.edges], "counts": [int(c) for c in f.counts],
                }
            )  # fmt: skip
        else:
            features.append(
                {
                    "name": f.name, "type": f.type, "count": f.count, "missing": f.missing,
                    "categories": dict(f.categories), "other": f.other,
                }
            )  # fmt: skip
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "created": s.created,
        "rows": s.rows,
        "bins": s.bins,
        "seed": s.seed,
        "source": s.source,
        "model": s.model,
        "features": features,
        "reservoir": {"columns": s.reservoir_columns, "rows": _nan_to_none(s.reservoir)},
    }


def _digest(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def save_sketch(sketch: ReferenceSketch, path: Path) -> str:
    """Write the sketch as JSON (atomically); returns its digest."""
    data = sketch.to_dict()
    with atomic_output(path, mode=0o644) as f:
        f.write(json.dumps(data, allow_nan=False, ensure_ascii=False).encode("utf-8"))
    return str(data["digest"])


def is_sketch_file(path: Path) -> bool:
    """True when the file starts like a JSON object (tables never do)."""
    with open(path, "rb") as f:
        return f.read(64).lstrip().startswith(b"{")


def load_sketch(path: Path) -> ReferenceSketch:
    """Read a sketch, refusing another schema, a newer version or a digest that does not match its content."""
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"{path} is not a sketch (not JSON: {e})") from e
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise FormatError(f"{path} is not a modelshield reference sketch")
    if data.get("version") != VERSION:
        raise FormatError(f"{path} is sketch version {data.get('version')!r}; this modelshield reads version {VERSION}")
    claimed = data.pop("digest", None)
    if claimed != _digest(data):
        raise IntegrityError(f"{path}: the sketch's digest does not match its content (edited or damaged)")
    try:
        sketch = _from_body(data)
    except (KeyError, TypeError, ValueError) as e:
        raise FormatError(f"{path} is a malformed sketch ({type(e).__name__}: {e})") from e
    sketch.__dict__["digest"] = claimed  # just checked: spare the cached property a second canonical dump
    return sketch


def _from_body(data: dict[str, Any]) -> ReferenceSketch:
    features: list[Feature] = []
    for f in data["features"]:
        if f["type"] == "numeric":
            edges = np.asarray(f["edges"], dtype=np.float64)
            counts = np.asarray(f["counts"], dtype=np.int64)
            if len(counts) != len(edges) + 1 or np.any(np.diff(edges) <= 0):
                raise ValueError(f"feature {f['name']!r}: edges must increase and counts be one longer")
            features.append(
                NumericFeature(f["name"], int(f["count"]), int(f["missing"]), float(f["mean"]), float(f["std"]),
                               float(f["min"]), float(f["max"]), edges, counts)
            )  # fmt: skip
        elif f["type"] == "categorical":
            cats = {str(k): int(v) for k, v in f["categories"].items()}
            features.append(CategoricalFeature(f["name"], int(f["count"]), int(f["missing"]), cats, int(f["other"])))
        else:
            raise ValueError(f"unknown feature type {f['type']!r}")
    res = data["reservoir"]
    columns = [str(c) for c in res["columns"]]
    rows = np.array([[np.nan if v is None else v for v in row] for row in res["rows"]], dtype=np.float64)
    rows = rows.reshape(len(res["rows"]), len(columns))
    return ReferenceSketch(
        rows=int(data["rows"]),
        features=features,
        reservoir=rows,
        reservoir_columns=columns,
        bins=int(data["bins"]),
        seed=int(data["seed"]),
        created=str(data["created"]),
        source=data.get("source"),
        model=data.get("model"),
    )


__all__ = [
    "CategoricalFeature",
    "NumericFeature",
    "ReferenceSketch",
    "build_sketch",
    "file_info",
    "is_sketch_file",
    "load_sketch",
    "save_sketch",
]
