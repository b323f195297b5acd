"""DSSE envelopes: the payload, its type, and signatures over the pre-authentication encoding (PAE).

Signing PAE(type, payload) rather than the payload alone binds the type to the bytes, so a signed statement
cannot be replayed as some other kind of document. https://github.com/secure-systems-lab/dsse
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from modelshield.core.errors import IntegrityError

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """``DSSEv1 <len(type)> <type> <len(payload)> <payload>``, lengths in bytes as ASCII decimals."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope with raw (decoded) payload and signature bytes."""

    payload: bytes
    payload_type: str
    signatures: tuple[tuple[bytes, str], ...]  # (signature, keyid)

    def to_json(self) -> dict[str, Any]:
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [
                {"sig": base64.b64encode(sig).decode("ascii"), "keyid": keyid} for sig, keyid in self.signatures
            ],
        }

    @classmethod
    def from_json(cls, raw: Any) -> Envelope:
        """Decode an envelope, refusing anything malformed (the caller checks the signatures)."""
        if not isinstance(raw, dict):
            raise IntegrityError("signature bundle: dsseEnvelope is missing")
        kind, sigs = raw.get("payloadType"), raw.get("signatures")
        if not isinstance(kind, str) or not isinstance(sigs, list):
            raise IntegrityError("signature bundle: dsseEnvelope needs payloadType and signatures")
        decoded = []
        for s in sigs:
            if not isinstance(s, dict):
                raise IntegrityError("signature bundle: a DSSE signature is not an object")
            keyid = s.get("keyid") or ""
            decoded.append((_b64(s.get("sig"), "a DSSE signature"), keyid if isinstance(keyid, str) else ""))
        return cls(_b64(raw.get("payload"), "the DSSE payload"), kind, tuple(decoded))


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise IntegrityError(f"signature bundle: {what} is missing")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise IntegrityError(f"signature bundle: {what} is not valid base64") from None
