"""Anonymise a table: partition or recode, label, measure, and write the released table and its report.

The released table keeps every column but the dropped direct identifiers; quasi-identifiers become
their generalised labels; suppressed rows (global recoding only) are left out of it, and counted in the
report. Rows whose labels coincide form one released class even when the algorithm built them apart, so
everything reported (k, l, t, loss, risk) is measured on the classes a reader of the file sees.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from modelshield.core.errors import InputError
from modelshield.privacy.anonymize.criteria import Criteria, emd, histograms
from modelshield.privacy.anonymize.generalise import region_labels
from modelshield.privacy.anonymize.hierarchy import Hierarchy
from modelshield.privacy.anonymize.lattice import lattice_search
from modelshield.privacy.anonymize.mondrian import mondrian
from modelshield.privacy.anonymize.risk import RiskReport, class_sizes, risk_from_classes
from modelshield.privacy.anonymize.tables import CHUNK_ROWS, Encoded, encode, encode_frame, read_chunks, require_columns

Algorithm = Literal["mondrian", "lattice"]
ALGORITHMS: tuple[Algorithm, ...] = ("mondrian", "lattice")


@dataclass
class Anonymization:
    """Which released class each row is in (-1: suppressed) and each class's label per quasi-identifier."""

    quasi_identifiers: list[str]
    criteria: Criteria
    algorithm: Algorithm
    klass: np.ndarray
    labels: list[np.ndarray]  # per column: label per class (object arrays)
    penalty: np.ndarray  # per class: mean NCP over the quasi-identifiers
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def suppressed(self) -> int:
        return int((self.klass < 0).sum())

    def values(self, rows: slice) -> tuple[np.ndarray, list[np.ndarray]]:
        """For rows ``rows``: which are kept, and the released label of each kept row per column."""
        klass = self.klass[rows]
        kept = klass >= 0
        return kept, [column[klass[kept]] for column in self.labels]


def _merge(
    groups: np.ndarray, labels: list[list[str]], penalty: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Groups with the same labels in every column become one class."""
    frame = pd.DataFrame({str(j): col for j, col in enumerate(labels)})
    codes = frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy()
    classes = int(codes.max()) + 1 if len(codes) else 0
    representative = np.zeros(classes, dtype=np.int64)
    representative[codes[::-1]] = np.arange(len(codes))[::-1]
    klass = np.where(groups >= 0, codes[np.maximum(groups, 0)], -1)
    merged = [np.asarray(col, dtype=object)[representative] for col in labels]
    return klass, merged, penalty[representative]


def anonymize_encoded(
    enc: Encoded, criteria: Criteria, algorithm: Algorithm = "mondrian", max_suppression: float = 0.0
) -> Anonymization:
    """Run the chosen algorithm on an encoded table."""
    if criteria.k > enc.rows:
        raise InputError(f"k={criteria.k} is larger than the table ({enc.rows} rows)")
    extra: dict[str, Any] = {}
    if algorithm == "mondrian":
        region = mondrian(enc, criteria)
        regions = int(region.max()) + 1
        labels, penalty = region_labels(enc, region, regions)
        extra["regions"] = regions
        groups = region
    elif algorithm == "lattice":
        found = lattice_search(enc, criteria, max_suppression)
        groups, labels, penalty = found.klass, found.labels, found.penalty
        extra |= {
            "levels": dict(zip(enc.columns, found.node, strict=True)),
            "lattice_nodes": found.nodes,
            "nodes_evaluated": found.evaluated,
        }
    else:
        raise InputError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")
    klass, merged, per_class = _merge(groups, labels, penalty)
    return Anonymization(list(enc.columns), criteria, algorithm, klass, merged, per_class, extra)


def measure(enc: Encoded, anon: Anonymization, population: int | None = None) -> dict[str, Any]:
    """What the release achieves (k, l, t as pycanon defines them), what it loses, and risk before/after."""
    n = enc.rows
    kept = anon.klass >= 0
    if not kept.any():
        raise InputError("every row was suppressed")
    classes = anon.klass[kept]
    sizes = np.bincount(classes)
    sizes_nonzero = sizes[sizes > 0]
    achieved: dict[str, Any] = {"k": int(sizes_nonzero.min())}
    if enc.sensitive is not None:
        secret = enc.sensitive[kept]
        hist = histograms(classes, secret, len(sizes), len(enc.sensitive_values))[sizes > 0]
        overall = np.bincount(secret, minlength=len(enc.sensitive_values))
        achieved["l"] = int((hist > 0).sum(axis=1).min())
        achieved["t"] = float(emd(hist, overall / overall.sum(), enc.sensitive_numeric).max())
    suppressed = anon.suppressed
    loss = {
        "ncp": float((anon.penalty[classes].sum() + suppressed) / n),
        "discernibility": int((sizes_nonzero.astype(np.int64) ** 2).sum() + suppressed * n),
        "average_class_size": float(kept.sum() / len(sizes_nonzero) / anon.criteria.k),
    }
    before = risk_from_classes(class_sizes(enc.row_keys()), population)
    after = risk_from_classes(sizes_nonzero, population)
    return {
        "algorithm": anon.algorithm,
        "quasi_identifiers": anon.quasi_identifiers,
        "sensitive": enc.sensitive_name,
        "requested": {"k": anon.criteria.k, "l": anon.criteria.l, "t": anon.criteria.t},
        "achieved": achieved,
        "rows": n,
        "released_rows": int(kept.sum()),
        "suppressed_rows": suppressed,
        "classes": int(len(sizes_nonzero)),
        "information_loss": loss,
        "risk_before": before.as_dict(),
        "risk_after": after.as_dict(),
        **anon.extra,
    }


def anonymize_frame(
    frame: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    criteria: Criteria,
    sensitive: str | None = None,
    hierarchies: dict[str, Hierarchy] | None = None,
    algorithm: Algorithm = "mondrian",
    max_suppression: float = 0.0,
    drop: Sequence[str] = (),
    population: int | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Anonymise a table in memory: the released table (suppressed rows left out) and the report."""
    enc = encode_frame(frame, quasi_identifiers, sensitive, hierarchies)
    anon = anonymize_encoded(enc, criteria, algorithm, max_suppression)
    kept, values = anon.values(slice(None))
    released = frame.loc[kept].drop(columns=list(drop)).astype({c: object for c in quasi_identifiers})
    for column, labels in zip(quasi_identifiers, values, strict=True):
        released[column] = labels
    return released.reset_index(drop=True), measure(enc, anon, population)


def file_risk(
    source: str | Path, quasi_identifiers: Sequence[str], population: int | None = None, chunk_rows: int = CHUNK_ROWS
) -> RiskReport:
    """Re-identification risk of a CSV or Parquet file as it is, reading only its quasi-identifiers."""
    require_columns(source, quasi_identifiers)
    if not quasi_identifiers:
        raise InputError("give at least one quasi-identifier")
    enc = encode(read_chunks(source, list(quasi_identifiers), chunk_rows), quasi_identifiers)
    return risk_from_classes(class_sizes(enc.row_keys()), population)


def report_path(out: Path) -> Path:
    """Where the JSON report of a release goes: beside it, ``NAME.report.json``."""
    return out.with_name(out.stem + ".report.json")


def _writer(out: Path) -> Any:
    if out.suffix.lower() in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        state: dict[str, Any] = {}

        def write_parquet(chunk: pd.DataFrame | None) -> None:
            if chunk is None:
                if "w" in state:
                    state["w"].close()
                return
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if "w" not in state:
                state["w"] = pq.ParquetWriter(out, table.schema)
            state["w"].write_table(table)

        return write_parquet
    first = [True]

    def write_csv(chunk: pd.DataFrame | None) -> None:
        if chunk is None:
            return
        chunk.to_csv(out, mode="w" if first[0] else "a", header=first[0], index=False)
        first[0] = False

    return write_csv


def anonymize_file(
    source: str | Path,
    out: str | Path,
    quasi_identifiers: Sequence[str],
    criteria: Criteria,
    sensitive: str | None = None,
    hierarchies: dict[str, Hierarchy] | None = None,
    algorithm: Algorithm = "mondrian",
    max_suppression: float = 0.0,
    drop: Sequence[str] = (),
    population: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> dict[str, Any]:
    """Anonymise a CSV or Parquet file in two passes over it; write OUT and ``OUT.report.json``.

    Pass 1 reads only the quasi-identifiers and the sensitive column (``tables.encode``); pass 2 streams
    every column through, replacing quasi-identifiers by labels, ``chunk_rows`` rows at a time."""
    source, out = Path(source), Path(out)
    wanted = list(dict.fromkeys([*quasi_identifiers, *([sensitive] if sensitive else [])]))
    names = require_columns(source, [*wanted, *drop])
    if not quasi_identifiers:
        raise InputError("give at least one quasi-identifier")
    if sensitive in quasi_identifiers:
        raise InputError(f"{sensitive!r} cannot be both sensitive and a quasi-identifier")
    if out.resolve() == source.resolve():
        raise InputError("the output would overwrite the input; choose another --out")
    enc = encode(read_chunks(source, wanted, chunk_rows), quasi_identifiers, sensitive, hierarchies)
    anon = anonymize_encoded(enc, criteria, algorithm, max_suppression)
    report = measure(enc, anon, population)
    write = _writer(out)
    start = 0
    keep_columns = [c for c in names if c not in drop]
    for chunk in read_chunks(source, None, chunk_rows):
        end = start + len(chunk)
        kept, values = anon.values(slice(start, end))
        part = chunk.loc[kept, keep_columns].copy()
        for column, labels in zip(quasi_identifiers, values, strict=True):
            part[column] = labels
        write(part)
        start = end
    write(None)
    report |= {"input": str(source), "output": str(out), "dropped_columns": list(drop)}
    report_path(out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
