"""Verify a model against an OpenSSF model-signing signature: key, signature, statement, then every file.

Order matters: the key hint and the signature are checked before any file is read, so a forged signature
costs nothing to refuse, and the manifest is only trusted once its signature holds. Then the model is
re-hashed exactly as the signature says (method, hash, ignored paths, symlink policy) and every changed,
added or removed file is named.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from modelshield.core.errors import InputError, IntegrityError, MissingFileError
from modelshield.integrity.signing.bundle import read_bundle
from modelshield.integrity.signing.dsse import IN_TOTO_PAYLOAD_TYPE, pae
from modelshield.integrity.signing.keys import PublicKey, key_hint, key_type, load_public_key, verify_bytes
from modelshield.integrity.signing.manifest import Manifest, build_manifest, relative_ignore, split_shard
from modelshield.integrity.signing.sign import default_signature_path, signature_ignore
from modelshield.integrity.signing.statement import parse_statement, root_digest

_SHOWN = 5


@dataclass(frozen=True)
class VerifiedModel:
    """What a successful verification proved: these files, with these digests, signed by this key."""

    path: Path
    signature: Path
    model_name: str
    key_type: str
    key_hint: str
    method: str
    hash_type: str
    digest: str
    resources: dict[str, str]
    ignored: tuple[str, ...]

    @property
    def files(self) -> list[str]:
        """The signed files (shards folded into their file)."""
        names = self.resources if self.method == "files" else (split_shard(n)[0] for n in self.resources)
        return sorted(set(names))


def _names(items: Iterable[str], method: str) -> list[str]:
    return sorted({n if method == "files" else split_shard(n)[0] for n in items})


def _listing(what: str, names: list[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return f"{what} {', '.join(names[:_SHOWN])}{more}"


def _differences(expected: Manifest, actual: Manifest) -> str:
    """One line naming what changed, was added or went missing, by file."""
    method = expected.serialization.method
    want, got = expected.digests, actual.digests
    changed = _names((n for n in want.keys() & got.keys() if want[n] != got[n]), method)
    added = [n for n in _names(got.keys() - want.keys(), method) if n not in changed]
    removed = [n for n in _names(want.keys() - got.keys(), method) if n not in changed]
    parts = [_listing(w, n) for w, n in (("changed", changed), ("added", added), ("removed", removed)) if n]
    return "; ".join(parts)


def _check_signature(sig_path: Path, key: PublicKey) -> bytes:
    """The signed statement bytes, once the key and the DSSE signature both check out."""
    bundle = read_bundle(sig_path)
    hint = key_hint(key)
    if bundle.key_hint is not None and bundle.key_hint != hint:
        raise IntegrityError(
            f"{sig_path} was signed by a different key (key hint {bundle.key_hint[:16]}…, "
            f"the given {key_type(key)} key is {hint[:16]}…)"
        )
    env = bundle.envelope
    if len(env.signatures) != 1:
        raise IntegrityError(f"{sig_path} holds {len(env.signatures)} DSSE signatures; a bundle carries exactly one")
    if not verify_bytes(key, env.signatures[0][0], pae(env.payload_type, env.payload)):
        raise IntegrityError(
            f"{sig_path}: the signature does not verify with the given {key_type(key)} key "
            "(signature or statement altered, or a different key or algorithm)"
        )
    if env.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise IntegrityError(f"{sig_path}: payload type {env.payload_type!r} is not {IN_TOTO_PAYLOAD_TYPE}")
    return env.payload


def verify_model(
    path: str | os.PathLike[str],
    public_key: PublicKey | str | os.PathLike[str],
    signature_path: str | os.PathLike[str] | None = None,
    ignore: Iterable[str | os.PathLike[str]] = (),
    *,
    workers: int | None = None,
) -> VerifiedModel:
    """Check that the model at ``path`` is exactly what ``public_key``'s holder signed.

    Raises ``IntegrityError`` with a one-line reason on any tamper (a changed, added or removed file, an
    edited signature, a wrong key or algorithm, an unsafe symlink), ``MissingFileError`` when the model or
    signature is absent, ``InputError`` for an unusable key. ``ignore`` skips further paths (relative to
    the model folder) on top of those the signature records.
    """
    model = Path(path)
    if not model.exists() and not model.is_symlink():
        raise MissingFileError(f"model {model} does not exist")
    sig_path = Path(signature_path) if signature_path is not None else default_signature_path(model)
    key = load_public_key(public_key)
    extra = [relative_ignore(p, model) for p in ignore]
    if workers is not None and workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    payload = _check_signature(sig_path, key)
    expected = parse_statement(payload)
    single = bool(expected.digests) and all(n == "." or n.startswith(".:") for n in expected.digests)
    if model.is_dir() and single:
        raise IntegrityError(f"{sig_path} signs a single file, but {model} is a folder")
    if not model.is_dir() and expected.digests and not single:
        raise IntegrityError(
            f"{sig_path} signs a folder of {len(expected.digests)} files, but {model} is a single file"
        )
    try:
        actual = build_manifest(model, expected.serialization, [*extra, *signature_ignore(model, sig_path)], workers)
    except InputError as exc:
        raise IntegrityError(f"model {model} cannot be verified: {exc}") from None
    if actual.digests != expected.digests:
        raise IntegrityError(f"model {model} does not match its signature: {_differences(expected, actual)}")
    return VerifiedModel(
        path=model,
        signature=sig_path,
        model_name=expected.model_name,
        key_type=key_type(key),
        key_hint=key_hint(key),
        method=expected.serialization.method,
        hash_type=expected.serialization.hash_type,
        digest=root_digest([r["digest"] for r in expected.resources()]),
        resources=dict(expected.digests),
        ignored=tuple(sorted({*expected.serialization.ignore_paths, *extra})),
    )
