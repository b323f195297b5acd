"""``modelshield govern``: lineage from source records to predictions, the registry's serving history, model
cards, datasheets, the inventory and the per-model security metrics."""

from __future__ import annotations

import json
import os
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelshield.cli._governance_access import attach as attach_access
from modelshield.cli._governance_dpia import attach as attach_dpia
from modelshield.cli._governance_erasure import attach as attach_erasure
from modelshield.cli._options import emit_text
from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from modelshield.govern.evidence import Evidence
    from modelshield.govern.lineage import LineageStore, Node, RunNode
    from modelshield.registry import ModelVersion, Registry

govern_app = typer.Typer(
    help="Governance: lineage, serving history, model cards, datasheets, inventory, security metrics.",
    no_args_is_help=True,
)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="MODELSHIELD_DB_URL",
        help="Database of the registry, its audit log and the lineage (default: SQLite in $MODELSHIELD_HOME).",
    ),
]
AuditDbOption = Annotated[
    str | None,
    typer.Option("--audit-db", help="The gateway's audit log, where predictions are recorded (default: --db)."),
]
ModelArg = Annotated[str, typer.Argument(help="MODEL or MODEL:VERSION (default version: the one served).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
OutOption = Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of standard output.")]


class CardFormat(str, Enum):
    html = "html"
    cyclonedx = "cyclonedx"
    json = "json"


class TableFormat(str, Enum):
    csv = "csv"
    json = "json"


class SheetFormat(str, Enum):
    markdown = "markdown"
    json = "json"


def _model_ref(ref: str) -> tuple[str, int | None]:
    """``MODEL[:VERSION]`` → name (checked) and version."""
    from modelshield.registry.store import check_name

    name, sep, version = ref.partition(":")
    if sep and not version.isdigit():
        raise InputError(f"{ref!r}: the version after ':' must be a number")
    return check_name(name), int(version) if sep else None


def _registry(db: str | None) -> Registry:
    from modelshield.registry import Registry

    return Registry.open(db)


def _audit(url: str | None) -> Engine:
    from modelshield.cli.audit import existing_log

    return existing_log(url)


def _store(db: str | None) -> LineageStore:
    from modelshield.govern.lineage import LineageStore

    return LineageStore.open(db)


def _short(digest: str | None) -> str:
    return (digest[:19] + "…") if digest else "(no digest)"


# -- lineage ------------------------------------------------------------------------------------------------


@govern_app.command("load")
def load_command(
    paths: Annotated[
        list[Path], typer.Argument(help="events.jsonl / lineage.json files, or folders holding them (run folders).")
    ] = [],  # noqa: B006
    db: DbOption = None,
    audit_db: Annotated[
        str | None, typer.Option("--audit-db", help="The gateway's audit log: one event per served version.")
    ] = None,
    derive: Annotated[
        bool, typer.Option("--registry/--no-registry", help="Also derive registration and serving events.")
    ] = True,
) -> None:
    """Validate OpenLineage events against the vendored 2-0-2 schema and store them (an event already stored is
    skipped); with --registry, add one event per registration in --db's audit log, and with --audit-db one per
    version the gateway served."""
    from modelshield.govern.lineage import read_events, registry_events, served_events

    found = [e for p in paths for e in read_events(p)]
    derived: list[dict[str, Any]] = []
    if derive:
        with _registry(db) as reg:
            paths_by_version = {(mv.name, mv.version): mv.path for mv in reg.list()}
        if paths_by_version:  # a registry with versions has their audit records in the same store
            audit = _audit(db)
            try:
                derived += registry_events(audit, paths_by_version)
            finally:
                audit.dispose()
        gateway = _audit(audit_db) if audit_db is not None else None
        if gateway is not None:
            try:
                derived += served_events(gateway)
            finally:
                gateway.dispose()
    if not found and not derived:
        raise InputError("no events: give event files or run folders, or a registry with registrations")
    with _store(db) as store:
        added = store.ingest_events(found + derived)
        total = store.count()
    typer.echo(
        f"{len(found)} event(s) from files, {len(derived)} from the registry and gateway: {added} new, {total} stored"
    )


def _tree(node: Node, indent: str, lines: list[str]) -> None:
    for i, run in enumerate(node.produced_by):
        last_run = i == len(node.produced_by) - 1
        lines.append(f"{indent}{'└─' if last_run else '├─'} produced by {run.job} ({run.job_type}) at {run.event_time}")
        child_indent = indent + ("   " if last_run else "│  ")
        for j, inp in enumerate(run.inputs):
            last = j == len(run.inputs) - 1
            ds = inp.dataset
            records = f"  {ds.records} records" if ds.records is not None else ""
            source = "  [source]" if not inp.produced_by else ""
            lines.append(f"{child_indent}{'└─' if last else '├─'} {ds.name}  {_short(ds.digest)}{records}{source}")
            _tree(inp, child_indent + ("   " if last else "│  "), lines)


def _used_by(runs: list[RunNode], lines: list[str]) -> None:
    if runs:
        lines.append("used by:")
    for run in runs:
        outs = ", ".join(
            f"{n.dataset.namespace}:{n.dataset.name}" + (f" ({n.dataset.records} records)" if n.dataset.records else "")
            for n in run.inputs
        )
        lines.append(f"  {run.job} ({run.job_type}) at {run.event_time}" + (f" → {outs}" if outs else ""))


@govern_app.command("lineage")
def lineage_command(model: ModelArg, db: DbOption = None, as_json: JsonOption = False) -> None:
    """The graph of a model version: the runs and data (by digest) that produced it, back to the source
    records, and what used it (registration, serving, with the number of predictions)."""
    name, version = _model_ref(model)
    with _registry(db) as reg:
        mv = reg.get(name, version)
    with _store(db) as store:
        node, used = store.upstream(mv.digest), store.downstream(mv.digest)
    if not node.produced_by and not used:
        raise InputError(
            f"no lineage event names {mv.ref}'s digest {_short(mv.digest)}",
            hint="load the run's events first: modelshield govern load RUN_DIR",
        )
    if as_json:
        doc = {
            "model": mv.to_dict(),
            "upstream": node.to_dict(),
            "sources": [d.to_dict() for d in node.sources()],
            "used_by": [r.to_dict() for r in used],
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    lines = [f"{mv.ref}  {mv.digest}  ({mv.status})"]
    _tree(node, "", lines)
    _used_by(used, lines)
    typer.echo("\n".join(lines))


@govern_app.command("trace")
def trace_command(
    request_id: Annotated[str, typer.Argument(help="The prediction's request id (X-Request-ID).")],
    db: DbOption = None,
    audit_db: AuditDbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Which model version gave this prediction, and which records trained it (from the gateway's audit log)."""
    from modelshield.govern.lineage import trace_prediction

    audit = _audit(audit_db or db)
    try:
        with _store(db) as store:
            found = trace_prediction(store, audit, request_id)
    finally:
        audit.dispose()
    if as_json:
        typer.echo(json.dumps(found.to_dict(), indent=2))
        return
    lines = [
        f"prediction {request_id} (audit record {found.seq}, {found.time})",
        f"answered by {found.model}:{found.version}  {found.digest}",
    ]
    if not found.graph.produced_by:
        lines.append("no lineage event produced this model digest (load the run's events: modelshield govern load)")
    _tree(found.graph, "", lines)
    lines.append("source records:")
    lines += [f"  {d.name}  {d.digest}" for d in found.graph.sources()] if found.graph.produced_by else ["  unknown"]
    typer.echo("\n".join(lines))


@govern_app.command("export")
def export_command(
    url: Annotated[str, typer.Option("--url", help="The OpenLineage backend (events go to URL/api/v1/lineage).")],
    db: DbOption = None,
    api_key_env: Annotated[
        str | None, typer.Option("--api-key-env", help="Environment variable holding a bearer token.")
    ] = None,
) -> None:
    """Send every stored event to an OpenLineage HTTP backend (Marquez, or any that takes /api/v1/lineage)."""
    from modelshield.govern.lineage import export_http

    key = None
    if api_key_env is not None:
        key = os.environ.get(api_key_env)
        if not key:
            raise InputError(f"the environment variable {api_key_env} is not set")
    with _store(db) as store:
        sent = export_http(store.events(), url, api_key=key)
    typer.echo(f"sent {sent} event(s) to {url.rstrip('/')}/api/v1/lineage")


# -- history --------------------------------------------------------------------------------------------------


def _instant(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--at {text!r} is not an ISO 8601 time (e.g. 2026-05-01T12:00:00Z)") from None


def _shares(shares: dict[int, float]) -> str:
    return ", ".join(f"v{v} {p:g}%" for v, p in shares.items()) or "nothing served"


@govern_app.command("history")
def history_command(
    model: Annotated[str, typer.Argument(help="Model name.")],
    at: Annotated[str | None, typer.Option("--at", help="Only the configuration at this instant (ISO 8601).")] = None,
    db: DbOption = None,
    audit_db: Annotated[
        str | None, typer.Option("--audit-db", help="Also count the gateway's predictions per version here.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Which version served which share of MODEL's traffic, from when to when, on whose approval."""
    from modelshield.govern.history import served_shares, timeline, version_at

    name, _ = _model_ref(model)
    audit = _audit(db)
    try:
        if at is not None:
            found = version_at(audit, name, _instant(at))
            entries = [found] if found is not None else []
        else:
            entries = timeline(audit, name)
    finally:
        audit.dispose()
    measured: dict[int, int] | None = None
    if audit_db is not None:
        gateway = _audit(audit_db)
        try:
            measured = served_shares(gateway, name)
        finally:
            gateway.dispose()
    if as_json:
        doc: dict[str, Any] = {"model": name, "history": [e.to_dict() for e in entries]}
        if measured is not None:
            doc["predictions_by_version"] = {str(k): v for k, v in measured.items()}
        typer.echo(json.dumps(doc, indent=2))
        return
    if not entries:
        typer.echo(f"{name} served nothing at {at}")
    for e in entries:
        until = e.until or "now"
        pin = f" (pinned v{e.pinned})" if e.pinned is not None else ""
        a = e.approval
        typer.echo(
            f"{e.since} → {until}: {_shares(e.shares)}{pin}  [{a.action} v{a.version} by {a.actor}, audit #{a.seq}]"
        )
    if measured is not None:
        total = sum(measured.values())
        typer.echo(
            "gateway predictions: "
            + (", ".join(f"v{v} {n} ({n / total:.1%})" for v, n in measured.items()) if total else "none")
        )


# -- cards, datasheets, inventory, metrics -----------------------------------------------------------------------


def _evidence(
    mv: ModelVersion,
    run: Path | None,
    assess: Path | None,
    privacy: Path | None,
    threat: Path | None,
    intended_use: Path | None,
) -> Evidence:
    from modelshield.govern.evidence import gather

    return gather(mv, run=run, assess=assess, privacy=privacy, threat=threat, considerations=intended_use)


@govern_app.command("card")
def card_command(
    model: ModelArg,
    format: Annotated[CardFormat, typer.Option("--format", "-f", help="html, cyclonedx or json.")] = CardFormat.html,
    run: Annotated[Path | None, typer.Option("--run", help="Pipeline run folder (default: found by digest).")] = None,
    assess: Annotated[Path | None, typer.Option("--assess", help="An assess report.json.")] = None,
    privacy: Annotated[Path | None, typer.Option("--privacy", help="A privacy audit --json file.")] = None,
    threat: Annotated[Path | None, typer.Option("--threat", help="A threat check JSON report.")] = None,
    intended_use: Annotated[
        Path | None, typer.Option("--intended-use", help="YAML: intended_use, users, limitations, …")
    ] = None,
    db: DbOption = None,
    out: OutOption = None,
) -> None:
    """The model card of a version from the registry, its evidence and its lineage (CycloneDX is validated
    against the 1.6 schema before it is written)."""
    from modelshield.govern.cards import cyclonedx_card, dataset_component, html_card, json_card, validate_cyclonedx

    name, version = _model_ref(model)
    with _registry(db) as reg:
        mv = reg.get(name, version)
    ev = _evidence(mv, run, assess, privacy, threat, intended_use)
    with _store(db) as store:
        node, used = store.upstream(mv.digest), store.downstream(mv.digest)
    trained_on = [n.dataset for r in node.produced_by for n in r.inputs]
    lineage = None
    if node.produced_by or used:
        lineage = {
            "training_data": [d.to_dict() for d in trained_on],
            "sources": [d.to_dict() for d in node.sources()] if node.produced_by else [],
            "served": [r.to_dict() for r in used if r.job_type == "SERVE"],
        }
    if format is CardFormat.cyclonedx:
        components = [dataset_component(d.name, d.digest, d.records) for d in trained_on]
        doc = cyclonedx_card(ev, components or None)
        validate_cyclonedx(doc)
        emit_text(json.dumps(doc, indent=2) + "\n", out, "CycloneDX 1.6 model card (validated)")
    elif format is CardFormat.json:
        emit_text(json.dumps(json_card(ev, lineage), indent=2) + "\n", out, "model card")
    else:
        emit_text(html_card(ev, lineage, [d.to_dict() for d in trained_on]), out, "model card")


@govern_app.command("datasheet")
def datasheet_command(
    dataset: Annotated[Path, typer.Argument(help="The dataset file or folder.")],
    answers: Annotated[
        Path | None, typer.Option("--answers", help="YAML: motivation, collection, uses, … (Gebru et al.).")
    ] = None,
    label: Annotated[str | None, typer.Option("--label", help="Label column of a CSV, for label counts.")] = None,
    format: Annotated[SheetFormat, typer.Option("--format", "-f")] = SheetFormat.markdown,
    db: DbOption = None,
    out: OutOption = None,
) -> None:
    """A datasheet for a dataset: composition measured from the file, collection and uses from the lineage,
    the rest from your answers."""
    from modelshield.govern.datasheet import datasheet, load_answers, markdown

    given = load_answers(answers) if answers is not None else None
    with _registry(db) as reg:
        models = reg.list()
    with _store(db) as store:
        sheet = datasheet(dataset, store=store, models=models, answers=given, label=label)
    text = json.dumps(sheet, indent=2) + "\n" if format is SheetFormat.json else markdown(sheet)
    emit_text(text, out, "datasheet")


@govern_app.command("inventory")
def inventory_command(
    format: Annotated[TableFormat, typer.Option("--format", "-f")] = TableFormat.csv,
    db: DbOption = None,
    out: OutOption = None,
) -> None:
    """Every registered version: owner, digest, status, signed, datasets, its share of traffic now and who
    approved that."""
    from modelshield.govern.inventory import inventory, to_csv, to_json

    with _registry(db) as reg:
        versions = reg.list()
    audit = _audit(db)
    try:
        rows = inventory(versions, audit)
    finally:
        audit.dispose()
    emit_text(to_csv(rows) if format is TableFormat.csv else to_json(rows), out, "inventory")


@govern_app.command("metrics")
def metrics_command(
    db: DbOption = None,
    audit_db: Annotated[
        str | None, typer.Option("--audit-db", help="Where incidents are counted (default: --db).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The CISO view: per model, the version serving most traffic (else the newest) with its robust accuracy,
    ε spent, open threats, scan status, signature and incidents."""
    from modelshield.govern.evidence import gather
    from modelshield.govern.inventory import current_shares
    from modelshield.govern.metrics import summarise

    with _registry(db) as reg:
        versions = reg.list()
    if not versions:
        raise InputError("the registry is empty", hint="modelshield registry register NAME PATH --owner TEAM")
    audit = _audit(db)
    gateway = _audit(audit_db) if audit_db is not None else audit
    rows = []
    try:
        for name in dict.fromkeys(mv.name for mv in versions):
            mine = [mv for mv in versions if mv.name == name]
            shares, _ = current_shares(audit, name)
            top = max(shares, key=lambda v: shares[v]) if shares else mine[-1].version
            mv = next(m for m in mine if m.version == top)
            rows.append(summarise(gather(mv), shares.get(top), gateway))
    finally:
        audit.dispose()
        if gateway is not audit:
            gateway.dispose()
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    header = f"{'model':<20} {'ver':>3} {'status':<11} {'traffic':>7} {'robust':>6} {'ε':>6} {'ε≥':>6} {'threats':>7} {'scan':<11} {'signed':<6} incidents"
    typer.echo(header)
    for r in rows:
        typer.echo(
            f"{r.model:<20} {r.version:>3} {r.status:<11} {num(r.traffic_percent, '.0f'):>7} "
            f"{num(r.robust_accuracy):>6} {num(r.epsilon_spent, '.2f'):>6} {num(r.epsilon_demonstrated, '.2f'):>6} "
            f"{'—' if r.open_threats is None else r.open_threats:>7} {r.scan:<11} {'yes' if r.signed else 'NO':<6} "
            f"{r.incidents}" + (f" (last {r.last_incident})" if r.last_incident else "")
        )


def num(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


attach_erasure(govern_app)  # erase, verify-certificate, retention
attach_dpia(govern_app)  # minimise, dpia
attach_access(govern_app)  # consent, access, dpa


def register(app: typer.Typer) -> None:
    """Add `modelshield govern ...`."""
    app.add_typer(
        govern_app, name="govern", help="Lineage, serving history, model cards, datasheets, inventory, metrics."
    )
