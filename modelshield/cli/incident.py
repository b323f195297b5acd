"""``modelshield incident``: evidence bundles that verify offline.

``incident verify`` exits 0 when every check passes, 1 when the bundle is refused (the failed check and why on
stdout), 2 on bad input (a missing file, a key that is not Ed25519).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from modelshield.registry.store import ModelVersion

incident_app = typer.Typer(
    help="Incident response: signed evidence bundles verified offline, forensic readiness, WORM audit storage.",
    no_args_is_help=True,
)

AuditDbOption = Annotated[
    str | None,
    typer.Option(
        "--audit-db", envvar="MODELSHIELD_DB_URL", help="Audit database URL (default: SQLite in $MODELSHIELD_HOME)."
    ),
]


def _bound(text: str | None, what: str) -> tuple[int | None, int | None]:
    """A --from/--to value: a record seq (an integer) or an ISO-8601 time (UTC unless it says otherwise) in µs."""
    if text is None:
        return None, None
    if text.isdigit():
        return int(text), None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{what} {text!r} is neither a record seq nor an ISO-8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return None, int(when.timestamp() * 1_000_000)


def _models(refs: list[str], url: str | None) -> list[ModelVersion]:
    from modelshield.registry.store import Registry

    if not refs:
        return []
    chosen = []
    with Registry.open(url) as registry:
        for ref in refs:
            name, _, version = ref.partition(":")
            if version and not version.isdigit():
                raise InputError(f"--model {ref!r}: the version after ':' must be a number")
            chosen.append(registry.get(name, int(version) if version else None))
    return chosen


@incident_app.command("bundle")
def bundle(
    out: Annotated[Path, typer.Option("--out", help="Bundle file to write (a tar archive).")],
    audit_db: AuditDbOption = None,
    key: Annotated[Path | None, typer.Option("--key", help="Ed25519 private key (PEM) that signs the bundle.")] = None,
    checkpoint_public_key: Annotated[
        Path | None, typer.Option(help="Public key the log's checkpoints are signed with (default: --key's).")
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="First record: a seq or an ISO-8601 time.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last record: a seq or an ISO-8601 time.")] = None,
    earlier_seq: Annotated[
        int | None, typer.Option(help="Checkpoint to prove consistency from (default: the last before --from).")
    ] = None,
    model: Annotated[list[str], typer.Option("--model", help="Registry model NAME[:VERSION] (repeatable).")] = [],  # noqa: B006
    data: Annotated[list[Path], typer.Option("--data", help="Data file or folder to hash (repeatable).")] = [],  # noqa: B006
    config: Annotated[list[Path], typer.Option("--config", help="Configuration file, masked (repeatable).")] = [],  # noqa: B006
    gateway_log: Annotated[
        list[Path], typer.Option("--gateway-log", help="Gateway log file, masked (repeatable).")
    ] = [],  # noqa: B006
    sign_checkpoint: Annotated[
        bool, typer.Option("--sign-checkpoint", help="First sign a checkpoint over every record with --key.")
    ] = False,
    note: Annotated[str, typer.Option(help="A line for the manifest: ticket number, investigator.")] = "",
    demo: Annotated[bool, typer.Option("--demo", help="Bundle a demo audit log made beside --out.")] = False,
) -> None:
    """Write a signed evidence bundle: audit slice with inclusion proofs, checkpoints, consistency proof, models,
    data digests, masked configs and gateway logs."""
    from modelshield.audit import AuditLog, load_private_key
    from modelshield.audit.keys import load_public_key
    from modelshield.cli.audit import existing_log
    from modelshield.incident import build_bundle
    from modelshield.serve.masking import Masker

    if demo:
        from modelshield.incident.demo import make_demo_evidence

        made = make_demo_evidence(out.parent / f"{out.stem}-demo")
        audit_db, key = made.url, key or made.key
        gateway_log = [*gateway_log, made.gateway_log]
        typer.echo(f"demo audit log {made.url}, key {made.key} (public {made.public_key})", err=True)
    if key is None:
        raise InputError("--key is required (the Ed25519 private key that signs the bundle)")
    private = load_private_key(key)
    if sign_checkpoint:
        existing_log(audit_db).dispose()
        with AuditLog.open(audit_db, signing_key=private) as log:
            log.checkpoint()
    from_seq, since = _bound(start, "--from")
    to_seq, until = _bound(end, "--to")
    engine = existing_log(audit_db)
    try:
        summary = build_bundle(
            engine,
            out,
            private,
            checkpoint_key=load_public_key(checkpoint_public_key) if checkpoint_public_key else None,
            from_seq=from_seq,
            to_seq=to_seq,
            since_us=since,
            until_us=until,
            earlier_seq=earlier_seq,
            models=_models(model, audit_db),
            data=data,
            configs=config,
            gateway_logs=gateway_log,
            mask=Masker().mask,
            note=note,
        )
    finally:
        engine.dispose()
    earlier = f", consistent with checkpoint {summary.earlier_seq}" if summary.earlier_seq else ""
    typer.echo(
        f"wrote {summary.path} ({summary.size:,} bytes, {summary.members} members): records "
        f"{summary.first_seq}..{summary.last_seq} and {summary.alerts} alerts proven against the signed checkpoint "
        f"at seq {summary.checkpoint_seq}{earlier}"
    )


@incident_app.command("verify")
def verify(
    bundle_path: Annotated[Path, typer.Argument(metavar="FILE", help="The bundle (.tar).")],
    public_key: Annotated[Path, typer.Option("--public-key", help="Ed25519 public key (PEM) of the bundle's signer.")],
    checkpoint_public_key: Annotated[
        Path | None, typer.Option(help="Public key of the log's checkpoints (default: --public-key).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
) -> None:
    """Check a bundle offline: exit 0 if every check passes, 1 with the failed check and why if not."""
    from modelshield.audit.keys import load_public_key
    from modelshield.core.errors import MissingFileError
    from modelshield.incident import verify_bundle

    if not bundle_path.is_file():
        raise MissingFileError(f"bundle {bundle_path} does not exist")
    report = verify_bundle(
        bundle_path,
        load_public_key(public_key),
        checkpoint_key=load_public_key(checkpoint_public_key) if checkpoint_public_key else None,
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(report.summary())
        for check, message in report.problems[1:]:
            typer.echo(f"  also [{check}]: {message}")
        for note in report.notes:
            typer.echo(f"note: {note}", err=True)
    if not report.ok:
        raise typer.Exit(1)


class LockMode(str, Enum):
    COMPLIANCE = "COMPLIANCE"
    GOVERNANCE = "GOVERNANCE"


BucketOption = Annotated[str, typer.Option("--bucket", help="S3 bucket with Object Lock enabled.")]
EndpointOption = Annotated[
    str | None,
    typer.Option("--endpoint-url", help="S3-compatible endpoint (default: AWS; credentials from the AWS env)."),
]
PrefixOption = Annotated[str, typer.Option("--prefix", help="Key prefix in the bucket.")]


class ReadinessFormat(str, Enum):
    markdown = "markdown"
    json = "json"


@incident_app.command("readiness")
def readiness(
    audit_db: AuditDbOption = None,
    public_key: Annotated[Path | None, typer.Option("--public-key", help="Check every checkpoint's signature.")] = None,
    witness: Annotated[Path | None, typer.Option(help="The gateway's witness file of checkpoints.")] = None,
    retention_days: Annotated[
        int | None, typer.Option(min=0, help="How long audit evidence is kept (your retention policy).")
    ] = None,
    worm_bucket: Annotated[str | None, typer.Option("--worm-bucket", help="Object Lock bucket of the log.")] = None,
    endpoint_url: EndpointOption = None,
    prefix: PrefixOption = "modelshield/audit",
    fmt: Annotated[ReadinessFormat, typer.Option("--format", help="markdown or json.")] = ReadinessFormat.markdown,
) -> None:
    """Forensic readiness: append-only, witnessed, artefacts signed, retention set, clocks synchronised."""
    from modelshield.audit.keys import load_public_key
    from modelshield.cli.audit import existing_log
    from modelshield.incident.readiness import readiness_findings, render_markdown

    engine = existing_log(audit_db)
    try:
        worm_days = worm_checkpoints = None
        if worm_bucket is not None:
            from modelshield.incident.worm import WormStore, locked_checkpoints, s3_client

            store = WormStore(s3_client(endpoint_url), worm_bucket, prefix=prefix)
            worm_days, worm_checkpoints = store.default_retention_days(), locked_checkpoints(engine, store)
        findings = readiness_findings(
            engine,
            public_key=load_public_key(public_key) if public_key else None,
            witness=witness,
            retention_days=retention_days,
            worm_retention_days=worm_days,
            worm_checkpoints=worm_checkpoints,
        )
    finally:
        engine.dispose()
    if fmt is ReadinessFormat.json:
        typer.echo(json.dumps([f.model_dump(mode="json") for f in findings], indent=2))
    else:
        typer.echo(render_markdown(findings), nl=False)


worm_app = typer.Typer(
    help="WORM audit storage: lock checkpoints and records in an S3 Object Lock bucket, verify them.",
    no_args_is_help=True,
)
incident_app.add_typer(worm_app, name="worm")


@worm_app.command("put")
def worm_put(
    bucket: BucketOption,
    audit_db: AuditDbOption = None,
    endpoint_url: EndpointOption = None,
    prefix: PrefixOption = "modelshield/audit",
    mode: Annotated[LockMode, typer.Option("--mode", help="Object Lock retention mode.")] = LockMode.COMPLIANCE,
    retain_days: Annotated[int, typer.Option("--retain-days", min=1, help="Lock each object this many days.")] = 365,
    legal_hold: Annotated[bool, typer.Option("--legal-hold", help="Also put each object under legal hold.")] = False,
    create_bucket: Annotated[
        bool, typer.Option("--create-bucket", help="Create the bucket with Object Lock enabled first.")
    ] = False,
) -> None:
    """Lock every checkpoint not yet in the bucket, each after the records it covers (run it from cron)."""
    from modelshield.cli.audit import existing_log
    from modelshield.incident.worm import WormStore, archive_log, s3_client

    store = WormStore(
        s3_client(endpoint_url), bucket, prefix=prefix, mode=mode.value, retain_days=retain_days, legal_hold=legal_hold
    )
    if create_bucket:
        store.create_bucket()
    store.lock_configuration()
    engine = existing_log(audit_db)
    try:
        written = archive_log(engine, store)
    finally:
        engine.dispose()
    until = written[-1].retain_until if written else None
    typer.echo(
        f"locked {len(written)} objects in s3://{bucket}/{prefix}" + (f" ({mode.value} until {until})" if until else "")
    )


@worm_app.command("verify")
def worm_verify(
    bucket: BucketOption,
    public_key: Annotated[Path, typer.Option("--public-key", help="Ed25519 public key of the checkpoints.")],
    audit_db: AuditDbOption = None,
    endpoint_url: EndpointOption = None,
    prefix: PrefixOption = "modelshield/audit",
) -> None:
    """Compare the locked copy with the database: exit 0 if they agree, 1 with the first difference if not."""
    from modelshield.audit.keys import load_public_key
    from modelshield.cli.audit import existing_log
    from modelshield.incident.worm import WormStore, s3_client, verify_worm

    key = load_public_key(public_key)
    store = WormStore(s3_client(endpoint_url), bucket, prefix=prefix)
    store.lock_configuration()
    engine = existing_log(audit_db)
    try:
        report = verify_worm(engine, store, key)
    finally:
        engine.dispose()
    typer.echo(report.summary())
    for problem in report.problems[1:]:
        typer.echo(f"  also: {problem}")
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(incident_app, name="incident")
