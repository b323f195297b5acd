"""The signature file: a Sigstore bundle v0.3 (JSON) holding a DSSE envelope and the signer's key hint.

This is what model-signing writes for key-based signing (``model.sig``): no certificate and no transparency
log entry, just ``verificationMaterial.publicKey.hint`` (SHA-256 of the public key PEM) so a verifier can
say "wrong key" before trying the signature. https://docs.sigstore.dev/about/bundle/
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from modelshield.core.errors import IntegrityError, MissingFileError
from modelshield.integrity.signing.dsse import Envelope

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@dataclass(frozen=True)
class Bundle:
    """The parts of a bundle a key-based verifier needs."""

    envelope: Envelope
    key_hint: str | None

    def to_json(self) -> str:
        """Compact JSON in model-signing's field order."""
        doc = {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"publicKey": {"hint": self.key_hint}, "tlogEntries": []},
            "dsseEnvelope": self.envelope.to_json(),
        }
        return json.dumps(doc, separators=(",", ":"))


def read_bundle(path: Path) -> Bundle:
    """Parse a signature file; anything that is not a well-formed v0.3 bundle is refused as tampered."""
    if not path.is_file():
        raise MissingFileError(f"signature {path} does not exist", hint="sign the model first, or pass --signature")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise IntegrityError(f"signature {path} is not JSON") from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"signature {path} is not a Sigstore bundle")
    if doc.get("mediaType") != BUNDLE_MEDIA_TYPE:
        raise IntegrityError(f"signature {path} has media type {doc.get('mediaType')!r}, expected {BUNDLE_MEDIA_TYPE}")
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict) or not isinstance(material.get("publicKey"), dict):
        kind = "a certificate or Sigstore identity" if isinstance(material, dict) else "no verification material"
        raise IntegrityError(
            f"signature {path} carries {kind}, not a public-key hint; modelshield verifies key-based signatures only"
        )
    hint = material["publicKey"].get("hint")
    if hint is not None and not isinstance(hint, str):
        raise IntegrityError(f"signature {path}: the public key hint is not a string")
    return Bundle(Envelope.from_json(doc.get("dsseEnvelope")), hint or None)
