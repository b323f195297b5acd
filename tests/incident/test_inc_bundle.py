"""Evidence bundles: a bundle verifies offline, and any edit to it is refused, naming the check that failed."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from safetensors.numpy import save_file

from modelshield.audit import AuditLog, generate_keypair, load_private_key
from modelshield.core.errors import InputError
from modelshield.core.storage import open_engine
from modelshield.incident import build_bundle, verify_bundle
from modelshield.incident.bundle import MANIFEST
from modelshield.integrity.signing import generate_key_pair, sign_model
from modelshield.registry.store import ModelVersion, Registry
from modelshield.serve.masking import Masker


@dataclass
class Evidence:
    url: str
    key: Ed25519PrivateKey
    key_path: Path
    pub_path: Path
    model: ModelVersion
    gateway_log: Path
    config: Path


def _event(i: int) -> dict[str, object]:
    if i % 40 == 7:
        return {
            "action": "security.extraction",
            "decision": "flag",
            "actor": {"subject": f"user{i % 3}"},
            "model": "digits",
        }
    return {"action": "predict", "decision": "allow", "actor": {"subject": f"user{i % 3}"}, "input_digest": f"{i:064x}"}


@pytest.fixture(scope="session")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    """Built once: 240 records, checkpoints every 50, six alerts, a signed model registered at seq 181. Read only."""
    tmp_path = tmp_path_factory.mktemp("evidence")
    key_path, pub_path = tmp_path / "audit.key", tmp_path / "audit.pub"
    generate_keypair(key_path, pub_path)
    key = load_private_key(key_path)
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    model_file = tmp_path / "model.safetensors"
    save_file({"w": np.arange(12, dtype=np.float32).reshape(3, 4)}, str(model_file))
    sign_priv, sign_pub = generate_key_pair("ed25519", tmp_path / "sign.pem")
    sign_model(model_file, sign_priv)
    with AuditLog.open(url, signing_key=key, checkpoint_every=50, checkpoint_seconds=3600) as log:
        for i in range(1, 181):
            log.append(_event(i))
        registry = Registry(log.engine, audit=log)  # the log's engine; closing the log disposes it
        mv = registry.register("digits", model_file, owner="ml-team", datasets=["digits:train"], public_key=sign_pub)
        for i in range(181, 240):
            log.append(_event(i))
        log.checkpoint()
    gateway_log = tmp_path / "gateway.log"
    lines = [
        {"time": "2026-12-06T08:00:00Z", "level": "INFO", "message": "predict by alice@example.com", "token": "s3cr3t"},
        {"time": "2026-12-06T08:00:01Z", "level": "WARNING", "message": "extraction signal", "subject": "user1"},
    ]
    gateway_log.write_text("\n".join(json.dumps(x) for x in lines) + "\nplain line Bearer abcdefghijklmnop\n")
    config = tmp_path / "gateway.toml"
    config.write_text('[audit]\nsigning_key_file = "/etc/ms/audit.key"\n# contact: ops@example.com\n')
    return Evidence(url, key, key_path, pub_path, mv, gateway_log, config)


def _build(ev: Evidence, out: Path, **kwargs: object) -> Path:
    engine = open_engine(ev.url)
    try:
        build_bundle(
            engine,
            out,
            ev.key,
            models=[ev.model],
            configs=[ev.config],
            gateway_logs=[ev.gateway_log],
            mask=Masker().mask,
            **kwargs,  # type: ignore[arg-type]
        )
    finally:
        engine.dispose()
    return out


@pytest.fixture(scope="module")
def built(evidence: Evidence, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _build(evidence, tmp_path_factory.mktemp("bundle") / "incident.tar", from_seq=60, to_seq=140).read_bytes()


@pytest.fixture
def bundle(built: bytes, tmp_path: Path) -> Path:
    """A fresh copy of the bundle of records 60..140, for a test to edit."""
    path = tmp_path / "incident.tar"
    path.write_bytes(built)
    return path


def _members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tar:
        return [(info, tar.extractfile(info).read()) for info in tar]  # type: ignore[union-attr]


def _rewrite(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())


def test_round_trip_verifies_offline_and_holds_the_evidence(bundle: Path, evidence: Evidence) -> None:
    report = verify_bundle(bundle, evidence.key.public_key())
    assert report.ok, report.problems
    assert (report.first_seq, report.last_seq, report.records) == (60, 140, 81)
    assert report.checkpoint_seq == 240  # 239 events + the registry's own record
    assert report.alerts == 6 and report.checks["consistency"] == "ok"
    members = dict((info.name, data) for info, data in _members(bundle))
    manifest = json.loads(members[MANIFEST])
    assert manifest["earlier_checkpoint"]["seq"] == 50  # the latest checkpoint before the slice
    model = json.loads(next(v for k, v in members.items() if k.startswith("models/") and k.endswith(".json")))
    assert model["signature_at_build"] == "verified"
    assert model["digest_now"] == evidence.model.digest
    log = next(v for k, v in members.items() if k.startswith("logs/")).decode()
    assert "alice@example.com" not in log and "s3cr3t" not in log and "abcdefghijklmnop" not in log
    assert "[EMAIL]" in log and "[REDACTED]" in log
    config = next(v for k, v in members.items() if k.startswith("configs/")).decode()
    assert "ops@example.com" not in config


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


KINDS = [
    "manifest.json",
    "manifest.sig",
    "audit/checkpoint.json",
    "audit/earlier-checkpoint.json",
    "audit/consistency.json",
    "audit/records.jsonl",
    "audit/alerts.jsonl",
    "models/",
    "configs/",
    "logs/",
]


@pytest.mark.parametrize("name", KINDS)
def test_a_byte_flipped_in_any_member_is_refused(bundle: Path, evidence: Evidence, name: str) -> None:
    members = _members(bundle)
    i = next(i for i, (info, _) in enumerate(members) if info.name.startswith(name))
    info, data = members[i]
    members[i] = (info, _flip(data, len(data) // 2))
    _rewrite(bundle, members)
    report = verify_bundle(bundle, evidence.key.public_key())
    assert not report.ok
    expected = "manifest-signature" if name.startswith("manifest") else "members"
    assert report.problems[0][0] == expected, report.problems


def test_a_byte_flipped_anywhere_in_the_file_is_refused(bundle: Path, evidence: Evidence) -> None:
    data = bundle.read_bytes()
    for at in range(0, len(data), max(1, len(data) // 97)):  # headers, contents, padding and the end blocks
        bundle.write_bytes(_flip(data, at))
        assert not verify_bundle(bundle, evidence.key.public_key()).ok, f"a flip at byte {at} went unnoticed"
    bundle.write_bytes(data[:-512])
    assert not verify_bundle(bundle, evidence.key.public_key()).ok
    bundle.write_bytes(data + bytes(512))
    assert not verify_bundle(bundle, evidence.key.public_key()).ok


def test_removed_added_and_rearranged_members_are_refused(bundle: Path, evidence: Evidence) -> None:
    public = evidence.key.public_key()
    members = _members(bundle)
    _rewrite(bundle, [m for m in members if m[0].name != "audit/alerts.jsonl"])
    assert verify_bundle(bundle, public).problems[0] == (
        "members",
        "member audit/alerts.jsonl listed in the manifest is missing (removed)",
    )
    extra = tarfile.TarInfo("audit/extra.jsonl")
    _rewrite(bundle, [*members, (extra, b"{}\n")])
    assert verify_bundle(bundle, public).problems[0][0] == "members"
    _rewrite(bundle, [*members[:3], members[4], members[3], *members[5:]])
    assert verify_bundle(bundle, public).problems[0][0] == "archive-encoding"


def test_swapped_records_with_a_re_signed_manifest_are_refused(evidence: Evidence, tmp_path: Path) -> None:
    """Even the bundle's own signer cannot reorder the slice: the chain links and the seq order break."""
    bundle = _build(evidence, tmp_path / "b.tar", from_seq=10, to_seq=20)
    from modelshield.incident import bundle as module

    members = [module.Member(info.name, "", data) for info, data in _members(bundle)]
    manifest = json.loads(members[0].data)
    kinds = {e["name"]: e["kind"] for e in manifest["members"]}
    rebuilt = []
    for m in members[2:]:
        data = m.data
        if m.name == "audit/records.jsonl":
            lines = data.splitlines(keepends=True)
            lines[3], lines[4] = lines[4], lines[3]
            data = b"".join(lines)
        rebuilt.append(module.Member(m.name, kinds[m.name], data))
    manifest["members"] = [m.entry() for m in rebuilt]
    body = module._json(manifest)
    sig = module._json(
        {
            "payloadType": module.PAYLOAD_TYPE,
            "keyid": module.key_id(evidence.key.public_key()),
            "sig": module.base64.b64encode(evidence.key.sign(module.pae(module.PAYLOAD_TYPE, body))).decode(),
        }
    )
    mtime = int(module.datetime.fromisoformat(manifest["created_at"]).timestamp())
    with bundle.open("wb") as f:
        module._write_tar(
            f,
            [module.Member(MANIFEST, "manifest", body), module.Member("manifest.sig", "signature", sig), *rebuilt],
            mtime,
        )
    report = verify_bundle(bundle, evidence.key.public_key())
    assert not report.ok and {c for c, _ in report.problems} == {"inclusion"}, report.problems


def test_a_bundle_signed_with_another_key_is_refused(evidence: Evidence, tmp_path: Path) -> None:
    other = Ed25519PrivateKey.generate()
    forged = Ed25519PrivateKey.generate()
    # a forger with their own key cannot pass as the real signer
    with pytest.raises(Exception, match="does not verify with the checkpoint key"):
        _build(evidence, tmp_path / "x.tar", checkpoint_key=forged.public_key())
    bundle = _build(evidence, tmp_path / "o.tar", checkpoint_key=evidence.key.public_key())
    report = verify_bundle(bundle, other.public_key())
    assert report.problems[0][0] == "manifest-signature"
    # the real manifest key, but a checkpoint key the verifier does not trust
    report = verify_bundle(bundle, evidence.key.public_key(), checkpoint_key=forged.public_key())
    assert report.problems[0][0] == "checkpoint-signature"


def test_a_slice_beyond_the_checkpoint_or_logs_without_masking_are_refused(evidence: Evidence, tmp_path: Path) -> None:
    engine = open_engine(evidence.url)
    try:
        with pytest.raises(InputError, match="latest checkpoint covers 1..240"):
            build_bundle(engine, tmp_path / "a.tar", evidence.key, from_seq=200, to_seq=300)
        with pytest.raises(InputError, match="masking"):
            build_bundle(engine, tmp_path / "b.tar", evidence.key, gateway_logs=[evidence.gateway_log])
    finally:
        engine.dispose()


def test_a_time_window_selects_the_records_recorded_in_it(evidence: Evidence, tmp_path: Path) -> None:
    import sqlalchemy as sa

    from modelshield.audit import schema

    engine = open_engine(evidence.url)
    with engine.connect() as conn:
        times = dict(conn.execute(sa.select(schema.records.c.seq, schema.records.c.recorded_at)).all())
    try:
        summary = build_bundle(engine, tmp_path / "t.tar", evidence.key, since_us=times[30], until_us=times[40])
    finally:
        engine.dispose()
    assert (summary.first_seq, summary.last_seq, summary.records) == (30, 40, 11)
    assert verify_bundle(tmp_path / "t.tar", evidence.key.public_key()).ok
