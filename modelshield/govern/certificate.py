"""Erasure certificates: what an erasure did, signed so that a regulator or the data subject can check it later.

The certificate is a DSSE envelope (https://github.com/secure-systems-lab/dsse) whose payload is the RFC 8785
canonical JSON of the record, signed with Ed25519 over PAE(type, payload). The file itself is canonical JSON
too, and base64 must be in its one canonical form, so a certificate has exactly one byte representation:
any byte edited — even whitespace or an unused base64 bit that leaves the meaning unchanged — is refused.

The subject appears only as a keyed pseudonym (HMAC-SHA-256): the controller, who holds the key, can show a
given subject's certificate is theirs; anyone else learns nothing about who it was.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from modelshield.audit.canonical import canonical_json
from modelshield.core.errors import IntegrityError, MissingFileError
from modelshield.core.files import atomic_path
from modelshield.integrity.signing.dsse import pae
from modelshield.integrity.signing.keys import key_hint

PAYLOAD_TYPE = "application/vnd.modelshield.erasure-certificate+json"
FORMAT = "modelshield-erasure-certificate/1"
MAX_BYTES = 4 * 1024 * 1024


def pseudonym_key(private_key: Ed25519PrivateKey) -> bytes:
    """The HMAC key for subject pseudonyms, derived from the signing key so the controller keeps one secret."""
    raw = private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return hashlib.sha256(b"modelshield-erasure-pseudonym\x00" + raw).digest()


def subject_pseudonym(subject: str, key: bytes) -> str:
    """``hmac-sha256:<hex>`` of the subject id: stable for one key, meaningless without it."""
    return "hmac-sha256:" + hmac.new(key, subject.encode("utf-8"), hashlib.sha256).hexdigest()


def certificate_bytes(body: dict[str, Any], private_key: Ed25519PrivateKey) -> bytes:
    """The signed certificate file: canonical JSON of a DSSE envelope around the canonical JSON of ``body``."""
    payload = canonical_json({"format": FORMAT, **body})
    signature = private_key.sign(pae(PAYLOAD_TYPE, payload))
    envelope = {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": key_hint(private_key.public_key()), "sig": base64.b64encode(signature).decode()}],
    }
    return canonical_json(envelope) + b"\n"


def write_certificate(path: Path | str, body: dict[str, Any], private_key: Ed25519PrivateKey) -> Path:
    """Sign ``body`` and write it atomically to ``path``."""
    out = Path(path)
    data = certificate_bytes(body, private_key)
    with atomic_path(out, mode=0o644) as tmp:
        tmp.write_bytes(data)
    return out


def _strict_b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise IntegrityError(f"certificate: {what} is missing")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise IntegrityError(f"certificate: {what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != value:
        raise IntegrityError(f"certificate: {what} is not in canonical base64")
    return raw


def verify_certificate_bytes(data: bytes, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """The certificate's record if ``data`` is exactly what ``public_key``'s holder signed; else IntegrityError."""
    try:
        envelope = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise IntegrityError("certificate: not JSON; it was edited or is not a certificate") from None
    if not isinstance(envelope, dict) or set(envelope) != {"payload", "payloadType", "signatures"}:
        raise IntegrityError("certificate: not a DSSE envelope with payload, payloadType and signatures")
    try:
        canonical = canonical_json(envelope) + b"\n"
    except Exception:
        raise IntegrityError("certificate: holds values canonical JSON cannot represent") from None
    if data != canonical:
        raise IntegrityError("certificate: its bytes are not in canonical form; it was edited after signing")
    if envelope["payloadType"] != PAYLOAD_TYPE:
        raise IntegrityError(f"certificate: payload type is {envelope['payloadType']!r}, not {PAYLOAD_TYPE}")
    payload = _strict_b64(envelope["payload"], "the payload")
    sigs = envelope["signatures"]
    if not isinstance(sigs, list) or len(sigs) != 1 or not isinstance(sigs[0], dict):
        raise IntegrityError("certificate: needs exactly one signature")
    if set(sigs[0]) != {"keyid", "sig"} or sigs[0]["keyid"] != key_hint(public_key):
        raise IntegrityError("certificate: signed by another key than the public key given")
    signature = _strict_b64(sigs[0]["sig"], "the signature")
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(signature, pae(PAYLOAD_TYPE, payload))
    except InvalidSignature:
        raise IntegrityError("certificate: the signature does not match its content; it was edited") from None
    record = json.loads(payload)
    if not isinstance(record, dict) or record.get("format") != FORMAT or canonical_json(record) != payload:
        raise IntegrityError(f"certificate: the signed payload is not a {FORMAT} record")
    return record


def verify_certificate(path: Path | str, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """Read and verify a certificate file (see :func:`verify_certificate_bytes`)."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"certificate {p} does not exist")
    if p.stat().st_size > MAX_BYTES:
        raise IntegrityError(f"certificate {p} is over {MAX_BYTES} bytes; it is not one this tool wrote")
    return verify_certificate_bytes(p.read_bytes(), public_key)


__all__ = [
    "PAYLOAD_TYPE",
    "certificate_bytes",
    "pseudonym_key",
    "subject_pseudonym",
    "verify_certificate",
    "verify_certificate_bytes",
    "write_certificate",
]
