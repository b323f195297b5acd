"""Signatures cross between modelshield and the OpenSSF `model-signing` package (v1.1.1) in both directions."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from model_signing import hashing as ms_hashing
from model_signing import signing as ms_signing
from model_signing import verifying as ms_verifying

from modelshield.core.errors import IntegrityError
from modelshield.integrity.signing import sign_model, verify_model


def their_sign(model: Path, private: Path, sig: Path) -> None:
    """Sign as model-signing's `sign key` command does: the signature and .git* left out of the manifest."""
    ignored = [sig.relative_to(model)] if model.is_dir() and sig.parent == model else []
    hashing = ms_hashing.Config().set_ignored_paths(paths=ignored, ignore_git_paths=True)
    ms_signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(hashing).sign(model, sig)


def their_verify(model: Path, public: Path, sig: Path) -> None:
    ms_verifying.Config().use_elliptic_key_verifier(public_key=public).verify(model, sig)


@pytest.mark.parametrize("kind", ["ec-p256", "ec-p384"])
def test_theirs_verifies_with_ours(model_dir: Path, keys: dict[str, tuple[Path, Path]], kind: str) -> None:
    private, public = keys[kind]
    sig = model_dir / "model.sig"
    their_sign(model_dir, private, sig)
    result = verify_model(model_dir, public)
    assert result.files == ["config.json", "model.safetensors", "tokenizer/empty.txt", "tokenizer/vocab.txt"]
    assert result.key_type == kind and result.hash_type == "sha256"
    (model_dir / "config.json").write_text("{}")
    with pytest.raises(IntegrityError, match="changed config.json"):
        verify_model(model_dir, public)


@pytest.mark.parametrize("kind", ["ec-p256", "ec-p384"])
def test_ours_verifies_with_theirs(model_dir: Path, keys: dict[str, tuple[Path, Path]], kind: str) -> None:
    private, public = keys[kind]
    sig = sign_model(model_dir, private)
    assert sig == model_dir / "model.sig"
    their_verify(model_dir, public, sig)
    (model_dir / "tokenizer" / "vocab.txt").write_text("a\nb\nX\n")
    with pytest.raises(ValueError, match="Hash mismatch for 'tokenizer/vocab.txt'"):
        their_verify(model_dir, public, sig)


def test_statements_agree_byte_for_byte_on_the_manifest(
    model_dir: Path, keys: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    """Same folder, same key: both tools sign the same subject digest and the same resources."""
    private, _ = keys["ec-p256"]
    ours, theirs = tmp_path / "ours.sig", tmp_path / "theirs.sig"
    sign_model(model_dir, private, ours)
    their_sign(model_dir, private, theirs)

    def statement(p: Path) -> dict:
        bundle = json.loads(p.read_text())
        assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
        assert bundle["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
        return json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))

    a, b = statement(ours), statement(theirs)
    assert a["subject"] == b["subject"] and a["predicateType"] == b["predicateType"]
    assert a["predicate"]["resources"] == b["predicate"]["resources"]
    sa, sb = a["predicate"]["serialization"], b["predicate"]["serialization"]
    assert sorted(sa.pop("ignore_paths")) == sorted(sb.pop("ignore_paths")) and sa == sb
    assert (
        json.loads(ours.read_text())["verificationMaterial"] == json.loads(theirs.read_text())["verificationMaterial"]
    )


def test_single_file_both_ways(model_dir: Path, keys: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    private, public = keys["ec-p256"]
    weights = model_dir / "model.safetensors"
    ours = sign_model(weights, private)
    assert ours == model_dir / "model.safetensors.sig"
    their_verify(weights, public, ours)
    theirs = tmp_path / "theirs.sig"
    their_sign(weights, private, theirs)
    assert verify_model(weights, public, theirs).files == ["."]


def test_ed25519_round_trip_and_theirs_does_not_take_it(model_dir: Path, keys: dict[str, tuple[Path, Path]]) -> None:
    """model-signing 1.1.1 only loads EC keys; Ed25519 signatures are ours to verify (same file format)."""
    private, public = keys["ed25519"]
    sig = sign_model(model_dir, private)
    assert verify_model(model_dir, public).key_type == "ed25519"
    with pytest.raises(Exception):  # noqa: B017 - whatever model-signing raises on a non-EC key
        their_verify(model_dir, public, sig)


def test_shards_verify_and_name_the_file(model_dir: Path, keys: dict[str, tuple[Path, Path]]) -> None:
    private, public = keys["ec-p256"]
    sign_model(model_dir, private, shard_size=1000)
    result = verify_model(model_dir, public)
    assert result.method == "shards" and len(result.resources) > len(result.files)
    data = bytearray((model_dir / "model.safetensors").read_bytes())
    data[5000] ^= 1
    (model_dir / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"changed model.safetensors$"):
        verify_model(model_dir, public)


def test_their_sharded_signature_verifies_with_ours(model_dir: Path, keys: dict[str, tuple[Path, Path]]) -> None:
    """model-signing writes shard_size as a float (and cannot read it back itself); ours accepts it."""
    private, public = keys["ec-p256"]
    sig = model_dir / "model.sig"
    hashing = ms_hashing.Config().use_shard_serialization(shard_size=4096).set_ignored_paths(paths=[Path("model.sig")])
    ms_signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(hashing).sign(model_dir, sig)
    assert verify_model(model_dir, public).method == "shards"
