"""The in-toto v1 statement that carries a model manifest (the model-signing v1.0 predicate).

Subject: the model's name and one SHA-256 over every resource digest (raw bytes, in resource order), so
other documents can refer to the whole model by one digest. Predicate: ``serialization`` (how to re-hash)
and ``resources`` (name, algorithm, hex digest of every file or shard). See
https://github.com/in-toto/attestation/tree/main/spec/v1 and model-signing's ``docs/model_signing_format.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from modelshield.core.errors import IntegrityError
from modelshield.integrity.archives import escapes
from modelshield.integrity.signing.manifest import HASH_TYPES, Manifest, Serialization, split_shard

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
LEGACY_PREDICATE_TYPE = "https://model_signing/Digests/v0.1"
_DIGEST_HEX = {"sha256": 64, "blake2b": 128}
_HINT = "the signature file was altered or is not a model signature; get it again from the publisher"


def root_digest(hex_digests: list[str]) -> str:
    """SHA-256 over the concatenated raw digests, the subject digest model-signing writes."""
    h = hashlib.sha256()
    for d in hex_digests:
        h.update(bytes.fromhex(d))
    return h.hexdigest()


def statement_bytes(manifest: Manifest) -> bytes:
    """The statement as JSON (2-space indent, as model-signing writes it): the exact bytes that get signed."""
    resources = manifest.resources()
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": manifest.model_name, "digest": {"sha256": root_digest([r["digest"] for r in resources])}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"serialization": manifest.serialization.to_json(), "resources": resources},
    }
    return json.dumps(statement, indent=2).encode("utf-8")


def _fail(reason: str) -> IntegrityError:
    return IntegrityError(f"signature statement: {reason}", hint=_HINT)


def _serialization(raw: Any) -> Serialization:
    """Read ``predicate.serialization``; JSON numbers may arrive as floats (protobuf Struct), so 1e9 is accepted."""
    if not isinstance(raw, dict):
        raise _fail("predicate.serialization is missing")
    method, hash_type = raw.get("method"), raw.get("hash_type")
    if method not in ("files", "shards"):
        raise _fail(f"unknown serialization method {method!r}")
    if hash_type not in HASH_TYPES:
        raise _fail(f"hash type {hash_type!r} is not supported ({', '.join(HASH_TYPES)})")
    allow = raw.get("allow_symlinks", False)
    ignore = raw.get("ignore_paths", [])
    if not isinstance(allow, bool) or not isinstance(ignore, list) or not all(isinstance(i, str) for i in ignore):
        raise _fail("allow_symlinks must be a boolean and ignore_paths a list of strings")
    shard_size = None
    if method == "shards":
        size = raw.get("shard_size")
        if (
            isinstance(size, bool)
            or not isinstance(size, (int, float))
            or not math.isfinite(size)
            or size != int(size)
            or size < 1
        ):
            raise _fail(f"shard_size {size!r} is not a positive integer")
        shard_size = int(size)
    return Serialization(method, hash_type, allow, tuple(ignore), shard_size)


def _check_name(name: Any, ser: Serialization) -> str:
    """Resource names are plain relative paths: one that climbs out of the model is refused outright."""
    if not isinstance(name, str) or not name:
        raise _fail("a resource has no name")
    path = name
    if ser.method == "shards":
        try:
            path = split_shard(name)[0]
        except ValueError as exc:
            raise _fail(str(exc)) from None
    if escapes(path) or "\\" in path or "\0" in path:
        raise _fail(f"resource name {name!r} points outside the model folder")
    return name


def parse_statement(payload: bytes) -> Manifest:
    """The manifest a signed statement describes, after checking it is complete and self-consistent."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise _fail("the payload is not JSON") from None
    if not isinstance(doc, dict) or doc.get("_type") != STATEMENT_TYPE:
        raise _fail(f"not an in-toto {STATEMENT_TYPE} statement")
    if doc.get("predicateType") == LEGACY_PREDICATE_TYPE:
        raise _fail("it uses the pre-1.0 model-signing format (Digests/v0.1); re-sign the model")
    if doc.get("predicateType") != PREDICATE_TYPE:
        raise _fail(f"predicate type {doc.get('predicateType')!r} is not {PREDICATE_TYPE}")
    subjects, predicate = doc.get("subject"), doc.get("predicate")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise _fail("expected exactly one subject")
    digest_map = subjects[0].get("digest")
    subject_digest = digest_map.get("sha256") if isinstance(digest_map, dict) else None
    if not isinstance(predicate, dict) or not isinstance(predicate.get("resources"), list):
        raise _fail("predicate.resources is missing")
    ser = _serialization(predicate.get("serialization"))
    digests: dict[str, str] = {}
    order: list[str] = []
    for res in predicate["resources"]:
        if not isinstance(res, dict):
            raise _fail("a resource is not an object")
        name = _check_name(res.get("name"), ser)
        digest = res.get("digest")
        if res.get("algorithm") != ser.algorithm:
            raise _fail(
                f"resource {name!r} uses algorithm {res.get('algorithm')!r}, the serialization says {ser.algorithm!r}"
            )
        if not isinstance(digest, str) or len(digest) != _DIGEST_HEX[ser.hash_type] or digest.strip("0123456789abcdef"):
            raise _fail(f"resource {name!r} has a malformed digest")
        if name in digests:
            raise _fail(f"resource {name!r} is listed twice")
        digests[name] = digest
        order.append(digest)
    if subject_digest != root_digest(order):
        raise _fail("the subject digest does not match the resources (manifest edited)")
    model_name = subjects[0].get("name")
    return Manifest(model_name if isinstance(model_name, str) else "", ser, digests)
