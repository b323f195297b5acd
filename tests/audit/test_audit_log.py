"""AuditLog on SQLite and PostgreSQL: durable numbered appends, group commit under threads, checkpoints, export."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelshield.audit import AuditLog, schema
from modelshield.core.errors import FormatError, InputError
from modelshield.core.storage import open_engine

GATEWAY_EVENT = {
    "action": "predict",
    "actor": {"subject": "alice", "method": "api_key", "tenant": "acme"},
    "model": "digits",
    "model_version": 3,
    "model_digest": "sha256:" + "ab" * 32,
    "decision": "deny",
    "reason": "role predictor missing",
    "status_code": 403,
    "latency_ms": 1.7,
    "input_digest": "cd" * 32,
    "request_id": "req-1",
    "client_ip": "10.0.0.7",
}


def test_append_returns_consecutive_seqs_and_verifies(db_url: str, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    with AuditLog.open(db_url, signing_key=key, checkpoint_every=4, witness=tmp_path / "w") as log:
        seqs = [log.append({"action": "predict", "n": i}) for i in range(10)]
        assert seqs == list(range(1, 11))
        report = log.verify(key.public_key(), witness=tmp_path / "w")
        assert report.ok and report.records == 10 and report.unanchored == 2
    with AuditLog.open(db_url) as log:
        report = log.verify(key.public_key(), witness=tmp_path / "w")
    assert report.ok and report.unanchored == 0
    assert report.latest_checkpoint == 10  # close() signs the tail
    assert [json.loads(line)["seq"] for line in (tmp_path / "w").read_text().splitlines()] == [4, 8, 10]


def test_reopen_continues_the_chain(db_url: str) -> None:
    key = Ed25519PrivateKey.generate()
    with AuditLog.open(db_url, signing_key=key, checkpoint_every=3) as log:
        for i in range(5):
            log.append({"i": i})
    with AuditLog.open(db_url, signing_key=key, checkpoint_every=3) as log:
        assert log.append({"i": 5}) == 6
        assert log.checkpoint().seq == 6
        assert log.verify(key.public_key()).ok


def test_concurrent_appends_lose_nothing_and_keep_the_chain(db_url: str) -> None:
    key = Ed25519PrivateKey.generate()
    results: list[int] = []
    lock = threading.Lock()
    with AuditLog.open(db_url, signing_key=key, checkpoint_every=50) as log:

        def worker(t: int) -> None:
            got = [log.append({"thread": t, "i": i}) for i in range(25)]
            with lock:
                results.extend(got)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # a second writer on the same database, as a second gateway process would be
        with AuditLog.open(db_url, signing_key=key, checkpoint_every=7) as other:
            results.append(other.append({"writer": "second"}))
        results.append(log.append({"writer": "first again"}))
        report = log.verify(key.public_key())
    assert sorted(results) == list(range(1, 16 * 25 + 3))
    assert report.ok and report.records == 402, report.problems


def test_group_commit_batches_concurrent_callers(db_url: str) -> None:
    engine_url = db_url
    with AuditLog.open(engine_url) as log:

        async def many() -> list[int]:
            return await asyncio.gather(*(log.append_async({"i": i}) for i in range(200)))

        seqs = asyncio.run(many())
    assert sorted(seqs) == list(range(1, 201))
    engine = open_engine(engine_url)
    with engine.connect() as conn:
        times = conn.execute(sa.select(sa.func.count(sa.distinct(schema.records.c.recorded_at)))).scalar_one()
    engine.dispose()
    assert times < 100  # records of one batch share their commit time: far fewer commits than appends


def test_append_only_triggers_refuse_update_and_delete(db_url: str) -> None:
    with AuditLog.open(db_url) as log:
        log.append({"i": 1})
        for statement in ("UPDATE audit_records SET event = '{}'", "DELETE FROM audit_records"):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"), log.engine.begin() as conn:
                conn.exec_driver_sql(statement)
        if log.engine.dialect.name == "postgresql":
            with pytest.raises(sa.exc.DBAPIError, match="append-only"), log.engine.begin() as conn:
                conn.exec_driver_sql("TRUNCATE audit_records")


def test_bad_events_are_refused_before_anything_is_written(db_url: str) -> None:
    with AuditLog.open(db_url) as log:
        with pytest.raises(InputError, match="input_digest"):
            log.append({"action": "predict", "inputs": [[1.0, 2.0]]})
        with pytest.raises(InputError):
            log.append({"x": float("nan")})
        assert log.append({"ok": True}) == 1
    with pytest.raises(InputError, match="closed"):
        log.append({"late": True})


def test_newer_schema_is_refused(db_url: str) -> None:
    AuditLog.open(db_url).close()
    engine = open_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE modelshield_schema SET version = 99 WHERE component = 'audit'")
    engine.dispose()
    with pytest.raises(FormatError, match="version 99"):
        AuditLog.open(db_url)


def test_checkpoint_without_a_key_is_refused(db_url: str) -> None:
    with AuditLog.open(db_url) as log, pytest.raises(InputError, match="signing key"):
        log.checkpoint()


def test_timed_checkpoint(db_url: str) -> None:
    key = Ed25519PrivateKey.generate()
    with AuditLog.open(db_url, signing_key=key, checkpoint_every=10_000, checkpoint_seconds=0.2) as log:
        log.append({"i": 1})
        deadline = time.monotonic() + 5
        while log.verify(key.public_key()).latest_checkpoint != 1:
            assert time.monotonic() < deadline, "no timed checkpoint within 5 s"
            time.sleep(0.05)


def test_ocsf_export_maps_gateway_fields(db_url: str) -> None:
    with AuditLog.open(db_url) as log:
        log.append(GATEWAY_EVENT)
        log.append({"action": "registry.promote", "actor": {"subject": "bob"}, "decision": "allow"})
        out = io.StringIO()
        assert log.export_ocsf(out) == 2
        later = io.StringIO()
        assert log.export_ocsf(later, since=1) == 1
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert (first["class_uid"], first["category_uid"], first["type_uid"]) == (6003, 6, 600399)
    assert first["actor"]["user"] == {"uid": "alice", "name": "alice", "org": {"name": "acme"}}
    assert first["api"]["operation"] == "predict" and first["src_endpoint"] == {"ip": "10.0.0.7"}
    assert (first["status"], first["status_id"], first["status_code"]) == ("Failure", 2, "403")
    assert first["metadata"]["product"]["name"] == "modelshield" and isinstance(first["time"], int)
    assert first["unmapped"]["input_digest"] == "cd" * 32 and first["resources"][0]["name"] == "digits"
    assert (second["activity_id"], second["status"]) == (3, "Success")
    assert json.loads(later.getvalue())["metadata"]["sequence"] == 2
