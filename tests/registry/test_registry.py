"""The model registry on SQLite and PostgreSQL: digests, lifecycle, pinning, canaries, quarantine on tamper."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from modelshield.audit import AuditLog
from modelshield.core.errors import InputError, IntegrityError
from modelshield.integrity.provenance import hash_tree
from modelshield.integrity.signing import generate_key_pair, sign_model
from modelshield.registry import Registry


def model_folder(root: Path, seed: int = 0) -> Path:
    folder = root / f"model-{seed}"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "weights.safetensors").write_bytes(os.urandom(4096) + bytes([seed]))
    (folder / "config.json").write_text(json.dumps({"layers": 2, "seed": seed}))
    (folder / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    return folder


@pytest.fixture
def reg(db_url: str):  # type: ignore[no-untyped-def]
    with Registry.open(db_url) as registry:
        yield registry


def test_register_records_digest_owner_datasets(reg: Registry, tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    mv = reg.register("digits-cnn", folder, owner="ml-team", datasets=["sklearn:digits"], metadata={"task": "cls"})
    again = reg.register("digits-cnn", model_folder(tmp_path, 1), owner="ml-team")
    assert (mv.version, again.version) == (1, 2)
    assert mv.digest == hash_tree(folder).digest and mv.status == "registered" and not mv.pinned
    stored = reg.get("digits-cnn", 1)
    assert stored == mv and stored.datasets == ("sklearn:digits",) and stored.metadata == {"task": "cls"}
    assert [v.version for v in reg.list("digits-cnn")] == [1, 2]


@pytest.mark.parametrize("name", ["../etc", "Digits", "a/b", "", "-x", "x" * 65, "mod el", "..", "a\x00"])
def test_unsafe_names_are_refused(reg: Registry, tmp_path: Path, name: str) -> None:
    with pytest.raises(InputError, match="not valid"):
        reg.register(name, model_folder(tmp_path), owner="o")


def test_lifecycle_pin_and_canary(reg: Registry, tmp_path: Path) -> None:
    v1 = reg.register("m", model_folder(tmp_path, 1), owner="o").version
    v2 = reg.register("m", model_folder(tmp_path, 2), owner="o").version
    v3 = reg.register("m", model_folder(tmp_path, 3), owner="o").version
    with pytest.raises(InputError, match="no pinned or production"):
        reg.get("m")
    with pytest.raises(InputError, match="only a staged"):
        reg.promote("m", v1, "production")  # must be staged first
    for v in (v1, v2, v3):
        reg.promote("m", v, "staged")
    with pytest.raises(InputError, match="no production version for a canary"):
        reg.promote("m", v2, "production", canary=10)
    reg.promote("m", v1, "production")
    canary = reg.promote("m", v2, "production", canary=10)
    assert canary.canary_percent == 10 and reg.get("m").version == v1 and reg.canary("m") == canary
    reg.promote("m", v2, "production")  # full rollout: v1 steps back to staged for rollback
    assert reg.get("m").version == v2 and reg.get("m", v1).status == "staged" and reg.canary("m") is None
    pinned = reg.pin_digest("m", reg.get("m", v3).digest)
    assert pinned.version == v3 and reg.get("m").version == v3
    reg.retire("m", v3)
    assert reg.get("m").version == v2  # retiring unpins
    with pytest.raises(InputError, match="cannot be pinned"):
        reg.pin("m", v3)
    with pytest.raises(InputError):
        reg.promote("m", v3, "staged")


def test_changed_files_quarantine_the_version_and_raise(db_url: str, tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    with AuditLog.open(db_url) as audit:
        reg = Registry.open(db_url, audit=audit)
        mv = reg.register("m", folder, owner="o")
        reg.promote("m", mv.version, "staged")
        reg.promote("m", mv.version, "production")
        reg.pin("m", mv.version)
        reg.verify(reg.get("m"))  # intact: no error
        (folder / "config.json").write_text('{"layers": 3}')
        with pytest.raises(IntegrityError, match="quarantined"):
            reg.verify(mv)
        assert reg.get("m", mv.version).status == "quarantined" and not reg.get("m", mv.version).pinned
        with pytest.raises(InputError):
            reg.get("m")  # never served again
        reg.close()
        out = io.StringIO()
        audit.export_ocsf(out)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["api"]["operation"] for e in events] == [
        "registry.register",
        "registry.promote",
        "registry.promote",
        "registry.pin",
        "registry.quarantine",
    ]
    assert events[-1]["severity_id"] == 4 and "hashes to" in events[-1]["status_detail"]


def test_signed_model_is_verified_at_registration(reg: Registry, tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    private, public = generate_key_pair("ed25519", tmp_path / "signer.pem")
    _, other_public = generate_key_pair("ed25519", tmp_path / "other.pem")
    sig = sign_model(folder, private)
    mv = reg.register("signed", folder, owner="o", public_key=public)
    assert mv.signature_path == str(sig) and mv.public_key == str(public)
    with pytest.raises(IntegrityError, match="different key"):
        reg.register("signed", folder, owner="o", signature=sig, public_key=other_public)
    assert len(reg.list("signed")) == 1  # the refused registration left nothing behind
    (folder / "weights.safetensors").write_bytes(b"swapped")
    with pytest.raises(IntegrityError):
        reg.verify(mv)
