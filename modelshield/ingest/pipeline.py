"""``ingest``: provenance, schema, distribution and poisoning checks, then accepted set + quarantine + lineage.

Order matters. The source is proven first (digest, signature, lock): a tampered file is refused before a
record is parsed and nothing is written. Then the table streams through in chunks — schema rules and the
detectors decide per record, the drift check keeps a fixed-size sample — into temporary files beside the
outputs. Only when the last chunk is through, and the bytes read hash to the digest that was proven, do the
outputs replace any earlier ones: a run that fails at any point leaves the output folder as it was.

Outputs in ``out``: ``accepted.csv`` (or ``.parquet``, as the input), ``quarantine.jsonl``, ``lineage.json``
(OpenLineage RunEvent), ``report.json`` and ``report.html``. The run id hashes the input and reference
digests and every setting; re-running the same ingestion rewrites byte-identical files (the event time of a
run already recorded in ``out/lineage.json`` is kept).
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelshield.core.errors import InputError, IntegrityError
from modelshield.core.files import atomic_path, hash_file
from modelshield.defenses.poisoning.schema import Schema
from modelshield.ingest.drift import ALPHA, MIN_EFFECT, SAMPLE_SIZE, DriftCheck, FeatureDrift
from modelshield.ingest.lineage import DatasetRef, run_event, run_id
from modelshield.ingest.quarantine import Quarantine
from modelshield.ingest.schema import check_columns, coerce, load_or_infer, names, text_columns, violations
from modelshield.ingest.screen import DEFAULT_DETECTORS, LABEL_DETECTORS, Screen
from modelshield.ingest.source import SourceCheck, check_source
from modelshield.ingest.tables import TableReader, TableWriter

if TYPE_CHECKING:
    import pandas as pd


CHUNK_ROWS = 50_000
QUARANTINE = "quarantine.jsonl"
LINEAGE = "lineage.json"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
RECORDS = {"lineage": LINEAGE, "report_json": REPORT_JSON, "report_html": REPORT_HTML}


@dataclass(frozen=True)
class IngestConfig:
    """Every setting of a run; those that shape its outputs go into the run id."""

    reference: Path
    schema: Path | None = None
    label: str | None = None
    chunk_rows: int = CHUNK_ROWS
    alpha: float = ALPHA
    min_effect: float = MIN_EFFECT
    sample_size: int = SAMPLE_SIZE
    public_key: Path | None = None
    signature: Path | None = None
    lock: Path | None = None
    require_signature: bool = False
    detectors: tuple[str, ...] | None = None  # None: mad and isolation-forest, plus trimmed-loss with a label
    fpr: float = 0.01
    job: str | None = None


@dataclass
class IngestResult:
    """What a run did; ``report`` is the JSON report's content."""

    run_id: str
    records: int
    accepted: int
    quarantined: int
    drift: list[FeatureDrift]
    outputs: dict[str, Path]
    report: dict[str, Any] = field(repr=False)

    @property
    def drifted(self) -> list[str]:
        return [d.column for d in self.drift if d.drifted]


def _read_reference(path: Path, schema_path: Path | None, label: str | None) -> tuple[pd.DataFrame, Schema]:
    """The reference set, whole and coerced (it is the trusted sample the detectors learn from), and the schema."""
    import pandas as pd

    from modelshield.ingest.tables import table_format

    fmt = table_format(path)
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        elif schema_path is not None:
            frame = pd.read_csv(
                path, encoding="utf-8", dtype=dict.fromkeys(text_columns(Schema.load(schema_path)), str)
            )
        else:
            frame = pd.read_csv(path, encoding="utf-8")
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"cannot read reference {path} as {fmt}: {' '.join(str(exc).split())[:200]}") from None
    if frame.empty:
        raise InputError(f"reference {path} has no records")
    frame.columns = [str(c) for c in frame.columns]
    schema = load_or_infer(schema_path, frame)
    check_columns(list(frame.columns), schema, f"reference {path}")
    if label is not None and label not in names(schema):
        raise InputError(f"there is no label column {label!r} (columns: {', '.join(names(schema))})")
    return coerce(frame, schema, f"reference {path}", 0), schema


def _settings(config: IngestConfig, schema: Schema, screen: Screen, fmt: str, source: SourceCheck) -> dict[str, Any]:
    return {
        "provenance": {"signer": source.signer, "lock_entries": list(source.lock_entries)},
        "schema": json.loads(schema.to_json()),
        "label": config.label,
        "detectors": screen.describe(),
        "fpr": config.fpr,
        "drift": {"alpha": config.alpha, "min_effect": config.min_effect, "sample_size": config.sample_size},
        "chunk_rows": config.chunk_rows,
        "format": fmt,
        "job": config.job,
    }


def _event_time(lineage: Path, run: str) -> str:
    """The time this run was first recorded, if ``out`` already holds its event; otherwise now."""
    try:
        old = json.loads(lineage.read_text(encoding="utf-8"))
        if old.get("run", {}).get("runId") == run and isinstance(old.get("eventTime"), str):
            return str(old["eventTime"])
    except (OSError, ValueError, AttributeError):
        pass
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ingest(
    path: Path | str,
    out: Path | str,
    config: IngestConfig,
) -> IngestResult:
    """Check ``path`` against the trusted reference and write accepted set, quarantine, lineage and reports."""
    from modelshield.ingest.report import render_html

    src, out_dir = Path(path), Path(out)
    source = check_source(
        src,
        public_key=config.public_key,
        signature=config.signature,
        lock=config.lock,
        require_signature=config.require_signature,
    )
    reference_source: SourceCheck = check_source(config.reference, public_key=config.public_key, lock=config.lock)
    reference, schema = _read_reference(config.reference, config.schema, config.label)
    reader = TableReader(src, schema, config.chunk_rows)
    reader.columns()
    detectors = config.detectors
    if detectors is None:
        detectors = (*DEFAULT_DETECTORS, *(LABEL_DETECTORS if config.label else ()))
    screen = Screen(list(detectors), config.fpr, reference, schema, config.label)
    drift = DriftCheck(
        reference, schema, alpha=config.alpha, min_effect=config.min_effect, sample_size=config.sample_size
    )
    run = run_id([source.digest, reference_source.digest], _settings(config, schema, screen, reader.format, source))
    names = {"accepted": f"accepted.{reader.format}", "quarantine": QUARANTINE}
    targets = {k: out_dir / v for k, v in names.items()}
    if src.resolve() in {p.resolve() for p in targets.values()}:
        raise InputError(f"{src} is one of the outputs in {out_dir}; write them to another folder")
    with ExitStack() as stack:
        tmp = {k: stack.enter_context(atomic_path(p, mode=0o644)) for k, p in targets.items()}
        with tmp["accepted"].open("wb") as acc_f, tmp["quarantine"].open("wb") as q_f:
            writer = TableWriter(acc_f, reader.format, reader.arrow_schema)
            quarantine = Quarantine(q_f)
            for chunk in reader:
                frame = coerce(chunk.frame, schema, str(src), chunk.first_row)
                held = quarantine.add(chunk.frame, chunk.first_row, violations(frame, schema), screen.flags(frame))
                keep = np.ones(len(frame), dtype=bool)
                keep[list(held)] = False
                writer.write(chunk, keep)
                # drift is a property of the source, so it sees every record that came in: testing only the
                # accepted ones would compare a set the screens trimmed of its tails with an untrimmed reference
                drift.update(frame, chunk.first_row)
            writer.close()
        if reader.digest != source.digest:
            raise IntegrityError(f"{src} changed while it was read (its digest is not the one verified before)")
        event_time = _event_time(out_dir / LINEAGE, run)
        written = {k: hash_file(p) for k, p in tmp.items()}
        accepted = reader.rows - quarantine.records
        fields = tuple((c.name, c.kind) for c in schema.columns)
        outputs = [
            DatasetRef(
                targets["accepted"], f"sha256:{written['accepted'][0]}", accepted, written["accepted"][1], fields
            ),
            DatasetRef(
                targets["quarantine"],
                f"sha256:{written['quarantine'][0]}",
                quarantine.records,
                written["quarantine"][1],
            ),
        ]
        inputs = [
            DatasetRef(src, source.digest, reader.rows, source.size, fields),
            DatasetRef(config.reference, reference_source.digest, len(reference), reference_source.size, fields),
        ]
        event = run_event(run, config.job or f"ingest.{src.stem}", event_time, inputs, outputs)
        results = drift.result()
        report = {
            "run_id": run,
            "event_time": event_time,
            "records": reader.rows,
            "accepted": accepted,
            "quarantined": quarantine.records,
            "quarantined_by_check": dict(sorted(quarantine.by_check.items())),
            "reasons": dict(sorted(quarantine.by_rule.items())),
            "source": source.to_json(),
            "reference": {**reference_source.to_json(), "records": len(reference)},
            "schema": json.loads(schema.to_json()),
            "label": config.label,
            "detectors": screen.describe(),
            "drift": {
                "tested_on": "all records read",
                "alpha": config.alpha,
                "min_effect": config.min_effect,
                "sample_size": config.sample_size,
                "features": [d.to_json() for d in results],
                "drifted": [d.column for d in results if d.drifted],
            },
            "outputs": {k: {"path": str(p), "digest": f"sha256:{written[k][0]}"} for k, p in targets.items()},
            "examples": quarantine.examples,
        }
        records = {
            "lineage": json.dumps(event, indent=2, sort_keys=True) + "\n",
            "report_json": json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            "report_html": render_html(report),
        }
        for key, text in records.items():  # all five files are renamed into place only if all were written
            with stack.enter_context(atomic_path(out_dir / RECORDS[key], mode=0o644)).open("wb") as f:
                f.write(text.encode("utf-8"))
    paths = {**targets, **{k: out_dir / v for k, v in RECORDS.items()}}
    return IngestResult(run, reader.rows, accepted, quarantine.records, results, paths, report)
