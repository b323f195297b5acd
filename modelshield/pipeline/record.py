"""The signed run record: what ran, what each gate decided, and the digest of every artefact.

``record.json`` is the canonical JSON of the record; ``record.sig.json`` is a DSSE envelope over those exact
bytes (payload type ``application/vnd.modelshield.pipeline-run+json``) signed with the run's key — Ed25519 or
EC, read by ``integrity.signing.keys`` like every other modelshield signature. Signing PAE(type, payload)
binds the type, so a run record cannot pass for any other signed document. ``verify_record`` checks the
signature, that ``record.json`` is exactly the signed payload, and that the run's own artefacts still hash to
what the record says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from modelshield.core.errors import IntegrityError, MissingFileError
from modelshield.core.files import atomic_output
from modelshield.integrity.provenance import hash_tree
from modelshield.integrity.signing.dsse import Envelope, pae
from modelshield.integrity.signing.keys import (
    PublicKey,
    key_hint,
    load_private_key,
    load_public_key,
    sign_bytes,
    verify_bytes,
)

PAYLOAD_TYPE = "application/vnd.modelshield.pipeline-run+json"
RECORD = "record.json"
SIGNATURE = "record.sig.json"
PUBLIC_KEY = "signing.pub.pem"


def canonical(doc: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: one byte string per record, whoever writes it."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def _write(path: Path, data: bytes) -> None:
    with atomic_output(path, mode=0o644) as f:
        f.write(data)


def public_key_file(private_key: Path, run_dir: Path) -> Path:
    """The public half of the run's key, written once into the run folder (what verifiers and the registry use)."""
    path = run_dir / PUBLIC_KEY
    if not path.exists():
        public = load_public_key(load_private_key(private_key))
        _write(path, public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def sign_record(record: dict[str, Any], run_dir: Path, private_key: Path | None) -> Path:
    """Write ``record.json`` and, with a key, ``record.sig.json``; returns the record's path."""
    payload = canonical(record)
    _write(run_dir / RECORD, payload)
    if private_key is not None:
        key = load_private_key(private_key)
        public: PublicKey = key.public_key()
        envelope = Envelope(payload, PAYLOAD_TYPE, ((sign_bytes(key, pae(PAYLOAD_TYPE, payload)), key_hint(public)),))
        _write(run_dir / SIGNATURE, json.dumps(envelope.to_json(), indent=2).encode("utf-8") + b"\n")
    return run_dir / RECORD


def verify_record(run_dir: Path | str, public_key: Path | str) -> dict[str, Any]:
    """The record of a run, once its signature, its bytes and the run's artefacts all check out.

    Raises ``IntegrityError`` naming the first thing that does not: a bad signature (edited or another key),
    a ``record.json`` that is not the signed payload, or an artefact of the run whose digest changed."""
    folder = Path(run_dir)
    record_path, sig_path = folder / RECORD, folder / SIGNATURE
    for p in (record_path, sig_path):
        if not p.is_file():
            raise MissingFileError(f"{p} does not exist: is {folder} a finished, signed pipeline run?")
    try:
        envelope = Envelope.from_json(json.loads(sig_path.read_text(encoding="utf-8")))
    except ValueError:
        raise IntegrityError(f"{sig_path} is not JSON") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise IntegrityError(f"{sig_path} signs a {envelope.payload_type!r}, not a pipeline run record")
    key = load_public_key(public_key)
    message = pae(envelope.payload_type, envelope.payload)
    if not any(verify_bytes(key, sig, message) for sig, _ in envelope.signatures):
        raise IntegrityError(f"{sig_path}: the signature does not verify with {public_key} (edited, or another key)")
    if record_path.read_bytes() != envelope.payload:
        raise IntegrityError(f"{record_path} is not the record that was signed: it was edited after the run")
    record: dict[str, Any] = json.loads(envelope.payload)
    for name, entry in sorted(record.get("artifacts", {}).items()):
        if not entry.get("produced"):
            continue
        path = folder / "artifacts" / name
        if not path.exists():
            raise IntegrityError(f"artefact {name} is missing from {folder / 'artifacts'}")
        if hash_tree(path).digest != entry["digest"]:
            raise IntegrityError(f"artefact {name} ({path}) changed after the run: it no longer hashes to the record")
    return record


__all__ = ["PAYLOAD_TYPE", "RECORD", "SIGNATURE", "public_key_file", "sign_record", "verify_record"]
