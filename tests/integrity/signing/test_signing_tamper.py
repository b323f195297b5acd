"""Every way a signed model or its signature can be altered is refused with a one-line reason."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from modelshield.core.errors import InputError, IntegrityError, KeyringError, MissingFileError
from modelshield.integrity.signing import sign_model, verify_model
from modelshield.integrity.signing.dsse import pae
from modelshield.integrity.signing.keys import load_private_key, sign_bytes

Keys = dict[str, tuple[Path, Path]]


@pytest.fixture
def signed(model_dir: Path, keys: Keys) -> tuple[Path, Path]:
    """A model signed with the P-256 key; returns (model folder, public key)."""
    sign_model(model_dir, keys["ec-p256"][0])
    return model_dir, keys["ec-p256"][1]


def refused(model: Path, public: Path, match: str, sig: Path | None = None) -> str:
    with pytest.raises(IntegrityError, match=match) as info:
        verify_model(model, public, sig)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_untouched_model_verifies_and_git_and_signature_are_not_signed(signed: tuple[Path, Path]) -> None:
    model, public = signed
    (model / ".git" / "HEAD").write_text("ref: refs/heads/other\n")  # .git* is ignored, as model-signing does
    result = verify_model(model, public)
    assert "model.sig" in result.ignored and ".git" in result.ignored
    assert "model.sig" not in result.files


@pytest.mark.parametrize(
    "change, match",
    [
        (
            lambda m: (m / "model.safetensors").write_bytes((m / "model.safetensors").read_bytes()[:-1] + b"\x01"),
            "changed model.safetensors",
        ),
        (lambda m: (m / "tokenizer" / "extra.txt").write_text("new"), "added tokenizer/extra.txt"),
        (lambda m: (m / "tokenizer" / "vocab.txt").unlink(), "removed tokenizer/vocab.txt"),
        (lambda m: (m / "config.json").rename(m / "config2.json"), "added config2.json; removed config.json"),
        (lambda m: (m / "tokenizer" / "empty.txt").write_bytes(b"\0"), "changed tokenizer/empty.txt"),
        (lambda m: (m / "model.sig.bak").write_text("x"), "added model.sig.bak"),
    ],
)
def test_model_tamper_is_named(signed: tuple[Path, Path], change: Callable[[Path], object], match: str) -> None:
    model, public = signed
    change(model)
    refused(model, public, match)


def _edit_bundle(sig: Path, edit: Callable[[dict], None]) -> None:
    doc = json.loads(sig.read_text())
    edit(doc)
    sig.write_text(json.dumps(doc))


def _edit_statement(doc: dict, edit: Callable[[dict], None]) -> None:
    env = doc["dsseEnvelope"]
    statement = json.loads(base64.b64decode(env["payload"]))
    edit(statement)
    env["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()


def _flip_sig(doc: dict) -> None:
    raw = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[-1] ^= 1
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()


def _set_digest(s: dict) -> None:
    s["predicate"]["resources"][0]["digest"] = "0" * 64


def _set(key: str, value: object) -> Callable[[dict], None]:
    def edit(s: dict) -> None:
        s["predicate"]["serialization"][key] = value

    return edit


@pytest.mark.parametrize(
    "edit, match",
    [
        (_flip_sig, "does not verify"),
        (lambda d: _edit_statement(d, _set_digest), "does not verify"),
        (lambda d: _edit_statement(d, _set("ignore_paths", ["model.sig", "tokenizer"])), "does not verify"),
        (lambda d: _edit_statement(d, _set("hash_type", "blake2b")), "does not verify"),
        (lambda d: d["dsseEnvelope"].update(payloadType="text/plain"), "does not verify"),
        (lambda d: d.update(mediaType="application/vnd.dev.sigstore.bundle.v0.2+json"), "media type"),
        (lambda d: d["verificationMaterial"]["publicKey"].update(hint="ab" * 32), "different key"),
        (lambda d: d["dsseEnvelope"]["signatures"].append(d["dsseEnvelope"]["signatures"][0]), "exactly one"),
        (lambda d: d["dsseEnvelope"].update(payload="not base64!"), "not valid base64"),
        (lambda d: d.pop("verificationMaterial"), "no verification material"),
    ],
)
def test_signature_tamper_is_refused(signed: tuple[Path, Path], edit: Callable[[dict], None], match: str) -> None:
    model, public = signed
    _edit_bundle(model / "model.sig", edit)
    refused(model, public, match)


def test_truncated_or_garbage_signature_is_refused(signed: tuple[Path, Path]) -> None:
    model, public = signed
    sig = model / "model.sig"
    sig.write_text(sig.read_text()[:-20])
    refused(model, public, "not JSON")


def test_wrong_key_and_wrong_algorithm_are_refused(signed: tuple[Path, Path], keys: Keys) -> None:
    model, _ = signed
    assert "different key" in refused(model, keys["other-p256"][1], "signed by a different key")
    refused(model, keys["ec-p384"][1], "different key .* ec-p384")
    refused(model, keys["ed25519"][1], "different key .* ed25519")


def test_wrong_key_without_hint_fails_on_the_signature(signed: tuple[Path, Path], keys: Keys) -> None:
    """Older bundles carry no key hint: the signature itself must still fail under another key or algorithm."""
    model, _ = signed
    _edit_bundle(model / "model.sig", lambda d: d["verificationMaterial"]["publicKey"].pop("hint"))
    refused(model, keys["other-p256"][1], "does not verify with the given ec-p256 key")
    refused(model, keys["ed25519"][1], "does not verify with the given ed25519 key")


def _resign(model: Path, private: Path, edit: Callable[[dict], None]) -> None:
    """Forge-proof edits: change the statement and sign it again with the real key (a malicious signer)."""
    sig = model / "model.sig"
    key = load_private_key(private)

    def rewrite(doc: dict) -> None:
        _edit_statement(doc, edit)
        payload = base64.b64decode(doc["dsseEnvelope"]["payload"])
        signature = sign_bytes(key, pae("application/vnd.in-toto+json", payload))
        doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(signature).decode()

    _edit_bundle(sig, rewrite)


def test_traversal_names_in_a_validly_signed_statement_are_refused(signed: tuple[Path, Path], keys: Keys) -> None:
    model, public = signed

    def traverse(s: dict) -> None:
        s["predicate"]["resources"][0]["name"] = "../../etc/passwd"

    _resign(model, keys["ec-p256"][0], traverse)
    refused(model, public, "points outside the model folder")


def test_a_resource_list_that_disagrees_with_the_subject_is_refused(signed: tuple[Path, Path], keys: Keys) -> None:
    model, public = signed
    _resign(model, keys["ec-p256"][0], lambda s: s["predicate"]["resources"].pop())
    refused(model, public, "subject digest does not match")


def test_symlink_leaving_the_folder_is_refused(model_dir: Path, keys: Keys, tmp_path: Path) -> None:
    private, public = keys["ec-p256"]
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    os.symlink(secret, model_dir / "tokenizer" / "merges.txt")
    with pytest.raises(InputError, match="is a symlink"):
        sign_model(model_dir, private)
    with pytest.raises(InputError, match="outside the model folder"):
        sign_model(model_dir, private, allow_symlinks=True)
    (model_dir / "tokenizer" / "merges.txt").unlink()
    sign_model(model_dir, private, allow_symlinks=True)
    os.symlink(secret, model_dir / "tokenizer" / "merges.txt")
    refused(model_dir, public, "outside the model folder")


def test_symlink_inside_the_folder_only_with_allow_symlinks(model_dir: Path, keys: Keys) -> None:
    private, public = keys["ec-p256"]
    os.symlink("config.json", model_dir / "config-link.json")
    with pytest.raises(InputError, match="refuses symlinks"):
        sign_model(model_dir, private)
    sign_model(model_dir, private, allow_symlinks=True)
    assert "config-link.json" in verify_model(model_dir, public).files
    (model_dir / "config.json").write_text("{}")  # the link's target changes: both names are caught
    refused(model_dir, public, "changed config-link.json, config.json")


def test_symlinked_folder_and_signed_model_without_symlinks(signed: tuple[Path, Path], tmp_path: Path) -> None:
    model, public = signed
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", model / "more")
    refused(model, public, "more is a symlink")


def test_ignore_is_recorded_and_applied_by_the_verifier(model_dir: Path, keys: Keys) -> None:
    private, public = keys["ec-p256"]
    sign_model(model_dir, private, ignore=["tokenizer"])
    (model_dir / "tokenizer" / "vocab.txt").write_text("anything")
    assert verify_model(model_dir, public).files == ["config.json", "model.safetensors"]
    with pytest.raises(InputError, match="inside the model folder"):
        sign_model(model_dir, private, ignore=["../elsewhere"])


def test_a_folder_signature_does_not_verify_a_file_and_back(signed: tuple[Path, Path], keys: Keys) -> None:
    model, public = signed
    refused(model / "model.safetensors", public, "signs a folder", model / "model.sig")
    file_sig = sign_model(model / "config.json", keys["ec-p256"][0])
    refused(model, public, "signs a single file", file_sig)


def test_missing_inputs_and_unusable_keys_are_input_errors(
    signed: tuple[Path, Path], keys: Keys, tmp_path: Path
) -> None:
    model, public = signed
    with pytest.raises(MissingFileError):
        verify_model(tmp_path / "nothing", public)
    with pytest.raises(MissingFileError, match="signature"):
        verify_model(model, public, tmp_path / "none.sig")
    with pytest.raises(InputError, match="looks like a private key"):
        verify_model(model, keys["ec-p256"][0])
    rsa_pem = tmp_path / "rsa.pem"
    rsa_pem.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(KeyringError, match="accessible to others"):  # a private key others can read is refused
        sign_model(model, rsa_pem)
    rsa_pem.chmod(0o600)
    with pytest.raises(InputError, match="not an EC"):
        sign_model(model, rsa_pem)


def test_concurrent_keygens_never_overwrite_each_other(tmp_path: Path) -> None:
    import threading

    from modelshield.core.errors import InputError
    from modelshield.integrity.signing.keys import generate_key_pair, load_private_key

    outcomes: list[str] = []

    def make() -> None:
        try:
            generate_key_pair("ed25519", tmp_path / "k.pem")
            outcomes.append("written")
        except InputError:
            outcomes.append("refused")

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("written") == 1 and outcomes.count("refused") == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pem", "k.pub.pem"]
    load_private_key(tmp_path / "k.pem")
