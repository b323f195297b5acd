"""``modelshield incident``: evidence bundles that verify offline.

``incident verify`` exits 0 when every check passes, 1 when the bundle is refused (the failed check and why on
stdout), 2 on bad input (a missing file, a key that is not Ed25519).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from modelshield.incident.drill import DrillResult
    from modelshield.incident.playbooks import EvidenceSource, Playbook
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


# -- playbooks, runs and drills ----------------------------------------------------------------------------------


@incident_app.command("playbooks")
def playbooks(
    files: Annotated[list[Path], typer.Argument(help="Playbook files to check (default: list the shipped ones).")] = [],  # noqa: B006
) -> None:
    """List the shipped incident playbooks, or check playbook files (exit 2 naming the first problem)."""
    from modelshield.incident.playbooks import builtin_playbooks, escalation, load_playbook

    books = [load_playbook(f) for f in files] if files else list(builtin_playbooks().values())
    for book in books:
        esc = escalation(book.severity)
        typer.echo(
            f"{book.name}: {book.title} — severity {book.severity.value} (notify {', '.join(esc.notify)} within "
            f"{esc.within_minutes} min); trigger {', '.join(book.trigger.actions)}"
            + (f" [{', '.join(book.trigger.decisions)}]" if book.trigger.decisions else "")
            + f" x{book.trigger.count}"
        )
        for i, step in enumerate(book.steps, 1):
            needs = f" (needs {step.approval} approval)" if step.approval else ""
            typer.echo(f"  {i}. {step.action}: {step.name}{needs}")
        typer.echo(f"  contained when: {', '.join(c.check for c in book.contain)}")


def _approvals(approve: list[str]) -> dict[str, str]:
    """``--approve ROLE`` (approved by the local user) or ``--approve ROLE=NAME``."""
    import getpass

    from modelshield.incident.playbooks import roles

    known, out = roles(), {}
    for item in approve:
        role, _, who = item.partition("=")
        if role not in known:
            raise InputError(f"--approve {item!r}: {role!r} is not a role ({', '.join(sorted(known))})")
        out[role] = who or getpass.getuser()
    return out


def _channels(routes: Path | None) -> dict[str, Any]:
    from modelshield.monitor.alerts.channels import build_channels
    from modelshield.monitor.alerts.rules import load_rules

    return dict(build_channels(load_rules(routes).routes)) if routes is not None else {}


def _read_key(path: Path, what: str) -> str:
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InputError(f"{what} {path}: {exc.strerror or exc}") from None
    if not key:
        raise InputError(f"{what} {path} is empty")
    return key


def _evidence(audit_db: str | None, key: Path | None, checkpoint_key: Path | None, out: Path) -> EvidenceSource | None:
    from modelshield.audit.keys import load_private_key, load_public_key
    from modelshield.cli.audit import existing_log
    from modelshield.incident.playbooks import EvidenceSource

    if audit_db is None or key is None:
        return None
    return EvidenceSource(
        existing_log(audit_db),
        load_private_key(key),
        out / "evidence",
        checkpoint_key=load_public_key(checkpoint_key) if checkpoint_key else None,
    )


TargetOption = Annotated[str | None, typer.Option("--target", help="The gateway's base URL (http://host:port).")]
AdminKeyOption = Annotated[
    Path | None, typer.Option("--admin-key-file", help="File holding an admin API key of the gateway.")
]
ApproveOption = Annotated[
    list[str],
    typer.Option("--approve", help="Approve the steps that need ROLE (ROLE or ROLE=NAME; repeatable)."),
]
RoutesOption = Annotated[
    Path | None, typer.Option("--routes", help="Alert rules file whose routes get the notifications.")
]
EvidenceKeyOption = Annotated[
    Path | None, typer.Option("--evidence-key", help="Ed25519 private key that signs evidence bundles.")
]
CheckpointKeyOption = Annotated[
    Path | None,
    typer.Option("--checkpoint-key", help="Public key of the log's checkpoints (default: the evidence key's)."),
]


@incident_app.command("run")
def run(
    playbook: Annotated[str, typer.Argument(help="A shipped playbook's name or a playbook file.")],
    target: TargetOption = None,
    admin_key_file: AdminKeyOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what each step would call; call nothing.")] = False,
    approve: ApproveOption = [],  # noqa: B006
    subject: Annotated[str | None, typer.Option("--subject", help="The identity the incident is about.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="The model the incident is about.")] = None,
    version: Annotated[str | None, typer.Option("--version", help="The model version it is about.")] = None,
    incident_id: Annotated[str | None, typer.Option("--incident", help="Incident id (default: a new one).")] = None,
    routes: RoutesOption = None,
    audit_db: AuditDbOption = None,
    evidence_key: EvidenceKeyOption = None,
    checkpoint_key: CheckpointKeyOption = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for evidence bundles and rotated keys.")] = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """Run a playbook against a gateway now: each step through its admin API, each recorded in its audit log.

    Exits 0 when every step succeeded, 1 when one failed or waits for an approval, 2 on bad input."""
    import secrets

    from modelshield.incident.playbooks import AdminClient, Incident, PlaybookRunner, find_playbook

    book = find_playbook(playbook)
    incident = Incident(
        incident_id or f"inc-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}",
        book.name,
        subject=subject,
        model=model,
        version=version,
        detected_at=datetime.now(UTC).timestamp(),
    )
    client = None
    if not dry_run:
        if target is None or admin_key_file is None:
            raise InputError("give --target URL and --admin-key-file (or --dry-run)")
        client = AdminClient(target, _read_key(admin_key_file, "--admin-key-file"))
    runner = PlaybookRunner(
        client,
        approvals=_approvals(approve),
        channels=_channels(routes),
        evidence=_evidence(audit_db, evidence_key, checkpoint_key, out),
        out=out,
    )
    try:
        report = runner.run(book, incident, dry_run=dry_run)
    finally:
        if client is not None:
            client.close()
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        esc = report.escalation
        typer.echo(
            f"incident {incident.id}: {book.title} (severity {report.severity}: notify {', '.join(esc.notify)} "
            f"within {esc.within_minutes} min)"
        )
        for step in report.steps:
            needs = f"; needs {step.detail['needs_approval']} approval" if "needs_approval" in step.detail else ""
            typer.echo(f"  [{step.status}{needs}] {step.name}: {step.call}")
            if "error" in step.detail:
                typer.echo(f"      {step.detail['error']}")
        if report.awaiting_approval:
            typer.echo(
                f"waiting for {report.awaiting_approval} approval: rerun with --approve {report.awaiting_approval}"
            )
    if not report.ok:
        raise typer.Exit(1)


#: the attack that starts each shipped playbook's drill on the demo gateway, in the order ``drill all`` runs them
DRILL_ATTACKS = {
    "poisoning-detected": "backdoor-inputs",
    "model-theft": "extraction",
    "adversarial-campaign": "evasion",
    "data-leak": "scrape",
    "compromised-credentials": "stolen-key",
}


@incident_app.command("drill")
def drill(
    playbooks_: Annotated[
        list[str],
        typer.Argument(metavar="PLAYBOOK...", help="Shipped playbook names or files ('all': every shipped one)."),
    ],
    demo: Annotated[bool, typer.Option("--demo", help="Start the demo gateway and drill against it.")] = False,
    target: TargetOption = None,
    admin_key_file: AdminKeyOption = None,
    attacker_key_file: Annotated[
        Path | None, typer.Option("--attacker-key-file", help="--target: a predictor key the drill attacks with.")
    ] = None,
    model: Annotated[str, typer.Option("--model", help="--target: the served model to attack.")] = "demo",
    attack: Annotated[
        str | None, typer.Option("--attack", help=f"The trigger: {', '.join(sorted(set(DRILL_ATTACKS.values())))}.")
    ] = None,
    routes: RoutesOption = None,
    audit_db: AuditDbOption = None,
    evidence_key: EvidenceKeyOption = None,
    checkpoint_key: CheckpointKeyOption = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="--demo: state folder (default: $MODELSHIELD_HOME/incident-drill).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for drill.json, drill.md and evidence.")] = Path("."),
) -> None:
    """Drill a playbook: run its attack against a live gateway, detect it in the audit log, run the playbook,
    check containment; report time to detect and time to contain (drill.json, drill.md).

    Steps that need an approval are approved as 'drill' (recorded). Exits 0 when every drill was detected,
    contained and fully audited, 1 otherwise, 2 on bad input."""
    from modelshield.incident.drill import render_markdown
    from modelshield.incident.playbooks import builtin_playbooks, find_playbook

    shipped = builtin_playbooks()
    names = sorted(shipped, key=lambda n: list(DRILL_ATTACKS).index(n)) if playbooks_ == ["all"] else playbooks_
    books = [find_playbook(n) for n in names]
    chosen = []
    for book in books:
        name = attack or DRILL_ATTACKS.get(book.name)
        if name not in DRILL_ATTACK_NAMES:
            raise InputError(f"{book.name}: give --attack ({', '.join(DRILL_ATTACK_NAMES)})")
        chosen.append((book, name))
    if demo == (target is not None):
        raise InputError("give --demo or --target URL (one of them)")
    if demo:
        from modelshield.core.storage import data_home

        results = _drill_demo(chosen, state_dir or data_home() / "incident-drill", out)
    else:
        if admin_key_file is None or attacker_key_file is None or audit_db is None:
            raise InputError("--target needs --admin-key-file, --attacker-key-file and --audit-db")
        assert target is not None
        setup = _DrillSetup(
            url=target.rstrip("/"),
            model=model,
            admin_key=_read_key(admin_key_file, "--admin-key-file"),
            audit_db=audit_db,
            channels=_channels(routes),
            evidence=_evidence(audit_db, evidence_key, checkpoint_key, out),
            out=out,
        )
        key = _read_key(attacker_key_file, "--attacker-key-file")
        results = [setup.drill(book, name, None, key) for book, name in chosen]
    out.mkdir(parents=True, exist_ok=True)
    (out / "drill.json").write_text(json.dumps([r.to_dict() for r in results], indent=2) + "\n", encoding="utf-8")
    table = render_markdown(results)
    (out / "drill.md").write_text(table, encoding="utf-8")
    typer.echo(table, nl=False)
    typer.echo(f"wrote {out / 'drill.json'} and {out / 'drill.md'}", err=True)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


DRILL_ATTACK_NAMES = ("extraction", "evasion", "backdoor-inputs", "scrape", "stolen-key")


@dataclass
class _DrillSetup:
    """A live gateway to drill on: its URL, served model, admin key, audit database, routes and evidence key."""

    url: str
    model: str
    admin_key: str
    audit_db: str
    channels: dict[str, Any]
    evidence: EvidenceSource | None
    out: Path

    def drill(self, book: Playbook, attack: str, subject: str | None, key: str) -> DrillResult:
        """One drill of ``book`` with ``attack`` under (``subject``, ``key``)."""
        import httpx

        from modelshield.cli.audit import existing_log
        from modelshield.incident.drill import run_drill
        from modelshield.incident.playbooks import AdminClient, PlaybookRunner, roles

        test = _digits_test()
        body = {"inputs": test.x[:1].tolist()}
        predict_url = f"{self.url}/v1/models/{self.model}/predict"
        headers = {"Authorization": f"Bearer {key}"}

        def predict(_subject: str) -> int:
            return httpx.post(predict_url, json=body, headers=headers, timeout=30).status_code

        client = AdminClient(self.url, self.admin_key)
        engine = existing_log(self.audit_db)
        runner = PlaybookRunner(
            client,
            approvals=dict.fromkeys(roles(), "drill"),
            channels=self.channels,
            evidence=self.evidence,
            out=self.out,
        )

        def current_version(model: str) -> str | None:
            return client.request("GET", "/v1/admin/controls")["models"].get(model, {}).get("version")

        typer.echo(f"drill {book.name}: {attack} under {subject or 'the attacker key'} ...", err=True)
        try:
            return run_drill(
                book,
                engine=engine,
                client=client,
                runner=runner,
                trigger=lambda: _ATTACKS[attack](self, subject or "attacker", key),
                attack=attack,
                predict=predict,
                subject=None if attack == "backdoor-inputs" else subject,
                current_version=current_version,
            )
        finally:
            client.close()
            engine.dispose()


def _digits_test() -> Any:
    from modelshield.core.datasets import sklearn_dataset

    return sklearn_dataset("digits", "test", seed=0)


def _victim(setup: _DrillSetup, key: str, batch_size: int) -> Any:
    from modelshield.core.adapters import RemoteModel
    from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES

    return RemoteModel(
        f"{setup.url}/v1/models/{setup.model}/predict",
        input_shape=DEMO_INPUT_SHAPE,
        num_classes=DEMO_NUM_CLASSES,
        bounds=(0.0, 1.0),
        headers={"Authorization": f"Bearer {key}"},
        batch_size=batch_size,
        output="probabilities",
    )


def _red_team(name: str, budget: int) -> Callable[[_DrillSetup, str, str], None]:
    """A red-team campaign attack (``modelshield.redteam``) as a drill trigger."""

    def attack(setup: _DrillSetup, subject: str, key: str) -> None:
        import torch

        from modelshield.redteam import CampaignPlan, Target, run_attack

        test = _digits_test()
        x, y = test.x, test.y
        seeds = torch.cat([torch.nonzero(y == c).flatten()[-10:] for c in range(10)])
        target = Target(
            url=setup.url,
            input_shape=tuple(x.shape[1:]),
            num_classes=10,
            attack_x=x[:5],
            attack_y=y[:5],
            members=x[:0],
            members_y=y[:0],
            non_members=x[:0],
            non_members_y=y[:0],
            seed_x=x[seeds],
            eval_x=x[100:200],
            eval_y=y[100:200],
            eval_labels=y[100:200],  # fidelity is not what a drill measures: no extra queries before the attack
            bounds=test.bounds,
        )
        plan = CampaignPlan(budget=budget, evasion_samples=5, batch_size=32)
        run_attack(name, target, plan, subject=subject, model_factory=lambda: _victim(setup, key, 32))

    return attack


def _scrape(setup: _DrillSetup, subject: str, key: str) -> None:
    """One-row queries from 16 threads as fast as the gateway answers, until the caller's rate limit has refused
    five of them (score scraping, membership probing): at most 2,000 requests."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    rows = _digits_test().x[:400].tolist()
    url = f"{setup.url}/v1/models/{setup.model}/predict"
    refused = 0
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:

        def one(i: int) -> int:
            return 0 if refused >= 5 else http.post(url, json={"inputs": [rows[i % len(rows)]]}).status_code

        with ThreadPoolExecutor(16) as pool:
            for status in pool.map(one, range(2000)):
                refused += status == 429
    if refused == 0:
        raise InputError("the scrape never met the rate limit (2,000 requests)")


def _stolen_key(setup: _DrillSetup, subject: str, key: str) -> None:
    """A stolen predictor key exploring the admin endpoints it may not use."""
    import httpx

    with httpx.Client(base_url=setup.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        for path in ("/v1/admin/routes", "/v1/admin/registry", "/v1/admin/audit/verify", "/v1/admin/controls"):
            http.get(path)
            time.sleep(0.1)


def _backdoor_inputs(setup: _DrillSetup, subject: str, key: str) -> None:
    """Digits stamped with a 3x3 trigger patch (a BadNets-style backdoor's trigger) sent in batches of 25: what
    traffic to a poisoned model looks like when its trigger is in use; the live monitor sees the inputs drift."""
    import httpx

    x = _digits_test().x[:400].clone()
    x[:, :, -3:, -3:] = 1.0
    url = f"{setup.url}/v1/models/{setup.model}/predict"
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        for i in range(0, len(x), 25):
            http.post(url, json={"inputs": x[i : i + 25].tolist()})
            time.sleep(0.05)


_ATTACKS: dict[str, Callable[[_DrillSetup, str, str], None]] = {
    "extraction": _red_team("jacobian", 400),
    "evasion": _red_team("square", 300),
    "scrape": _scrape,
    "stolen-key": _stolen_key,
    "backdoor-inputs": _backdoor_inputs,
}


def _drill_demo(chosen: list[tuple[Playbook, str]], state: Path, out: Path) -> list[DrillResult]:
    """Each drill on a fresh demo gateway (what one drill contains — a quarantined version, a strict guard — must
    not be the next drill's starting point), each attack under its own new key; one audit log throughout."""
    import secrets

    from modelshield.audit.keys import load_private_key
    from modelshield.cli.audit import existing_log
    from modelshield.incident.playbooks import EvidenceSource
    from modelshield.monitor.alerts.channels import build_channels
    from modelshield.monitor.alerts.loopback import WebhookReceiver
    from modelshield.monitor.alerts.rules import WebhookRoute
    from modelshield.serve.apikeys import ApiKeyStore

    receiver = WebhookReceiver()
    channels = dict(build_channels({"oncall": WebhookRoute(type="webhook", url=receiver.url)}))
    results, run = [], secrets.token_hex(3)
    try:
        for book, attack in chosen:
            with demo_gateway(state) as (url, db_url, admin_key):
                evidence = EvidenceSource(
                    existing_log(db_url), load_private_key(state / "audit-signing.pem"), out / "evidence"
                )
                setup = _DrillSetup(url, "demo", admin_key, db_url, channels, evidence, out)
                subject = f"drill-{book.name}-{run}"
                store = ApiKeyStore.open(db_url)
                try:
                    issued = store.create(subject, ["predictor"], expires_in=3600, attributes={"clearance": "internal"})
                finally:
                    store.close()
                try:
                    results.append(setup.drill(book, attack, subject, issued.plaintext))
                finally:
                    evidence.engine.dispose()
    finally:
        receiver.close()
    return results


@contextmanager
def demo_gateway(state: Path) -> Iterator[tuple[str, str, str]]:
    """The demo gateway (``modelshield serve --demo``'s config) in a child process on a free loopback port:
    yields (base URL, audit database URL, admin key)."""
    from modelshield.cli.serve import free_port, gateway_process, prepare_demo

    port = free_port()
    config, _, admin_file = prepare_demo(state, "127.0.0.1", port)
    with gateway_process(config, port, state / "drill-gateway.log") as url:
        yield url, f"sqlite:///{state / 'modelshield.db'}", _read_key(admin_file, "admin key")


def register(app: typer.Typer) -> None:
    app.add_typer(incident_app, name="incident")
