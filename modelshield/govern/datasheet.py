"""Datasheets for datasets (Gebru et al., 2018, "Datasheets for Datasets", arXiv:1803.09010).

The seven sections of the paper's questionnaire — motivation, composition, collection, preprocessing, uses,
distribution, maintenance — filled from what modelshield can measure and from what only people can say:
composition from the file itself (digest, size, records, columns, label counts for a CSV), collection and
preprocessing from the lineage (the runs that produced this exact version, the ingest screen's accepted and
quarantined counts), uses from the lineage too (the runs and registered model versions that read it), and
the rest from a YAML of answers whose keys are the section names. A question nobody answered stays visibly
unanswered: a datasheet is a record of what is known, not a form filled with defaults.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelshield.core.errors import InputError
from modelshield.core.files import load_yaml
from modelshield.govern.lineage import LineageStore
from modelshield.integrity.provenance import hash_tree
from modelshield.registry.store import ModelVersion

SECTIONS = ("motivation", "composition", "collection", "preprocessing", "uses", "distribution", "maintenance")
MAX_LABELS = 50


def _csv_profile(path: Path, label: str | None) -> dict[str, Any]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        labels: Counter[str] = Counter()
        column = header.index(label) if label and label in header else None
        if label and column is None:
            raise InputError(f"{path} has no column {label!r} (columns: {', '.join(header[:10])})")
        rows = 0
        for row in reader:
            rows += 1
            if column is not None and column < len(row):
                labels[row[column]] += 1
    profile: dict[str, Any] = {"records": rows, "columns": len(header), "column_names": header[:100]}
    if column is not None:
        profile["label"] = label
        profile["label_counts"] = dict(labels.most_common(MAX_LABELS))
    return profile


def _looks_csv(path: Path) -> bool:
    """A ``.csv`` file, or one without a suffix whose first line is UTF-8 text with commas (a pipeline artefact
    such as ``training-data`` is written without one)."""
    if path.suffix.lower() == ".csv":
        return True
    if path.suffix:
        return False
    with path.open("rb") as f:
        head = f.read(4096)
    try:
        first = head.decode("utf-8").splitlines()[0] if head else ""
    except UnicodeDecodeError:
        return False
    return "," in first and first.isprintable()


def load_answers(path: Path) -> dict[str, Any]:
    """The people's answers: a YAML mapping of section → text (or a mapping of question → answer)."""
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    doc = load_yaml(path) or {}
    if not isinstance(doc, dict):
        raise InputError(f"{path} must map section names to answers")
    unknown = sorted(set(doc) - set(SECTIONS))
    if unknown:
        raise InputError(f"{path}: unknown section(s) {', '.join(unknown)} (use {', '.join(SECTIONS)})")
    return doc


def datasheet(
    path: Path,
    *,
    store: LineageStore | None = None,
    models: Sequence[ModelVersion] = (),
    answers: dict[str, Any] | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """The datasheet of the dataset at ``path`` as a dict of the seven sections."""
    if not path.exists():
        raise InputError(f"{path} does not exist")
    tree = hash_tree(path)
    composition: dict[str, Any] = {"path": str(path.absolute()), "digest": tree.digest, "bytes": tree.size}
    if path.is_file() and _looks_csv(path):
        composition.update(_csv_profile(path, label))
    elif tree.files is not None:
        composition["files"] = len(tree.files)
    sheet: dict[str, Any] = {s: {} for s in SECTIONS}
    sheet["composition"] = composition
    if store is not None:
        node = store.upstream(tree.digest)
        sheet["collection"]["produced_by"] = [
            {"job": r.job, "run_id": r.run_id, "time": r.event_time, "inputs": [n.dataset.to_dict() for n in r.inputs]}
            for r in node.produced_by
        ]
        sheet["collection"]["sources"] = [d.to_dict() for d in node.sources()] if node.produced_by else []
        sheet["uses"]["read_by"] = [
            {"job": r.job, "run_id": r.run_id, "time": r.event_time, "wrote": [n.dataset.to_dict() for n in r.inputs]}
            for r in store.downstream(tree.digest)
        ]
    trained = [
        mv.ref
        for mv in models
        if any(d == str(path) or d == str(path.absolute()) or d == tree.digest for d in mv.datasets)
    ]
    if trained:
        sheet["uses"]["registered_models"] = trained
    for section, answer in (answers or {}).items():
        sheet[section]["answers"] = answer
    return {"dataset": path.name, "sections": sheet, "unanswered": [s for s in SECTIONS if not sheet[s]]}


def markdown(sheet: dict[str, Any]) -> str:
    """The datasheet as Markdown, one heading per section; unanswered sections say so."""
    lines = [f"# Datasheet: {sheet['dataset']}", ""]
    for section in SECTIONS:
        lines += [f"## {section.capitalize()}", ""]
        body = sheet["sections"][section]
        if not body:
            lines += ["*Not answered.*", ""]
            continue
        for key, value in body.items():
            if isinstance(value, list):
                lines.append(f"- **{key}**:")
                lines += [f"  - {_flat(v)}" for v in value] or ["  - (none)"]
            else:
                lines.append(f"- **{key}**: {_flat(value)}")
        lines.append("")
    return "\n".join(lines)


def _flat(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_flat(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return "; ".join(_flat(v) for v in value)
    return str(value)
