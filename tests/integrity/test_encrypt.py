"""Encrypted checkpoints: round trips, every kind of tampering caught, rotation without re-encryption, bounded memory."""

from __future__ import annotations

import base64
import json
import os
import stat
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest

from modelshield.core.errors import FormatError, ModelShieldError
from modelshield.integrity.encrypt import (
    MAGIC,
    TAG_BYTES,
    Header,
    IntegrityError,
    decrypt_file,
    encrypt_file,
    read_header,
    rotate_file,
)
from modelshield.integrity.keys import Keyring, KeyringError

CHUNK = 4096
SIZE = 50_000  # 12 full chunks and a short 13th


@pytest.fixture
def ring(tmp_path: Path) -> Keyring:
    return Keyring.generate(tmp_path / "keyring.json", "k1")


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    path.write_bytes(os.urandom(SIZE))
    return path


@pytest.fixture
def sealed(plain: Path, ring: Keyring) -> Path:
    dst = plain.with_name(plain.name + ".msenc")
    encrypt_file(plain, dst, ring, chunk_size=CHUNK)
    return dst


def payload_offset(path: Path) -> int:
    return len(read_header(path).to_bytes())


def chunk_span(path: Path, index: int) -> tuple[int, int]:
    """Start and end of sealed chunk ``index`` in the file."""
    start = payload_offset(path) + index * (CHUNK + TAG_BYTES)
    return start, min(start + CHUNK + TAG_BYTES, path.stat().st_size)


def edit_header(path: Path, **changes: object) -> None:
    """Rewrite the header with some fields changed (canonically encoded, so only authentication can catch it)."""
    data = path.read_bytes()
    header = read_header(path)
    path.write_bytes(replace(header, **changes).to_bytes() + data[len(header.to_bytes()) :])  # type: ignore[arg-type]


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("size", [SIZE, 0, CHUNK, 3 * CHUNK + 1])
def test_round_trip(tmp_path: Path, ring: Keyring, size: int) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(size))
    header = encrypt_file(src, tmp_path / "in.msenc", ring, chunk_size=CHUNK)
    assert header.chunks == max(1, -(-size // CHUNK))
    assert (tmp_path / "in.msenc").stat().st_size == header.describe()["encrypted_size"]
    decrypt_file(tmp_path / "in.msenc", tmp_path / "out.bin", ring)
    assert (tmp_path / "out.bin").read_bytes() == src.read_bytes()


def test_ciphertext_hides_plaintext_and_differs_each_time(tmp_path: Path, ring: Keyring) -> None:
    src = tmp_path / "zeros.bin"
    src.write_bytes(b"secret weights " * 1000)
    encrypt_file(src, tmp_path / "a.msenc", ring, chunk_size=CHUNK)
    encrypt_file(src, tmp_path / "b.msenc", ring, chunk_size=CHUNK)
    a, b = (tmp_path / "a.msenc").read_bytes(), (tmp_path / "b.msenc").read_bytes()
    assert b"secret weights" not in a
    assert a[payload_offset(tmp_path / "a.msenc") :] != b[payload_offset(tmp_path / "b.msenc") :]


def _flip_header(path: Path) -> None:
    flip(path, payload_offset(path) // 2)


def _reencode_header(path: Path) -> None:
    """Same fields, same length prefix, different bytes: only the canonical-form check can notice."""
    data, offset = path.read_bytes(), payload_offset(path)
    body = json.dumps(json.loads(data[10:offset]), indent=1).encode()
    path.write_bytes(MAGIC + len(body).to_bytes(4, "big") + body + data[offset:])


def _swap_chunks(path: Path) -> None:
    data = bytearray(path.read_bytes())
    (a0, a1), (b0, b1) = chunk_span(path, 0), chunk_span(path, 1)
    data[a0:a1], data[b0:b1] = data[b0:b1], data[a0:a1]
    path.write_bytes(bytes(data))


def _drop_last_chunk(path: Path) -> None:
    start, _ = chunk_span(path, read_header(path).chunks - 1)
    path.write_bytes(path.read_bytes()[:start])


def _append_chunk(path: Path) -> None:
    start, end = chunk_span(path, 0)
    path.write_bytes(path.read_bytes() + path.read_bytes()[start:end])


def _truncate_mid_chunk(path: Path) -> None:
    start, _ = chunk_span(path, 5)
    path.write_bytes(path.read_bytes()[: start + 100])


TAMPERING = {
    "header bit": _flip_header,
    "wrapped key": lambda p: edit_header(
        p, wrapped_key=bytes([read_header(p).wrapped_key[0] ^ 1]) + read_header(p).wrapped_key[1:]
    ),
    "wrap nonce": lambda p: edit_header(p, wrap_nonce=bytes(12)),
    "plaintext size": lambda p: edit_header(p, plaintext_size=SIZE - 848),
    "chunk size": lambda p: edit_header(p, chunk_size=2 * CHUNK),
    "nonce prefix": lambda p: edit_header(p, nonce_prefix=bytes(7)),
    "header re-encoded": _reencode_header,
    "swap chunks": _swap_chunks,
    "drop last chunk": _drop_last_chunk,
    "append chunk": _append_chunk,
    "truncate mid-chunk": _truncate_mid_chunk,
    "drop last byte": lambda p: p.write_bytes(p.read_bytes()[:-1]),
    "one trailing byte": lambda p: p.write_bytes(p.read_bytes() + b"\0"),
}


@pytest.mark.parametrize("tamper", TAMPERING.values(), ids=TAMPERING.keys())
def test_tampering_is_detected_and_leaves_no_plaintext(sealed: Path, ring: Keyring, tamper) -> None:  # noqa: ANN001
    out = sealed.parent / "restored.bin"
    out.write_bytes(b"previous contents")
    tamper(sealed)
    with pytest.raises(IntegrityError):
        decrypt_file(sealed, out, ring)
    assert out.read_bytes() == b"previous contents"
    assert not [p for p in sealed.parent.iterdir() if p.name.endswith(".part")]


@pytest.mark.parametrize("index", range(-(-SIZE // CHUNK)))
def test_bit_flip_in_each_chunk_is_detected(sealed: Path, ring: Keyring, index: int) -> None:
    start, end = chunk_span(sealed, index)
    flip(sealed, (start + end) // 2)
    with pytest.raises(IntegrityError, match=f"chunk {index + 1} of 13"):
        decrypt_file(sealed, sealed.parent / "out.bin", ring)
    assert not (sealed.parent / "out.bin").exists()


def test_changed_kek_id_is_detected(sealed: Path, ring: Keyring) -> None:
    ring = Keyring.generate(ring.path, "k2")  # type: ignore[arg-type]
    edit_header(sealed, kek_id="k2")
    with pytest.raises(IntegrityError, match="'k2'"):
        decrypt_file(sealed, sealed.parent / "out.bin", ring)


def test_not_an_encrypted_file(plain: Path, ring: Keyring) -> None:
    with pytest.raises(FormatError, match="not a modelshield encrypted file"):
        decrypt_file(plain, plain.parent / "out.bin", ring)


def test_wrong_keyring_is_refused(sealed: Path, tmp_path: Path) -> None:
    same_id_other_key = Keyring.generate(tmp_path / "other.json", "k1")
    with pytest.raises(IntegrityError, match="does not authenticate under KEK 'k1'"):
        decrypt_file(sealed, tmp_path / "out.bin", same_id_other_key)
    with pytest.raises(KeyringError, match="no key with id 'k1'"):
        decrypt_file(sealed, tmp_path / "out.bin", Keyring.generate(tmp_path / "third.json", "k9"))
    assert not (tmp_path / "out.bin").exists()


def test_rotation_rewraps_and_keeps_payload_bytes(sealed: Path, plain: Path, ring: Keyring, tmp_path: Path) -> None:
    before = read_header(sealed)
    body = sealed.read_bytes()[payload_offset(sealed) :]
    ring = Keyring.generate(ring.path, "k2-new")  # type: ignore[arg-type]
    after = rotate_file(sealed, ring, "k2-new")
    assert read_header(sealed) == after
    assert after.kek_id == "k2-new" and after.wrapped_key != before.wrapped_key
    assert (after.file_id, after.nonce_prefix, after.plaintext_size) == (before.file_id, before.nonce_prefix, SIZE)
    assert sealed.read_bytes()[payload_offset(sealed) :] == body

    only_new = Keyring({"k2-new": ring.key("k2-new")})
    decrypt_file(sealed, tmp_path / "out.bin", only_new)
    assert (tmp_path / "out.bin").read_bytes() == plain.read_bytes()
    with pytest.raises(KeyringError):
        decrypt_file(sealed, tmp_path / "out2.bin", Keyring({"k1": ring.key("k1")}))


def test_rotation_to_unknown_key_changes_nothing(sealed: Path, ring: Keyring) -> None:
    before = sealed.read_bytes()
    with pytest.raises(KeyringError):
        rotate_file(sealed, ring, "missing")
    assert sealed.read_bytes() == before


def test_rotation_keeps_file_mode(sealed: Path, ring: Keyring) -> None:
    sealed.chmod(0o640)
    rotate_file(sealed, ring, "k1")
    assert stat.S_IMODE(sealed.stat().st_mode) == 0o640


def test_keyring_file_is_private_and_checked(ring: Keyring) -> None:
    path = ring.path
    assert path is not None and stat.S_IMODE(path.stat().st_mode) == 0o600
    Keyring.generate(path, "k2")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Keyring.load(path).ids == ["k1", "k2"] and Keyring.load(path).default_id == "k2"
    path.chmod(0o644)
    with pytest.raises(KeyringError, match="accessible to others"):
        Keyring.load(path)


def test_keyring_repr_and_errors_never_show_keys(ring: Keyring, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    secret = base64.b64encode(ring.key("k1")).decode()
    assert secret not in repr(ring)
    with pytest.raises(KeyringError, match="already has"):
        Keyring.generate(ring.path, "k1")  # type: ignore[arg-type]
    monkeypatch.setenv("MODELSHIELD_KEK_SHORT", base64.b64encode(b"x" * 16).decode())
    with pytest.raises(KeyringError, match=r"\$MODELSHIELD_KEK_SHORT: the key is 16 bytes") as info:
        Keyring.load(None).key("short")
    assert base64.b64encode(b"x" * 16).decode() not in str(info.value)


def test_key_from_environment(plain: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("MODELSHIELD_KEK_CI_KEY_1", base64.b64encode(os.urandom(32)).decode())
    env_only = Keyring.load(None)
    encrypt_file(plain, tmp_path / "m.msenc", env_only, "ci-key.1")
    assert read_header(tmp_path / "m.msenc").kek_id == "ci-key.1"
    decrypt_file(tmp_path / "m.msenc", tmp_path / "m.bin", env_only)
    assert (tmp_path / "m.bin").read_bytes() == plain.read_bytes()
    with pytest.raises(KeyringError, match="no key id given"):
        encrypt_file(plain, tmp_path / "n.msenc", env_only)


def test_bad_inputs(plain: Path, ring: Keyring, tmp_path: Path) -> None:
    with pytest.raises(ModelShieldError, match="chunk size"):
        encrypt_file(plain, tmp_path / "x.msenc", ring, chunk_size=10)
    with pytest.raises(ModelShieldError, match="does not exist"):
        encrypt_file(tmp_path / "missing", tmp_path / "x.msenc", ring)
    with pytest.raises(ModelShieldError, match="not valid"):
        encrypt_file(plain, tmp_path / "x.msenc", ring, key_id="bad id!")
    with pytest.raises(ModelShieldError, match="does not exist"):
        Keyring.load(tmp_path / "nope.json")


def test_header_round_trips_canonically(sealed: Path) -> None:
    header = read_header(sealed)
    raw = header.to_bytes()
    assert Header.parse(raw[10:], "x") == header
    assert "wrapped_key" not in header.describe() and "wrap_nonce" not in header.describe()


def test_streaming_memory_stays_bounded(tmp_path: Path, ring: Keyring) -> None:
    """64 MiB through 1 MiB chunks: Python-side peak stays a few chunks, not the file size."""
    src = tmp_path / "big.bin"
    with src.open("wb") as f:
        f.truncate(64 << 20)
        f.seek(32 << 20)
        f.write(os.urandom(1 << 20))
    tracemalloc.start()
    try:
        encrypt_file(src, tmp_path / "big.msenc", ring)
        _, enc_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        decrypt_file(tmp_path / "big.msenc", tmp_path / "big.out", ring)
        _, dec_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert enc_peak < 8 << 20 and dec_peak < 8 << 20, (enc_peak, dec_peak)
    assert (tmp_path / "big.out").stat().st_size == 64 << 20
