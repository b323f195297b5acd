"""WORM audit storage against moto's S3 server on loopback: locked versions cannot be deleted or replaced, and
the locked copy exposes an edit or deletion in the database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelshield.audit import AuditLog
from modelshield.core.errors import IntegrityError
from modelshield.core.storage import open_engine
from modelshield.incident.worm import WormStore, archive_log, verify_worm

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")
from botocore.exceptions import ClientError  # noqa: E402

if TYPE_CHECKING:
    from conftest import RunMain

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, as a real HTTP endpoint."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        **{"aws_access_key_id": "testing", "aws_secret_access_key": "testing"},
    )


def _store(s3: Any, name: str, **kw: Any) -> WormStore:
    store = WormStore(s3, name, retain_days=1, **kw)
    store.create_bucket()
    return store


def test_a_locked_version_cannot_be_deleted_or_replaced(s3: Any) -> None:
    store = _store(s3, "ms-worm-compliance")
    obj = store.put("evidence/one.json", b'{"a":1}')
    assert obj.mode == "COMPLIANCE" and obj.retain_until is not None and not obj.legal_hold
    for bypass in ({}, {"BypassGovernanceRetention": True}):
        with pytest.raises(ClientError, match="AccessDenied"):
            s3.delete_object(Bucket=store.bucket, Key=obj.key, VersionId=obj.version_id, **bypass)
    with pytest.raises(IntegrityError, match="already stored with different content"):
        store.put(obj.key, b'{"a":2}')
    assert store.put(obj.key, b'{"a":1}') == obj  # the same evidence again: kept as it is
    s3.put_object(Bucket=store.bucket, Key=obj.key, Body=b"overwritten")  # bypassing modelshield: a new version
    assert store.read(obj.key, obj.version_id) == b'{"a":1}'
    s3.delete_object(Bucket=store.bucket, Key=obj.key)  # a delete marker hides it, the locked version stays
    assert store.read(obj.key, obj.version_id) == b'{"a":1}'


def test_governance_mode_yields_to_bypass_but_a_legal_hold_does_not(s3: Any) -> None:
    store = _store(s3, "ms-worm-governance", mode="GOVERNANCE")
    obj = store.put("g.json", b"g")
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=store.bucket, Key=obj.key, VersionId=obj.version_id)
    s3.delete_object(Bucket=store.bucket, Key=obj.key, VersionId=obj.version_id, BypassGovernanceRetention=True)
    held = WormStore(s3, store.bucket, mode="GOVERNANCE", retain_days=1, legal_hold=True).put("h.json", b"h")
    assert held.legal_hold
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=store.bucket, Key=held.key, VersionId=held.version_id, BypassGovernanceRetention=True)


def test_archived_log_verifies_and_exposes_a_rewrite_in_the_database(s3: Any, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with AuditLog.open(url, signing_key=key, checkpoint_every=20, durability="process") as log:
        for i in range(50):
            log.append({"action": "predict", "decision": "allow", "n": i})
        log.checkpoint()
    engine = open_engine(url)
    store = _store(s3, "ms-worm-archive")
    written = archive_log(engine, store)
    assert len(written) == 6  # checkpoints at 20, 40, 50, each after its segment
    assert archive_log(engine, store) == []  # nothing new
    report = verify_worm(engine, store, key.public_key())
    assert report.ok and (report.checkpoints, report.records) == (3, 50), report.problems
    with engine.begin() as conn:  # an insider drops the guards and rewrites a record
        conn.exec_driver_sql("DROP TRIGGER audit_records_no_update")
        conn.exec_driver_sql("UPDATE audit_records SET hash = '00' || substr(hash, 3) WHERE seq = 7")
    report = verify_worm(engine, store, key.public_key())
    assert report.problems == ["record 7 is different in the database (the locked copy holds the original)"]
    assert not verify_worm(engine, store, Ed25519PrivateKey.generate().public_key()).ok
    engine.dispose()


def test_worm_cli_put_then_verify(
    endpoint: str, tmp_path: Path, run_main: RunMain, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    from modelshield.audit import generate_keypair, load_private_key

    generate_keypair(tmp_path / "k", tmp_path / "k.pub")
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with AuditLog.open(url, signing_key=load_private_key(tmp_path / "k"), checkpoint_every=5) as log:
        for i in range(12):
            log.append({"action": "predict", "n": i})
        log.checkpoint()
    where = ["--audit-db", url, "--bucket", "ms-worm-cli", "--endpoint-url", endpoint]
    code, out, err = run_main("incident", "worm", "put", *where, "--create-bucket", "--retain-days", "2")
    assert code == 0 and "locked 6 objects" in out, err
    code, out, err = run_main("incident", "worm", "verify", *where, "--public-key", str(tmp_path / "k.pub"))
    assert code == 0 and out.startswith("intact: 3 locked checkpoints and 12 locked records"), err
    code, out, err = run_main(
        "incident", "readiness", *where[:2], "--worm-bucket", "ms-worm-cli", *where[4:], "--format", "json"
    )
    assert code == 0, err
    witnessed = next(f for f in json.loads(out) if f["id"] == "MS-FORENSIC-002")
    assert witnessed["value"] == 1.0 and witnessed["evidence"]["worm_checkpoints"] == 3
