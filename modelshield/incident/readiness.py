"""Forensic readiness: could this deployment prove what happened, if something happened tonight?

Five checks, each a ``Finding`` (``MS-FORENSIC-001`` .. ``005``), after ISO/IEC 27043's readiness processes and
NIST SP 800-86's "collect, preserve, examine": the audit log is append-only (its triggers are in the database);
it is witnessed (signed checkpoints, a recent one, a copy outside the database); the models it serves are
hashed and signed (registry); a retention period is set; and the clocks that date the records are synchronised.
A check that cannot be answered on this host says so (severity medium, value ``None``) rather than guessing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Engine

from modelshield.audit import schema
from modelshield.audit.checkpoint import Checkpoint, read_witness
from modelshield.audit.keys import key_id
from modelshield.core.findings import Finding, Severity

MIN_RETENTION_DAYS = 180  # EU AI Act art. 19 and 26(6): logs of high-risk systems kept at least six months
MAX_CHECKPOINT_AGE_S = 24 * 3600
MAX_CLOCK_SKEW_S = 1.0
_COMMAND_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ClockStatus:
    """What the host's time service says: synchronised True/False, or None when nothing answered."""

    synchronised: bool | None
    source: str
    detail: str
    offset_s: float | None = None


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str] | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=_COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def host_clock_status() -> ClockStatus:
    """Ask timedatectl, then chrony, then ntpd (ntpstat) whether this host's clock is synchronised."""
    tried = []
    done = _run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if done is not None:
        answer = done.stdout.strip()
        if done.returncode == 0 and answer in ("yes", "no"):
            return ClockStatus(answer == "yes", "timedatectl", f"NTPSynchronized={answer}")
        tried.append(
            f"timedatectl: {(done.stderr or done.stdout).strip().splitlines()[0] if (done.stderr or done.stdout).strip() else 'no answer'}"
        )
    done = _run(["chronyc", "-n", "tracking"])
    if done is not None and done.returncode == 0:
        leap = re.search(r"Leap status\s*:\s*(.+)", done.stdout)
        offset = re.search(r"System time\s*:\s*([0-9.]+) seconds (fast|slow)", done.stdout)
        off = float(offset.group(1)) * (1 if offset.group(2) == "fast" else -1) if offset else None
        synced = leap is not None and leap.group(1).strip() == "Normal"
        return ClockStatus(synced, "chronyc", f"leap status {leap.group(1).strip() if leap else 'unknown'}", off)
    if done is not None:
        tried.append("chronyc: no answer from chronyd")
    done = _run(["ntpstat"])
    if done is not None and done.returncode in (0, 1):
        return ClockStatus(done.returncode == 0, "ntpstat", done.stdout.strip().splitlines()[0] if done.stdout else "")
    if done is not None:
        tried.append("ntpstat: state unknown")
    return ClockStatus(None, "none", "; ".join(tried) or "no timedatectl, chronyc or ntpstat on this host")


def _database_skew(engine: Engine) -> float | None:
    """Seconds the database server's clock is ahead of this host's; None for SQLite (it has no clock of its own)."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        before = time.time()
        server = float(conn.execute(sa.text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one())
        after = time.time()
    return server - (before + after) / 2


def _sentence(parts: Sequence[str]) -> str:
    text = "; ".join(parts)
    return text[:1].upper() + text[1:]


def _finding(fid: str, title: str, ok: bool | None, severity: Severity, description: str, **kw: Any) -> Finding:
    """A readiness finding: ``value`` 1 when the property holds, 0 when not, None when it could not be told."""
    return Finding(
        id=fid,
        title=title,
        description=description,
        metric="holds",
        value=None if ok is None else float(ok),
        threshold=1.0,
        severity=Severity.info if ok else severity,
        **kw,
    )


def _append_only(engine: Engine) -> Finding:
    with engine.connect() as conn:
        guarded = schema.guards_present(conn)
    where = "PostgreSQL" if engine.dialect.name == "postgresql" else "SQLite"
    return _finding(
        "MS-FORENSIC-001",
        "Audit log is append-only in the database",
        guarded,
        Severity.high,
        f"The {where} triggers that refuse UPDATE and DELETE of audit records and checkpoints are "
        + ("installed." if guarded else "missing or disabled: someone removed them, or the tables were made by hand."),
        remediation=""
        if guarded
        else "Reinstall them (open the log with modelshield.audit.AuditLog once more after "
        "restoring the schema) and find out who dropped them; verify the log: modelshield audit verify.",
        evidence={"backend": engine.dialect.name, "triggers_present": guarded},
    )


def _witnessed(
    engine: Engine, public_key: Ed25519PublicKey | None, witness: Path | None, worm_checkpoints: int | None
) -> Finding:
    with engine.connect() as conn:
        log_id = conn.execute(sa.select(schema.meta.c.value).where(schema.meta.c.key == "log_id")).scalar()
        rows = conn.execute(sa.select(schema.checkpoints).order_by(schema.checkpoints.c.seq)).all()
        head = conn.execute(sa.select(sa.func.max(schema.records.c.seq))).scalar() or 0
    cps = [Checkpoint(log_id or "", r.seq, r.created_at, r.root, r.key_id, r.signature) for r in rows]
    evidence: dict[str, Any] = {"records": head, "checkpoints": len(cps), "witness_cosignature": "not supported"}
    problems = []
    if not cps:
        problems.append("no signed checkpoints (configure audit.signing_key_file)")
    else:
        latest = cps[-1]
        age = time.time() - latest.created_at / 1e6
        evidence.update(
            latest_checkpoint_seq=latest.seq, latest_checkpoint_age_s=round(age), unanchored=head - latest.seq
        )
        if age > MAX_CHECKPOINT_AGE_S and head > latest.seq:
            problems.append(
                f"the latest checkpoint is {age / 3600:.0f} h old with {head - latest.seq} records after it"
            )
        if public_key is not None:
            bad = [cp.seq for cp in cps if cp.key_id != key_id(public_key) or not cp.signature_valid(public_key)]
            evidence["signatures_checked"] = len(cps)
            if bad:
                problems.append(
                    f"{len(bad)} checkpoints do not verify with the given public key (first at seq {bad[0]})"
                )
    if witness is not None:
        if not witness.is_file():
            problems.append(f"the witness file {witness} does not exist")
        else:
            seen = {cp.seq: cp for cp in read_witness(witness).checkpoints}
            evidence["witness_file_checkpoints"] = len(seen)
            missing = [cp.seq for cp in cps if cp.seq not in seen]
            if missing:
                problems.append(f"{len(missing)} checkpoints are not in the witness file (first at seq {missing[0]})")
    if worm_checkpoints is not None:
        evidence["worm_checkpoints"] = worm_checkpoints
        if worm_checkpoints < len(cps):
            problems.append(f"{len(cps) - worm_checkpoints} checkpoints are not yet in the WORM bucket")
    if witness is None and worm_checkpoints is None:
        problems.append("no copy of the checkpoints outside the database (no witness file, no WORM bucket)")
    ok = not problems
    return _finding(
        "MS-FORENSIC-002",
        "Audit log is witnessed",
        ok,
        Severity.high if not cps else Severity.medium,
        ("Signed checkpoints exist and are copied outside the database. " if ok else _sentence(problems) + ". ")
        + "modelshield signs its own checkpoints and mirrors them to a witness file or WORM storage; it does not "
        "collect third-party witness cosignatures.",
        remediation=""
        if ok
        else "Set audit.signing_key_file and audit.witness_file in the gateway config, and "
        "copy checkpoints to object-locked storage: modelshield incident worm put.",
        evidence=evidence,
    )


def _artefacts(engine: Engine) -> Finding:
    from modelshield.registry.store import versions

    if not sa.inspect(engine).has_table(versions.name):
        return _finding(
            "MS-FORENSIC-003",
            "Served artefacts are hashed and signed",
            None,
            Severity.medium,
            "No model registry in this database: which model answered which request cannot be tied to a digest.",
            remediation="Register models with their signatures: modelshield registry register --public-key ...",
        )
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(versions.c.name, versions.c.version, versions.c.status, versions.c.signature_path)
        ).all()
    live = [r for r in rows if r.status in ("registered", "staged", "production")]
    unsigned = [f"{r.name}:{r.version}" for r in live if not r.signature_path]
    ok = bool(live) and not unsigned
    return _finding(
        "MS-FORENSIC-003",
        "Served artefacts are hashed and signed",
        ok if live else None,
        Severity.high if any(r.status == "production" and not r.signature_path for r in live) else Severity.medium,
        f"{len(live)} live model versions, all with a SHA-256 digest; "
        + (f"{len(unsigned)} without a signature: {', '.join(unsigned[:10])}." if unsigned else "every one signed.")
        if live
        else "The registry holds no live model versions.",
        remediation="" if ok else "Sign each model (modelshield sign) and register it with --public-key.",
        evidence={"live_versions": len(live), "unsigned": unsigned},
    )


def _retention(retention_days: int | None, worm_retention_days: int | None) -> Finding:
    days = max((d for d in (retention_days, worm_retention_days) if d is not None), default=None)
    ok = days is not None and days >= MIN_RETENTION_DAYS
    where = "WORM bucket default retention" if worm_retention_days == days and days is not None else "configured"
    return _finding(
        "MS-FORENSIC-004",
        "A retention period is set for audit evidence",
        ok,
        Severity.medium,
        (f"Audit evidence is kept {days} days ({where})" if days is not None else "No retention period is set")
        + f"; logs of high-risk AI systems are to be kept at least {MIN_RETENTION_DAYS} days (EU AI Act art. 19).",
        remediation=""
        if ok
        else f"Set a retention of at least {MIN_RETENTION_DAYS} days (--retention-days, or a WORM "
        "bucket's default Object Lock retention).",
        evidence={"retention_days": retention_days, "worm_retention_days": worm_retention_days},
    )


def _clocks(engine: Engine, status: ClockStatus) -> Finding:
    skew = _database_skew(engine)
    with engine.connect() as conn:
        newest = conn.execute(sa.select(sa.func.max(schema.records.c.recorded_at))).scalar()
    ahead = None if newest is None else newest / 1e6 - time.time()
    evidence: dict[str, Any] = {"source": status.source, "detail": status.detail, "offset_s": status.offset_s}
    evidence.update(
        database_skew_s=None if skew is None else round(skew, 3), newest_record_ahead_s=ahead and round(ahead, 3)
    )
    problems = []
    if status.synchronised is False:
        problems.append(f"{status.source} says this host's clock is not synchronised ({status.detail})")
    if skew is not None and abs(skew) > MAX_CLOCK_SKEW_S:
        problems.append(f"the database server's clock is {skew:+.1f} s from this host's")
    if ahead is not None and ahead > MAX_CLOCK_SKEW_S:
        problems.append(f"the newest audit record is dated {ahead:.1f} s in the future (a clock stepped back)")
    if problems:
        ok: bool | None = False
        text = _sentence(problems) + "."
    elif status.synchronised is None:
        ok = None
        text = f"Unknown: no time service answered on this host ({status.detail})" + (
            f"; the database server's clock agrees within {abs(skew):.3f} s." if skew is not None else "."
        )
    else:
        ok = True
        text = f"{status.source}: {status.detail}" + (
            f"; database clock within {abs(skew):.3f} s." if skew is not None else "."
        )
    return _finding(
        "MS-FORENSIC-005",
        "Clocks that date the records are synchronised",
        ok,
        Severity.medium,
        text,
        remediation=""
        if ok
        else "Run chrony or systemd-timesyncd on the gateway and database hosts against the same "
        "NTP servers; record times are only as good as the clock.",
        evidence=evidence,
    )


def readiness_findings(
    engine: Engine,
    *,
    public_key: Ed25519PublicKey | None = None,
    witness: Path | None = None,
    retention_days: int | None = None,
    worm_retention_days: int | None = None,
    worm_checkpoints: int | None = None,
    clock: ClockStatus | None = None,
) -> list[Finding]:
    """The five readiness findings for the audit log in ``engine`` (``clock``: the host's, asked when not given)."""
    return [
        _append_only(engine),
        _witnessed(engine, public_key, witness, worm_checkpoints),
        _artefacts(engine),
        _retention(retention_days, worm_retention_days),
        _clocks(engine, clock or host_clock_status()),
    ]


def render_markdown(findings: Sequence[Finding]) -> str:
    """A Markdown table and one paragraph per finding, for a ticket or an audit file."""
    mark = {1.0: "yes", 0.0: "**no**", None: "unknown"}
    lines = ["# Forensic readiness", "", "| Check | Holds | Severity |", "|---|---|---|"]
    lines += [f"| {f.id} {f.title} | {mark[f.value]} | {f.severity.value} |" for f in findings]
    for f in findings:
        lines += ["", f"## {f.id}: {f.title}", "", f.description]
        if f.remediation:
            lines += ["", f"Remediation: {f.remediation}"]
    return "\n".join(lines) + "\n"
