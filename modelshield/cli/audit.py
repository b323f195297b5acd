"""``modelshield audit``: verify the tamper-evident audit log, export it to a SIEM, sign checkpoints, make keys."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

audit_app = typer.Typer(
    help="Tamper-evident audit log: verify, export (OCSF), tail, checkpoint, keygen.", no_args_is_help=True
)

DbOption = Annotated[
    str | None,
    typer.Option("--db", envvar="MODELSHIELD_DB_URL", help="Database URL (default: SQLite in $MODELSHIELD_HOME)."),
]


def existing_log(url: str | None) -> Engine:
    """The engine of a database that already holds an audit log; never creates one by looking."""
    import sqlalchemy as sa

    from modelshield.audit import schema
    from modelshield.core.storage import database_url, ensure_schema, open_engine, safe_url

    chosen = database_url(url)
    parsed = sa.make_url(chosen) if chosen.startswith(("sqlite", "postgres")) else None
    if (
        parsed is not None
        and parsed.drivername.startswith("sqlite")
        and parsed.database
        and not Path(parsed.database).expanduser().is_file()
    ):
        raise InputError(f"no audit log: {parsed.database} does not exist")
    engine = open_engine(chosen)
    if not sa.inspect(engine).has_table(schema.records.name):
        raise InputError(f"no audit log in {safe_url(chosen)}")
    ensure_schema(engine, schema.COMPONENT, schema.metadata, schema.SCHEMA_VERSION)
    return engine


@audit_app.command("keygen")
def keygen(
    out: Annotated[Path, typer.Option("--out", help="Private key file to create (PEM, mode 0600).")],
    public: Annotated[Path | None, typer.Option(help="Public key file (default: OUT.pub).")] = None,
) -> None:
    """Create an Ed25519 key pair for signing checkpoints; give the public key to whoever verifies."""
    from modelshield.audit import generate_keypair, key_id

    pub_path = public or out.with_name(out.name + ".pub")
    pub = generate_keypair(out, pub_path)
    typer.echo(f"wrote {out} (private, 0600) and {pub_path} (public); key id {key_id(pub)}")


@audit_app.command("verify")
def verify(
    public_key: Annotated[Path, typer.Option("--public-key", help="Ed25519 public key (PEM) that signs checkpoints.")],
    db: DbOption = None,
    witness: Annotated[Path | None, typer.Option(help="Witness file of checkpoints kept outside the database.")] = None,
    expect_seq: Annotated[
        int | None, typer.Option(help="The log had at least this many records when last seen.")
    ] = None,
    expect_root: Annotated[str | None, typer.Option(help="Merkle root (hex) of records 1..--expect-seq.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
) -> None:
    """Walk the hash chain and every signed checkpoint: exit 0 if intact, 1 with the first problem if not."""
    from modelshield.audit import load_public_key, verify_log

    if expect_root is not None and expect_seq is None:
        raise InputError("--expect-root needs --expect-seq (the number of records that root covers)")
    report = verify_log(
        existing_log(db),
        load_public_key(public_key),
        witness=witness,
        expected_seq=expect_seq,
        expected_root=expect_root,
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(report.summary())
        for warning in report.warnings:
            typer.echo(f"warning: {warning}", err=True)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("export")
def export(
    db: DbOption = None,
    fmt: Annotated[str, typer.Option("--format", help="Only 'ocsf' (API Activity, class 6003, JSON lines).")] = "ocsf",
    since: Annotated[int, typer.Option(min=0, help="Export records with seq above this (resume point).")] = 0,
    out: Annotated[Path | None, typer.Option(help="Output file (default: stdout).")] = None,
) -> None:
    """Export audit records as OCSF JSON lines for a SIEM; prints the last seq exported to stderr."""
    from modelshield.audit.ocsf import export_ocsf

    if fmt != "ocsf":
        raise InputError(f"unknown export format {fmt!r} (only: ocsf)")
    engine = existing_log(db)
    if out is None:
        n = export_ocsf(engine, sys.stdout, since)
    else:
        with out.open("w", encoding="utf-8") as f:
            n = export_ocsf(engine, f, since)
    typer.echo(f"exported {n} records after seq {since}" + (f" to {out}" if out else ""), err=True)


@audit_app.command("tail")
def tail(
    db: DbOption = None,
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many of the newest records.")] = 10,
) -> None:
    """Print the newest records: seq, time (UTC), hash prefix, event."""
    import sqlalchemy as sa

    from modelshield.audit import schema

    engine = existing_log(db)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.records).order_by(schema.records.c.seq.desc()).limit(lines)).all()
    for row in reversed(rows):
        when = datetime.fromtimestamp(row.recorded_at / 1e6, UTC).isoformat(timespec="milliseconds")
        typer.echo(f"{row.seq}  {when}  {row.hash[:12]}  {row.event}")


@audit_app.command("checkpoint")
def checkpoint(
    key: Annotated[Path, typer.Option("--key", help="Ed25519 private key (PEM, mode 0600).")],
    db: DbOption = None,
    witness: Annotated[Path | None, typer.Option(help="Also append the checkpoint to this witness file.")] = None,
) -> None:
    """Sign a checkpoint over every record now (e.g. from cron, or before shipping the database elsewhere)."""
    from modelshield.audit import AuditLog, load_private_key

    private = load_private_key(key)
    existing_log(db).dispose()
    with AuditLog.open(db, signing_key=private, witness=witness) as log:
        cp = log.checkpoint()
    typer.echo(f"checkpoint at seq {cp.seq}: root {cp.root}")


def register(app: typer.Typer) -> None:
    """Add `modelshield audit ...`."""
    app.add_typer(audit_app, name="audit", help="Tamper-evident audit log: verify, export to a SIEM, checkpoint.")
