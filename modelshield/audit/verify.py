"""Check an audit log end to end: every record's chain hash, the sequence, every checkpoint's signature and root.

What is detected, for an attacker with full write access to the database (triggers dropped):

- an edited record (event, time, seq or hash), a deleted or inserted record, two records swapped: the record's
  recomputed hash or its link to the previous one breaks, or ``seq`` has a gap;
- any change at all to records covered by a signed checkpoint, even with the whole chain recomputed: the
  Merkle root no longer matches the signed one, and a checkpoint cannot be re-signed without the private key;
- records removed below the latest checkpoint still present (it covers more records than remain);
- a forged, altered or foreign-key checkpoint: its signature does not verify with the given public key;
- with a witness file (or an expected head): the newest checkpoints deleted, the database rolled back to an
  earlier state, or records after a witnessed checkpoint removed.

What is not: records written after the latest checkpoint are protected by the chain alone, so someone who can
write to the database can truncate or rewrite that tail (at most ``checkpoint_every`` records or
``checkpoint_seconds`` of them) and recompute the chain; without a witness or an expected head, deleting the
newest checkpoints together with the records after them looks like an older, intact log. ``verify`` reports
how many records are in that unanchored tail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Engine

from modelshield.audit import schema
from modelshield.audit.checkpoint import Checkpoint, read_witness
from modelshield.audit.keys import key_id
from modelshield.audit.merkle import Frontier
from modelshield.core.errors import MissingFileError

MAX_PROBLEMS = 50


@dataclass
class VerifyReport:
    """The verdict: ``ok`` when nothing was found; ``problems`` in the order the walk met them."""

    records: int = 0
    head_seq: int = 0
    head_hash: str = ""
    checkpoints: int = 0
    latest_checkpoint: int | None = None
    unanchored: int = 0
    witnessed: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)

    def summary(self) -> str:
        """One line: 'intact ...' or the first problem."""
        if self.problems:
            more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            return f"TAMPERED: {self.problems[0]}{more}"
        cp = (
            f"latest signed checkpoint at {self.latest_checkpoint}"
            if self.latest_checkpoint
            else "no signed checkpoint"
        )
        return (
            f"intact: {self.records} records, {self.checkpoints} checkpoints, {cp}, {self.unanchored} records after it"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _checkpoint_rows(engine: Engine) -> tuple[str | None, list[Checkpoint], bool]:
    with engine.connect() as conn:
        log_id = conn.execute(sa.select(schema.meta.c.value).where(schema.meta.c.key == "log_id")).scalar()
        rows = conn.execute(sa.select(schema.checkpoints).order_by(schema.checkpoints.c.seq)).all()
        guarded = schema.guards_present(conn)
    cps = [Checkpoint(log_id or "", r.seq, r.created_at, r.root, r.key_id, r.signature) for r in rows]
    return log_id, cps, guarded


def _check_signatures(report: VerifyReport, cps: list[Checkpoint], public_key: Ed25519PublicKey, where: str) -> None:
    expected_id = key_id(public_key)
    last_time = 0
    for cp in cps:
        if cp.key_id != expected_id:
            report.problem(f"{where} at seq {cp.seq} names key {cp.key_id[:16]}…, not the given public key")
        elif not cp.signature_valid(public_key):
            report.problem(f"{where} at seq {cp.seq}: signature does not verify (forged or altered)")
        if cp.created_at < last_time:
            report.problem(f"{where} at seq {cp.seq} is dated before the checkpoint preceding it")
        last_time = cp.created_at


def _walk(engine: Engine, report: VerifyReport, roots_wanted: set[int]) -> dict[int, str]:
    """Stream the records in seq order, checking each link; return the Merkle root at each wanted size."""
    frontier = Frontier()
    roots: dict[int, str] = {}
    if 0 in roots_wanted:
        roots[0] = frontier.root().hex()
    prev_stored = schema.GENESIS.hex()
    expected = 1
    query = sa.select(schema.records).order_by(schema.records.c.seq)
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=2000).execute(query):
            if row.seq != expected:
                if row.seq > expected:
                    span = f"{expected}" if row.seq == expected + 1 else f"{expected}..{row.seq - 1}"
                    report.problem(f"record {span} missing (deleted): seq jumps from {expected - 1} to {row.seq}")
                else:
                    report.problem(f"record {row.seq} appears again after {expected - 1} (inserted or duplicated)")
                expected = row.seq
            if row.prev_hash != prev_stored:
                report.problem(
                    f"record {row.seq}: its prev_hash does not match record {row.seq - 1}'s hash "
                    "(a record was deleted, inserted or reordered before it)"
                )
            actual = schema.record_hash(
                bytes.fromhex(row.prev_hash), row.seq, row.recorded_at, row.event.encode("utf-8")
            )
            if actual.hex() != row.hash:
                report.problem(f"record {row.seq}: content does not match its hash (edited or moved)")
            frontier.append(actual)
            report.records += 1
            report.head_seq, report.head_hash = row.seq, row.hash
            if frontier.size in roots_wanted:
                roots[frontier.size] = frontier.root().hex()
            prev_stored = row.hash
            expected += 1
    return roots


def _compare_roots(report: VerifyReport, cps: list[Checkpoint], roots: dict[int, str], where: str) -> None:
    for cp in cps:
        if cp.seq not in roots:
            report.problem(
                f"{where} at seq {cp.seq} covers {cp.seq} records but the log has {report.records} "
                "(records removed: truncated)"
            )
        elif roots[cp.seq] != cp.root:
            report.problem(
                f"{where} at seq {cp.seq}: Merkle root of records 1..{cp.seq} differs from the signed "
                "root (records before it were changed, deleted, inserted or reordered)"
            )


def verify_log(
    engine: Engine,
    public_key: Ed25519PublicKey,
    *,
    witness: Path | str | None = None,
    expected_seq: int | None = None,
    expected_root: str | None = None,
) -> VerifyReport:
    """Verify the audit log in ``engine`` against ``public_key``; see the module docstring for what is caught."""
    report = VerifyReport()
    log_id, cps, guarded = _checkpoint_rows(engine)
    if log_id is None:
        report.problem("the log's identity (audit_meta.log_id) is missing")
    witnessed: list[Checkpoint] = []
    if witness is not None:
        wpath = Path(witness)
        if not wpath.is_file():
            raise MissingFileError(f"witness file {wpath} does not exist")
        read = read_witness(wpath)
        # by seq: gateway workers sharing the file append their checkpoints in whatever order their writes land
        witnessed = sorted(read.checkpoints, key=lambda cp: (cp.seq, cp.created_at))
        if read.torn_tail:
            report.warnings.append(
                f"witness file {wpath} ends with a torn line ({read.torn_tail} bytes, an append cut "
                "short by a crash): ignored; the next checkpoint written removes it"
            )
    wanted = {cp.seq for cp in cps} | {cp.seq for cp in witnessed}
    if expected_seq is not None:
        wanted.add(expected_seq)
    _check_signatures(report, cps, public_key, "checkpoint")
    roots = _walk(engine, report, wanted)
    _compare_roots(report, cps, roots, "checkpoint")
    report.checkpoints = len(cps)
    report.latest_checkpoint = cps[-1].seq if cps else None
    report.unanchored = report.head_seq - (cps[-1].seq if cps else 0)
    if witnessed:
        _check_witness(report, witnessed, cps, roots, public_key, log_id)
    if expected_seq is not None:
        if report.head_seq < expected_seq:
            report.problem(f"log truncated: expected at least {expected_seq} records, found {report.head_seq}")
        elif expected_root is not None and roots.get(expected_seq) != expected_root.lower():
            report.problem(f"Merkle root of records 1..{expected_seq} differs from the expected root")
    if not guarded:
        report.warnings.append(
            "append-only triggers are missing or disabled: reinstall them and find out who removed them"
        )
    if report.records and not cps:
        report.warnings.append("no signed checkpoints: the chain alone cannot show a rewrite of the whole log")
    elif report.unanchored > 0:
        report.warnings.append(
            f"{report.unanchored} records after the latest checkpoint are protected by the hash "
            "chain only (tail truncation there is not detectable without a witness)"
        )
    return report


def _check_witness(
    report: VerifyReport,
    witnessed: list[Checkpoint],
    cps: list[Checkpoint],
    roots: dict[int, str],
    public_key: Ed25519PublicKey,
    log_id: str | None,
) -> None:
    """Every checkpoint the witness saw must still be in the database, unchanged, and covered by records."""
    in_db = {cp.seq: cp for cp in cps}
    foreign = [cp for cp in witnessed if cp.log_id != log_id]
    if foreign:
        report.problem(f"the witness file is for log {foreign[0].log_id}, not this database's log {log_id}")
        return
    _check_signatures(report, witnessed, public_key, "witnessed checkpoint")
    _compare_roots(report, witnessed, roots, "witnessed checkpoint")
    for cp in witnessed:
        stored = in_db.get(cp.seq)
        if stored is None:
            report.problem(f"checkpoint at seq {cp.seq} is in the witness file but missing from the database (deleted)")
        elif (stored.root, stored.signature) != (cp.root, cp.signature):
            report.problem(f"checkpoint at seq {cp.seq} differs from the witness file's copy (replaced)")
    report.witnessed = len(witnessed)
