"""An attacker with write access to the database (triggers dropped) edits it; `modelshield audit verify` exits 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from stores import attack
from stores import run_cli as run

from modelshield.audit import AuditLog, generate_keypair, load_private_key, schema
from modelshield.audit.checkpoint import sign
from modelshield.audit.merkle import Frontier


@pytest.fixture
def signed_log(db_url: str, tmp_path: Path) -> tuple[str, Path, Path]:
    """35 records, checkpoints at 10, 20, 30 and (on close) 35, mirrored to a witness file."""
    generate_keypair(tmp_path / "audit.key", tmp_path / "audit.pub")
    witness = tmp_path / "audit.witness"
    with AuditLog.open(
        db_url, signing_key=load_private_key(tmp_path / "audit.key"), checkpoint_every=10, witness=witness
    ) as log:
        for i in range(35):
            log.append({"action": "predict", "decision": "deny" if i % 3 else "allow", "i": i})
    return db_url, tmp_path / "audit.pub", witness


def verify(
    signed_log: tuple[str, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    with_witness: bool = True,
) -> tuple[int, str]:
    url, pub, witness = signed_log
    args = ["audit", "verify", "--db", url, "--public-key", str(pub)] + (["--witness", str(witness)] * with_witness)
    code, out, _ = run(args, monkeypatch, capsys)
    assert len(out.strip().splitlines()) == 1
    return code, out


def test_intact_log_verifies(signed_log, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out = verify(signed_log, monkeypatch, capsys)
    assert code == 0 and out.startswith("intact: 35 records, 4 checkpoints")


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        (["UPDATE audit_records SET event = replace(event, 'deny', 'allow') WHERE seq = 8"], "record 8: content"),
        (["DELETE FROM audit_records WHERE seq = 12"], "record 12 missing"),
        (
            [
                f"UPDATE audit_records SET {c} = CASE seq WHEN 3 THEN (SELECT {c} FROM audit_records WHERE seq = 4) "
                f"ELSE (SELECT {c} FROM audit_records WHERE seq = 3) END WHERE seq IN (3, 4)"
                for c in ("event", "recorded_at", "prev_hash", "hash")
            ],
            "record 3",
        ),
        (["DELETE FROM audit_records WHERE seq > 31"], "truncated"),
        (
            [
                "INSERT INTO audit_records (seq, recorded_at, event, prev_hash, hash) SELECT 36, recorded_at, event, hash, hash "
                "FROM audit_records WHERE seq = 35"
            ],
            "record 36: content",
        ),
        (
            [
                "UPDATE audit_checkpoints SET signature = (SELECT signature FROM audit_checkpoints WHERE seq = 10) "
                "WHERE seq = 20"
            ],
            "checkpoint at seq 20: signature",
        ),
    ],
    ids=["edit", "delete", "swap", "truncate-tail", "insert", "forge-signature"],
)
def test_tampering_is_detected(signed_log, monkeypatch, capsys, statements: list[str], expected: str) -> None:  # type: ignore[no-untyped-def]
    attack(signed_log[0], *statements)
    code, out = verify(signed_log, monkeypatch, capsys, with_witness=False)
    assert code == 1 and out.startswith("TAMPERED: ") and expected in out, out


def test_deleting_the_newest_checkpoint_needs_the_witness(signed_log, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    attack(signed_log[0], "DELETE FROM audit_checkpoints WHERE seq = 35", "DELETE FROM audit_records WHERE seq > 30")
    code, _ = verify(signed_log, monkeypatch, capsys, with_witness=False)
    assert code == 0  # documented limit: a rollback to checkpoint 30 looks like an older intact log...
    code, out = verify(signed_log, monkeypatch, capsys)
    assert code == 1 and "truncated" in out  # ...which the witness file exposes
    attack(signed_log[0], "DELETE FROM audit_checkpoints WHERE seq = 30")
    url, pub, witness = signed_log
    code, out, _ = run(
        ["audit", "verify", "--db", url, "--public-key", str(pub), "--witness", str(witness), "--json"],
        monkeypatch,
        capsys,
    )
    problems = json.loads(out)["problems"]
    assert (
        code == 1 and "checkpoint at seq 30 is in the witness file but missing from the database (deleted)" in problems
    )


def test_expected_head_exposes_rollback_without_a_witness(signed_log, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    url, pub, _ = signed_log
    attack(url, "DELETE FROM audit_checkpoints WHERE seq = 35", "DELETE FROM audit_records WHERE seq > 30")
    code, out, _ = run(
        ["audit", "verify", "--db", url, "--public-key", str(pub), "--expect-seq", "35"], monkeypatch, capsys
    )
    assert code == 1 and "expected at least 35 records" in out


def _rewrite_chain(url: str, key: Ed25519PrivateKey | None) -> None:
    """The strongest attack without the signing key: edit record 5, recompute every hash after it, and (with
    ``key``, the attacker's own) re-sign every checkpoint over the new roots."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.records).order_by(schema.records.c.seq)).all()
        cps = conn.execute(sa.select(schema.checkpoints).order_by(schema.checkpoints.c.seq)).all()
        log_id = conn.execute(sa.select(schema.meta.c.value).where(schema.meta.c.key == "log_id")).scalar_one()
    prev, frontier, statements = schema.GENESIS, Frontier(), []
    roots = {}
    for row in rows:
        event = row.event.replace('"deny"', '"allow"') if row.seq == 5 else row.event
        digest = schema.record_hash(prev, row.seq, row.recorded_at, event.encode())
        frontier.append(digest)
        roots[row.seq] = frontier.root().hex()
        statements.append(
            f"UPDATE audit_records SET event = '{event}', prev_hash = '{prev.hex()}', "
            f"hash = '{digest.hex()}' WHERE seq = {row.seq}"
        )
        prev = digest
    if key is not None:
        for cp in cps:
            forged = sign(key, log_id, cp.seq, roots[cp.seq], cp.created_at)
            statements.append(
                f"UPDATE audit_checkpoints SET root = '{forged.root}', signature = '{forged.signature}' "
                f"WHERE seq = {cp.seq}"
            )
    attack(url, *statements)
    engine.dispose()


def test_recomputed_chain_is_caught_by_the_signed_roots(signed_log, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    _rewrite_chain(signed_log[0], None)
    code, out = verify(signed_log, monkeypatch, capsys, with_witness=False)
    assert code == 1 and "checkpoint at seq 10: Merkle root" in out


def test_resigned_checkpoints_are_caught_by_the_public_key(signed_log, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    _rewrite_chain(signed_log[0], Ed25519PrivateKey.generate())
    code, out = verify(signed_log, monkeypatch, capsys, with_witness=False)
    assert code == 1 and "signature does not verify" in out


def test_cli_export_tail_checkpoint_and_errors(signed_log, monkeypatch, capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, pub, witness = signed_log
    code, _, err = run(
        ["audit", "export", "--db", url, "--format", "ocsf", "--since", "30", "--out", str(tmp_path / "siem.jsonl")],
        monkeypatch,
        capsys,
    )
    lines = (tmp_path / "siem.jsonl").read_text().splitlines()
    assert code == 0 and len(lines) == 5 and json.loads(lines[0])["class_uid"] == 6003 and "exported 5" in err
    code, out, _ = run(["audit", "tail", "--db", url, "-n", "2"], monkeypatch, capsys)
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["34", "35"]
    with AuditLog.open(url) as log:
        log.append({"action": "late"})
    code, out, _ = run(
        ["audit", "checkpoint", "--db", url, "--key", str(tmp_path / "audit.key"), "--witness", str(witness)],
        monkeypatch,
        capsys,
    )
    assert code == 0 and out.startswith("checkpoint at seq 36")
    code, out = verify(signed_log, monkeypatch, capsys)
    assert code == 0 and "latest signed checkpoint at 36, 0 records after it" in out
    code, _, err = run(["audit", "export", "--db", url, "--format", "cef"], monkeypatch, capsys)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    code, _, err = run(
        ["audit", "verify", "--db", f"sqlite:///{tmp_path}/none.db", "--public-key", str(pub)], monkeypatch, capsys
    )
    assert code == 2 and "no audit log" in err and not (tmp_path / "none.db").exists()
    code, _, err = run(["audit", "keygen", "--out", str(tmp_path / "audit.key")], monkeypatch, capsys)
    assert code == 2 and "already exists" in err
