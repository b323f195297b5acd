"""Ed25519 keys that sign audit checkpoints: PEM files, the private one written 0600 and never printed."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from modelshield.core.errors import KeyringError, MissingFileError
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
    mode = stat.S_IMODE(p.stat().st_mode)
    if os.name == "posix" and mode & 0o077:
        raise KeyringError(f"private key {p} is readable by others (mode {mode:04o})", hint=f"chmod 600 {p}")
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyringError(f"{p} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyringError(f"{p} is not an Ed25519 key (audit checkpoints are signed with Ed25519)")
    return key


def load_public_key(path: Path | str) -> Ed25519PublicKey:
    """Read a PEM Ed25519 public key."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"public key {p} does not exist")
    try:
        key = serialization.load_pem_public_key(p.read_bytes())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyringError(f"{p} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyringError(f"{p} is not an Ed25519 public key")
    return key
