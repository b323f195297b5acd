"""Forensic readiness on a real SQLite audit log: with its append-only triggers, and after they were dropped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelshield.audit import AuditLog
from modelshield.core.findings import Severity
from modelshield.core.storage import open_engine
from modelshield.incident.readiness import ClockStatus, host_clock_status, readiness_findings, render_markdown

if TYPE_CHECKING:
    from conftest import RunMain

SYNCED = ClockStatus(True, "chronyc", "leap status Normal", 0.0004)


@pytest.fixture
def log_url(tmp_path: Path) -> tuple[str, Ed25519PrivateKey, Path]:
    key = Ed25519PrivateKey.generate()
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    witness = tmp_path / "audit.witness"
    with AuditLog.open(url, signing_key=key, checkpoint_every=10, witness=witness, durability="process") as log:
        for i in range(25):
            log.append({"action": "predict", "decision": "allow", "n": i})
    return url, key, witness


def test_a_guarded_witnessed_log_is_ready_but_unsigned_artefacts_and_retention_are_not(
    log_url: tuple[str, Ed25519PrivateKey, Path],
) -> None:
    url, key, witness = log_url
    engine = open_engine(url)
    findings = {f.id: f for f in readiness_findings(engine, public_key=key.public_key(), witness=witness, clock=SYNCED)}
    engine.dispose()
    assert findings["MS-FORENSIC-001"].value == 1.0 and findings["MS-FORENSIC-001"].severity is Severity.info
    assert findings["MS-FORENSIC-002"].value == 1.0, findings["MS-FORENSIC-002"].description
    assert findings["MS-FORENSIC-002"].evidence["signatures_checked"] == 3
    assert findings["MS-FORENSIC-003"].value is None  # no registry in this database
    assert findings["MS-FORENSIC-004"].value == 0.0 and findings["MS-FORENSIC-004"].severity is Severity.medium
    assert findings["MS-FORENSIC-005"].value == 1.0


def test_dropped_triggers_a_missing_witness_and_a_bad_clock_are_reported(
    log_url: tuple[str, Ed25519PrivateKey, Path],
) -> None:
    url, _, _ = log_url
    engine = open_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER audit_records_no_delete")
    unsynced = ClockStatus(False, "timedatectl", "NTPSynchronized=no")
    other = Ed25519PrivateKey.generate().public_key()
    findings = {f.id: f for f in readiness_findings(engine, public_key=other, retention_days=400, clock=unsynced)}
    engine.dispose()
    assert findings["MS-FORENSIC-001"].value == 0.0 and findings["MS-FORENSIC-001"].severity is Severity.high
    witnessed = findings["MS-FORENSIC-002"]
    assert witnessed.value == 0.0 and "do not verify with the given public key" in witnessed.description
    assert "no copy of the checkpoints outside the database" in witnessed.description
    assert findings["MS-FORENSIC-004"].value == 1.0
    assert findings["MS-FORENSIC-005"].value == 0.0 and "not synchronised" in findings["MS-FORENSIC-005"].description
    markdown = render_markdown(list(findings.values()))
    assert "| MS-FORENSIC-001 Audit log is append-only in the database | **no** | high |" in markdown


def test_this_hosts_clock_is_asked_and_an_unanswered_check_is_unknown(
    log_url: tuple[str, Ed25519PrivateKey, Path], run_main: RunMain
) -> None:
    status = host_clock_status()
    assert status.source in ("timedatectl", "chronyc", "ntpstat", "none")
    code, out, err = run_main("incident", "readiness", "--audit-db", log_url[0], "--format", "json")
    assert code == 0, err
    clock = next(f for f in json.loads(out) if f["id"] == "MS-FORENSIC-005")
    if status.synchronised is None:
        assert clock["value"] is None and clock["description"].startswith("Unknown")
    else:
        assert clock["value"] == float(status.synchronised)


def test_on_postgresql_the_triggers_and_the_server_clock_are_checked() -> None:
    """The local PostgreSQL (127.0.0.1:5432): its append-only triggers, and its clock against this host's."""
    psycopg = pytest.importorskip("psycopg")
    import secrets

    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    try:
        psycopg.connect(admin, connect_timeout=3).close()
    except psycopg.OperationalError:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    name = f"ms_inc_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        with AuditLog.open(url, signing_key=Ed25519PrivateKey.generate(), checkpoint_every=5) as log:
            for i in range(7):
                log.append({"action": "predict", "n": i})
            engine = log.engine
            findings = {f.id: f for f in readiness_findings(engine, clock=SYNCED)}
            assert findings["MS-FORENSIC-001"].value == 1.0
            assert findings["MS-FORENSIC-001"].evidence["backend"] == "postgresql"
            skew = findings["MS-FORENSIC-005"].evidence["database_skew_s"]
            assert skew is not None and abs(skew) < 1.0  # the same machine's clock, seen through the server
            with engine.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE audit_records DISABLE TRIGGER audit_records_no_change")
            assert readiness_findings(engine, clock=SYNCED)[0].value == 0.0
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
