"""Lineage: OpenLineage run events in the shared database, and the graph from source records to predictions.

Events come from the places that already write them — ``modelshield ingest`` (``lineage.json``), every
pipeline stage (``lineage/events.jsonl``) — and from two this module derives from the audit log: one per
registry registration (job ``registry.<model>``: model files in, the registered version out) and one per
served version (job ``gateway.<model>``: the version in, its predictions out, with their count). Each event is
validated against the vendored OpenLineage 2-0-2 schema before it is stored; an identical event is stored once.

Datasets are joined by digest (the ``version`` facet, SHA-256 of the bytes), not by name: a file copied to a
run folder is the same dataset, an edited one is not. ``upstream(digest)`` walks from an artefact back through
the COMPLETE runs that produced it to the data they read; ``trace_prediction`` starts that walk at the model
digest a gateway audit record names, which answers "which records trained the model that gave this prediction".
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelshield.audit import schema as audit_schema
from modelshield.core.errors import InputError, MissingFileError, ModelShieldError
from modelshield.core.storage import ensure_schema, open_engine, write_transaction
from modelshield.govern.schema import event_problems
from modelshield.ingest.lineage import DatasetRef, facet, run_event, run_id

REGISTRY_NAMESPACE = "modelshield-registry"
GATEWAY_NAMESPACE = "modelshield-gateway"
_LOCK = "modelshield-govern-lineage"
EVENT_FILES = ("events.jsonl", "lineage.json")  # pipeline run folders, ingest output folders

metadata = sa.MetaData()
events = sa.Table(
    "lineage_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_hash", sa.String(64), nullable=False, unique=True),  # SHA-256 of the sorted-key JSON
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("event_type", sa.String(16), nullable=False),
    sa.Column("event_time", sa.String(40), nullable=False),
    sa.Column("job_namespace", sa.String(200), nullable=False),
    sa.Column("job_name", sa.String(400), nullable=False),
    sa.Column("event", sa.Text, nullable=False),
)
datasets = sa.Table(
    "lineage_datasets",
    metadata,
    sa.Column("event_hash", sa.String(64), sa.ForeignKey("lineage_events.event_hash"), nullable=False, index=True),
    sa.Column("side", sa.String(8), nullable=False),  # "input" or "output"
    sa.Column("namespace", sa.String(200), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("digest", sa.String(200), nullable=True),
    sa.Column("records", sa.BigInteger, nullable=True),
    # the graph walk asks "which runs output (or read) this digest": a base model read by every train run
    # must not make that a scan of all its input rows
    sa.Index("ix_lineage_datasets_digest_side", "digest", "side"),
)


def _event_row(digest: str, event: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "event_hash": digest,
        "run_id": event["run"]["runId"],
        "event_type": event.get("eventType") or "OTHER",
        "event_time": event["eventTime"],
        "job_namespace": event["job"]["namespace"],
        "job_name": event["job"]["name"],
        "event": text,
    }


def _dataset_rows(digest: str, event: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "event_hash": digest,
            "side": side.removesuffix("s"),
            "namespace": ds["namespace"],
            "name": ds["name"],
            "digest": _digest(ds),
            "records": _records(ds),
        }
        for side in ("inputs", "outputs")
        for ds in event.get(side) or []
    ]


class LineageError(ModelShieldError):
    """An event did not validate, or the lineage backend refused it."""

    hint = "check the event against the OpenLineage 2-0-2 RunEvent schema"


@dataclass(frozen=True)
class Dataset:
    """A dataset as one event names it."""

    namespace: str
    name: str
    digest: str | None
    records: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "digest": self.digest, "records": self.records}


@dataclass
class Node:
    """A dataset version and the runs that produced it, each with its own inputs' upstream (a tree)."""

    dataset: Dataset
    produced_by: list[RunNode] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.dataset.to_dict(), "produced_by": [r.to_dict() for r in self.produced_by]}

    def sources(self) -> list[Dataset]:
        """The leaves: datasets no recorded run produced (the source records)."""
        if not self.produced_by:
            return [self.dataset]
        found: dict[tuple[str, str, str | None], Dataset] = {}
        for run in self.produced_by:
            for node in run.inputs:
                for ds in node.sources():
                    found.setdefault((ds.namespace, ds.name, ds.digest), ds)
        return list(found.values())


@dataclass
class RunNode:
    """One COMPLETE run: its job, when it ended, and what it read."""

    run_id: str
    job: str
    job_type: str | None
    event_time: str
    inputs: list[Node] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "job": self.job,
            "job_type": self.job_type,
            "event_time": self.event_time,
            "inputs": [n.to_dict() for n in self.inputs],
        }


def _digest(ds: dict[str, Any]) -> str | None:
    version = (ds.get("facets") or {}).get("version") or {}
    value = version.get("datasetVersion")
    return str(value) if value else None


def _records(ds: dict[str, Any]) -> int | None:
    for group, key in (("outputFacets", "outputStatistics"), ("inputFacets", "dataQualityMetrics")):
        count = ((ds.get(group) or {}).get(key) or {}).get("rowCount")
        if isinstance(count, int):
            return count
    return None


def validate_event(event: Any) -> dict[str, Any]:
    """The event, if it is a valid OpenLineage RunEvent; else ``LineageError`` naming every problem."""
    problems = event_problems(event)
    if problems:
        raise LineageError(f"not a valid OpenLineage RunEvent: {'; '.join(problems[:5])}")
    assert isinstance(event, dict)  # a valid RunEvent is an object
    return event


def read_events(path: Path | str) -> Iterator[dict[str, Any]]:
    """The events in a ``.jsonl`` file (one per line), a ``.json`` file (one event or a list), or a folder
    (every ``events.jsonl`` and ``lineage.json`` below it: pipeline run folders, ingest outputs)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for name in EVENT_FILES for f in p.rglob(name))
        if not files:
            raise InputError(f"{p} holds no lineage events ({' or '.join(EVENT_FILES)})")
        for f in files:
            yield from read_events(f)
        return
    if not p.is_file():
        raise MissingFileError(f"{p} does not exist")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix == ".jsonl":
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    yield _object(json.loads(line), f"{p}:{n}")
            return
        doc = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{p} is not JSON: {exc}") from None
    for item in doc if isinstance(doc, list) else [doc]:
        yield _object(item, str(p))


def _object(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise InputError(f"{where}: an OpenLineage event is a JSON object")
    return item


class LineageStore:
    """OpenLineage events in the store at ``url`` (SQLite by default, PostgreSQL by URL), indexed by digest."""

    def __init__(self, engine: Engine) -> None:
        ensure_schema(engine, "govern_lineage", metadata, 1)
        self._engine = engine

    @classmethod
    def open(cls, url: str | None = None) -> LineageStore:
        return cls(open_engine(url))

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> LineageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ingest_events(self, items: Iterable[dict[str, Any]]) -> int:
        """Validate and store events; returns how many were new (an event already stored is skipped).
        Nothing is stored if any event is invalid: a half-loaded run would draw a wrong graph."""
        batch = []
        for n, item in enumerate(items, 1):
            try:
                event = validate_event(item)
            except LineageError as exc:
                raise LineageError(f"event {n}: {exc}") from None
            # sorted keys, no spaces: the same event parsed twice is the same text (json's C encoder: RFC 8785's
            # pure-Python one cost 2 ms an event, most of a large load, and no signature depends on these bytes)
            text = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            batch.append((hashlib.sha256(text.encode("utf-8")).hexdigest(), event, text))
        unique = {digest: (event, text) for digest, event, text in batch}  # the same event twice in one call
        with write_transaction(self._engine, _LOCK) as conn:
            stored: set[str] = set()
            hashes = list(unique)
            for i in range(0, len(hashes), 500):  # bound the IN list (SQLite's host-parameter limit)
                query = sa.select(events.c.event_hash).where(events.c.event_hash.in_(hashes[i : i + 500]))
                stored.update(conn.execute(query).scalars())
            new = [(d, e, t) for d, (e, t) in unique.items() if d not in stored]
            if new:
                conn.execute(events.insert(), [_event_row(d, e, t) for d, e, t in new])
                rows = [row for d, e, _ in new for row in _dataset_rows(d, e)]
                if rows:
                    conn.execute(datasets.insert(), rows)
        added = len(new)
        return added

    def events(self) -> list[dict[str, Any]]:
        """Every stored event, in the order stored (for export)."""
        with self._engine.connect() as conn:
            return [json.loads(r.event) for r in conn.execute(sa.select(events.c.event).order_by(events.c.id))]

    def upstream(self, digest: str, *, depth: int = 32) -> Node:
        """The dataset version ``digest`` and, recursively, the COMPLETE runs that output it and what they read."""
        with self._engine.connect() as conn:
            return self._node(conn, Dataset("", "", digest), set(), depth)

    def _node(self, conn: sa.Connection, ds: Dataset, seen: set[str], depth: int) -> Node:
        query = (
            sa.select(events.c.id, events.c.event, datasets.c.namespace, datasets.c.name, datasets.c.records)
            .join(datasets, datasets.c.event_hash == events.c.event_hash)
            .where(datasets.c.digest == ds.digest, datasets.c.side == "output", events.c.event_type == "COMPLETE")
            .order_by(events.c.id)
        )
        rows = conn.execute(query).all() if ds.digest else []
        if rows and not ds.name:
            ds = Dataset(rows[0].namespace, rows[0].name, ds.digest, rows[0].records)
        node = Node(ds)
        if ds.digest is None or ds.digest in seen or depth <= 0:
            return node
        seen = seen | {ds.digest}
        for row in rows:
            event = json.loads(row.event)
            if any(_digest(i) == ds.digest for i in event.get("inputs") or []):
                continue  # a relabelling (registration, a copy): the same bytes under another name
            job_type = ((event["job"].get("facets") or {}).get("jobType") or {}).get("jobType")
            run = RunNode(event["run"]["runId"], event["job"]["name"], job_type, event["eventTime"])
            for inp in event.get("inputs") or []:
                child = Dataset(inp["namespace"], inp["name"], _digest(inp), _records(inp))
                run.inputs.append(self._node(conn, child, seen, depth - 1))
            node.produced_by.append(run)
        return node

    def downstream(self, digest: str) -> list[RunNode]:
        """The COMPLETE runs that read ``digest`` (registration, serving, a fine-tune that starts from it), the
        latest event of each run, with what they wrote in place of ``inputs``."""
        query = (
            sa.select(events.c.run_id, events.c.event)
            .join(datasets, datasets.c.event_hash == events.c.event_hash)
            .where(datasets.c.digest == digest, datasets.c.side == "input", events.c.event_type == "COMPLETE")
            .order_by(events.c.id)
        )
        latest: dict[str, dict[str, Any]] = {}
        with self._engine.connect() as conn:
            for row in conn.execute(query):
                latest[row.run_id] = json.loads(row.event)
        runs = []
        for rid, event in latest.items():
            job_type = ((event["job"].get("facets") or {}).get("jobType") or {}).get("jobType")
            outputs = [Node(Dataset(o["namespace"], o["name"], _digest(o), _records(o))) for o in event["outputs"]]
            runs.append(RunNode(rid, event["job"]["name"], job_type, event["eventTime"], outputs))
        return runs

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() or 0)


# -- events derived from the audit log: registration and serving --------------------------------------------


def _audit_events(engine: Engine, like: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(recorded_at µs, event)`` for the audit records whose canonical JSON matches ``like``, oldest first."""
    r = audit_schema.records
    query = sa.select(r.c.recorded_at, r.c.event).where(r.c.event.like(like)).order_by(r.c.seq)
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=10_000).execute(query):
            yield int(row.recorded_at), json.loads(row.event)


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def registry_events(audit: Engine, paths: dict[tuple[str, int], str] | None = None) -> list[dict[str, Any]]:
    """One COMPLETE event per registration in the registry's audit log: the model files (by digest) in, the
    registered version ``<model>:<version>`` out. ``paths`` (from ``Registry.list()``) names the files."""
    out = []
    for us, ev in _audit_events(audit, '{"action":"registry.register"%'):
        name, version, digest = ev.get("model"), ev.get("model_version"), ev.get("model_digest")
        if not (isinstance(name, str) and isinstance(version, int) and isinstance(digest, str)):
            continue
        path = (paths or {}).get((name, version))
        files = [DatasetRef(Path(path), digest)] if path else []
        event = run_event(
            run_id([digest], {"registry": name, "version": version}),
            f"registry.{name}",
            _iso(us),
            files,
            [],
            job_type="REGISTER",
        )
        if not files:
            event["inputs"] = [_named("file", f"{name}:{version}/files", digest)]
        event["outputs"] = [_named(REGISTRY_NAMESPACE, f"{name}:{version}", digest)]
        out.append(event)
    return out


def served_events(audit: Engine) -> list[dict[str, Any]]:
    """One COMPLETE event per (model, version) the gateway answered with: the version (by digest) in, its
    predictions out with their count, timed at the last prediction. Read from the gateway's audit log.
    The predictions carry no version facet: they are a stream, not a copy of the model."""
    served: dict[tuple[str, int, str], list[int]] = {}
    for us, ev in _audit_events(audit, '{"action":"predict"%'):
        name, version, digest = ev.get("model"), ev.get("model_version"), ev.get("model_digest")
        if isinstance(name, str) and isinstance(version, int) and isinstance(digest, str):
            seen = served.setdefault((name, version, digest), [0, us])
            seen[0] += 1
            seen[1] = us
    out = []
    for (name, version, digest), (count, last) in served.items():
        ref = f"{name}:{version}"
        event = run_event(
            run_id([digest], {"gateway": name, "version": version}),
            f"gateway.{name}",
            _iso(last),
            [],
            [],
            job_type="SERVE",
        )
        event["inputs"] = [_named(REGISTRY_NAMESPACE, ref, digest)]
        event["outputs"] = [_named(GATEWAY_NAMESPACE, f"{ref}/predictions", None, records=count)]
        out.append(event)
    return out


def _named(namespace: str, name: str, digest: str | None, *, records: int | None = None) -> dict[str, Any]:
    """A dataset outside the file system (a registry entry, a stream of predictions), with the same facets."""
    ds: dict[str, Any] = {"namespace": namespace, "name": name, "facets": {}}
    if digest:
        ds["facets"]["version"] = facet("DatasetVersionDatasetFacet", datasetVersion=digest)
    if records is not None:
        ds["outputFacets"] = {"outputStatistics": facet("OutputStatisticsOutputDatasetFacet", rowCount=records)}
    return ds


# -- a prediction's lineage ----------------------------------------------------------------------------------


@dataclass
class PredictionLineage:
    """A gateway prediction, the model version that gave it, and that version's upstream graph."""

    seq: int
    request_id: str
    time: str
    model: str
    version: int
    digest: str
    graph: Node

    def training_data(self) -> list[Dataset]:
        """What the runs that produced the model read (its direct training inputs)."""
        return [n.dataset for run in self.graph.produced_by for n in run.inputs]

    def to_dict(self) -> dict[str, Any]:
        return {
            "prediction": {"seq": self.seq, "request_id": self.request_id, "time": self.time},
            "model": {"name": self.model, "version": self.version, "digest": self.digest},
            "training_data": [d.to_dict() for d in self.training_data()],
            "sources": [d.to_dict() for d in self.graph.sources()],
            "graph": self.graph.to_dict(),
        }


def find_prediction(audit: Engine, request_id: str) -> tuple[int, int, dict[str, Any]]:
    """``(seq, recorded_at µs, record)`` of the gateway's predict record for ``request_id``."""
    r = audit_schema.records
    needle = json.dumps(request_id)
    query = (
        sa.select(r.c.seq, r.c.recorded_at, r.c.event)
        .where(r.c.event.like('{"action":"predict"%'), r.c.event.contains(f'"request_id":{needle}'))
        .order_by(r.c.seq)
    )
    with audit.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise InputError(f"the audit log has no prediction with request id {request_id!r}")
    return int(row.seq), int(row.recorded_at), json.loads(row.event)


def trace_prediction(store: LineageStore, audit: Engine, request_id: str) -> PredictionLineage:
    """Which model version answered request ``request_id``, and which data (by digest) trained it."""
    seq, us, record = find_prediction(audit, request_id)
    digest, version = record.get("model_digest"), record.get("model_version")
    if not isinstance(digest, str) or not isinstance(version, int):
        raise InputError(f"prediction {request_id!r} was refused before a model version was chosen")
    return PredictionLineage(
        seq, request_id, _iso(us), str(record.get("model")), version, digest, store.upstream(digest)
    )


# -- export to an OpenLineage backend -----------------------------------------------------------------------


def export_http(items: Iterable[dict[str, Any]], url: str, *, api_key: str | None = None, timeout: float = 10.0) -> int:
    """POST each event to ``<url>/api/v1/lineage`` (Marquez and every OpenLineage HTTP backend); returns the
    number sent. Each is validated first; a refusal stops the export with the backend's status."""
    if not url.startswith(("http://", "https://")):
        raise InputError(f"the lineage backend must be an http(s) URL, not {url!r}")
    endpoint = url.rstrip("/") + "/api/v1/lineage"
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    sent = 0
    for event in items:
        body = json.dumps(validate_event(event)).encode("utf-8")
        request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http/https checked)
                response.read()
        except urllib.error.HTTPError as exc:
            raise LineageError(
                f"{endpoint} refused event {sent + 1} (run {event['run']['runId']}): HTTP {exc.code}"
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise LineageError(
                f"cannot reach {endpoint}: {reason}", hint="is the OpenLineage backend running?"
            ) from None
        sent += 1
    return sent
