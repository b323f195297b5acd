"""Signing keys as PEM files: EC P-256/P-384/P-521 (what OpenSSF model-signing accepts) and Ed25519.

ECDSA hashes with the digest that matches the curve (P-256 → SHA-256, P-384 → SHA-384, P-521 → SHA-512), as
model-signing does, so an EC signature made here verifies there and back. Ed25519 signatures follow the same
bundle format; model-signing 1.1.1 itself only accepts EC keys, so they verify with modelshield only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from modelshield.core.errors import InputError
from modelshield.integrity.keys import atomic_output, read_private_pem, read_public_pem

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

KEY_TYPES = {"ec-p256": ec.SECP256R1, "ec-p384": ec.SECP384R1, "ed25519": None}
_CURVE_HASH: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


def key_type(key: PrivateKey | PublicKey) -> str:
    """A short name for the key's algorithm, e.g. ``ec-p256`` or ``ed25519``."""
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519"
    return "ec-p" + key.curve.name[4:7]


def _refused(key: object, where: str) -> InputError:
    """Every key type the format does not define (RSA, DSA, secp256k1, ...), naming what came."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return InputError(f"{where} is an EC key on curve {key.curve.name}; use P-256, P-384 or P-521")
    return InputError(f"{where} is a {type(key).__name__.lstrip('_')}, not an EC (P-256/P-384/P-521) or Ed25519 key")


def _private(key: object, where: str) -> PrivateKey:
    if isinstance(key, ed25519.Ed25519PrivateKey) or (
        isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _CURVE_HASH
    ):
        return key
    raise _refused(key, where)


def _public(key: object, where: str) -> PublicKey:
    if isinstance(key, ed25519.Ed25519PublicKey) or (
        isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _CURVE_HASH
    ):
        return key
    raise _refused(key, where)


def load_private_key(key: PrivateKey | str | os.PathLike[str], password: bytes | None = None) -> PrivateKey:
    """A private key object, or one read from a PEM file (optionally password protected)."""
    if not isinstance(key, (str, os.PathLike)):
        return _private(key, "the private key")
    path = Path(key)
    return _private(read_private_pem(path, "private key", password, error=InputError), f"private key {path}")


def load_public_key(key: PublicKey | PrivateKey | str | os.PathLike[str]) -> PublicKey:
    """A public key object, the public half of a private key object, or a key read from a PEM file."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        key = key.public_key()
    if not isinstance(key, (str, os.PathLike)):
        return _public(key, "the public key")
    path = Path(key)
    return _public(read_public_pem(path, "public key", error=InputError), f"public key {path}")


def key_hint(public_key: PublicKey) -> str:
    """The key id model-signing writes in a bundle: SHA-256 (hex) of the public key's SubjectPublicKeyInfo PEM."""
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def sign_bytes(private_key: PrivateKey, data: bytes) -> bytes:
    """Ed25519, or ECDSA (DER) with the curve's hash."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(data)
    return private_key.sign(data, ec.ECDSA(_CURVE_HASH[private_key.curve.name]()))


def verify_bytes(public_key: PublicKey, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` over ``data`` checks out with ``public_key``."""
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        else:
            public_key.verify(signature, data, ec.ECDSA(_CURVE_HASH[public_key.curve.name]()))
    except InvalidSignature:
        return False
    return True


def public_key_path(private_path: Path) -> Path:
    """Where the public half of ``key.pem`` goes: ``key.pub.pem``."""
    stem = private_path.name.removesuffix(".pem")
    return private_path.with_name(f"{stem}.pub.pem")


def generate_key_pair(
    kind: str, out: str | os.PathLike[str], password: bytes | None = None, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write a new private key (PKCS#8 PEM, mode 0600) to ``out`` and its public key beside it (0644)."""
    if kind not in KEY_TYPES:
        raise InputError(f"key type {kind!r} is not one of {', '.join(KEY_TYPES)}")
    private_path = Path(out)
    public_path = public_key_path(private_path)
    curve = KEY_TYPES[kind]
    key: PrivateKey = ed25519.Ed25519PrivateKey.generate() if curve is None else ec.generate_private_key(curve())
    write_key_pair(key, private_path, public_path, password=password, overwrite=overwrite)
    return private_path, public_path


def write_key_pair(
    key: PrivateKey, private_path: Path, public_path: Path, *, password: bytes | None = None, overwrite: bool = False
) -> None:
    """Store a new key: private PKCS#8 PEM (0600), public SubjectPublicKeyInfo PEM (0644), never over an old key.

    Without ``overwrite`` the private key is linked into place exclusively, so two writers racing for one path
    cannot replace each other's key.
    """
    for p in (private_path, public_path):
        if p.exists() and not overwrite:
            raise InputError(f"{p} already exists; refusing to overwrite a key", hint="pick another --out")
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    try:
        with atomic_output(private_path, mode=0o600, exclusive=not overwrite) as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    except FileExistsError:
        raise InputError(f"{private_path} appeared while the key was generated; refusing to overwrite it") from None
    with atomic_output(public_path, mode=0o644) as f:
        f.write(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
