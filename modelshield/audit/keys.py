"""Ed25519 keys that sign audit checkpoints: PEM files, the private one written 0600 and never printed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from modelshield.core.errors import KeyringError, MissingFileError
from modelshield.integrity.keys import read_private_pem, read_public_pem
from modelshield.integrity.signing.keys import write_key_pair


def key_id(public_key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, hex: names the key in checkpoints and the witness file."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def generate_keypair(private_path: Path, public_path: Path) -> Ed25519PublicKey:
    """Write a new key pair: private key PKCS#8 PEM (0600), public key SubjectPublicKeyInfo PEM (0644)."""
    private = Ed25519PrivateKey.generate()
    write_key_pair(private, Path(private_path), Path(public_path))
    return private.public_key()


def load_private_key(path: Path | str) -> Ed25519PrivateKey:
    """Read a PEM Ed25519 private key; refused if others can read the file, as ssh does."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"private key {p} does not exist", hint="create one: modelshield audit keygen")
    key = read_private_pem(p)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyringError(f"{p} is not an Ed25519 key (audit checkpoints are signed with Ed25519)")
    return key


def load_public_key(path: Path | str) -> Ed25519PublicKey:
    """Read a PEM Ed25519 public key."""
    p = Path(path)
    key = read_public_pem(p)
    if not isinstance(key, Ed25519PublicKey):
        raise KeyringError(f"{p} is not an Ed25519 public key")
    return key
