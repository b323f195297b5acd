"""Verification on load: a model with a signature or a provenance lock entry is checked before it is read.

Where the signature is looked for, first match wins: the path given (``signature=`` / ``[verify] signature``,
a bare name meaning "beside the model"), ``<file>.sig``, then ``model.sig`` in the model's folder. A
signature over a single file verifies that file; one over the folder verifies the whole folder and must
cover the file. A signature with no public key configured is refused unless the user opts out, because
silently loading an unverifiable signed model is how a swapped model gets through.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from modelshield.core.errors import InputError, IntegrityError, MissingFileError
from modelshield.core.settings import VerifyDefaults
from modelshield.integrity.provenance import LOCK_NAME, ArtifactResult, load_lock, verify
from modelshield.integrity.signing.bundle import read_bundle
from modelshield.integrity.signing.sign import SIGNATURE_NAME
from modelshield.integrity.signing.statement import parse_statement
from modelshield.integrity.signing.verify import VerifiedModel, verify_model

_NO_KEY_HINT = (
    "set MODELSHIELD_VERIFY_KEY=signer.pub.pem or [verify] public_key in modelshield.toml; "
    "to load it unverified anyway set MODELSHIELD_ALLOW_UNVERIFIED=1"
)


@dataclass(frozen=True)
class LoadCheck:
    """What was proven about a model before loading it."""

    signature: VerifiedModel | None = None
    lock_entries: tuple[str, ...] = ()
    unverified_signature: Path | None = None


def find_signature(model: Path, configured: Path | None = None) -> Path | None:
    """The signature that covers ``model``, if any (see the module docstring for the search order)."""
    if configured is not None:
        where = configured if configured.is_absolute() or configured.parent != Path() else model.parent / configured
        if not where.is_file():
            raise MissingFileError(f"signature {where} (configured for {model}) does not exist")
        return where
    for candidate in (model.with_name(model.name + ".sig"), model.parent / SIGNATURE_NAME):
        if candidate.is_file():
            return candidate
    return None


def _verify_signature(model: Path, sig: Path, key: Path) -> VerifiedModel:
    """Verify the file alone or its whole folder, whichever the signature signs."""
    signed = parse_statement(read_bundle(sig).envelope.payload).digests  # routing only; verify_model checks it
    if all(n == "." or n.startswith(".:") for n in signed):
        return verify_model(model, key, sig)
    result = verify_model(model.parent, key, sig)
    if model.name not in result.files:
        raise IntegrityError(f"{sig} signs {model.parent} but not {model.name} (it is ignored by the signature)")
    return result


def _lock_problem(result: ArtifactResult) -> str:
    parts = [*result.problems]
    parts += [
        f"{what} {', '.join(names[:5])}"
        for what, names in (("changed", result.changed), ("removed", result.missing), ("added", result.extra))
        if names
    ]
    return "; ".join(parts) or result.status


def _check_lock(model: Path, lock: Path) -> tuple[str, ...]:
    """Re-hash every lock entry that is this file or a folder holding it; refuse on any mismatch."""
    root = lock.absolute().parent
    real = model.resolve()
    names = []
    for name, entry in load_lock(lock).items():
        target = (root / entry.path).resolve()
        if real == target or target in real.parents:
            names.append(name)
    if names:
        for result in verify(lock, names).results:
            if result.status != "ok":
                raise IntegrityError(
                    f"{model} does not match provenance lock entry {result.name!r} in {lock}: {_lock_problem(result)}",
                    hint="re-pin it only if the change is trusted",
                )
    return tuple(names)


def check_before_load(
    path: str | os.PathLike[str],
    settings: VerifyDefaults,
    public_key: str | os.PathLike[str] | None = None,
    signature: str | os.PathLike[str] | None = None,
    allow_unverified: bool | None = None,
) -> LoadCheck:
    """Verify a model file's signature and lock entry before it is loaded; arguments override ``settings``."""
    model = Path(path)
    key = Path(public_key) if public_key is not None else settings.public_key
    sig = find_signature(model, Path(signature) if signature is not None else settings.signature)
    allow = settings.allow_unverified if allow_unverified is None else allow_unverified
    lock = settings.lock
    if lock is not None and not lock.is_file():
        raise MissingFileError(f"provenance lock {lock} (from [verify] lock / MODELSHIELD_LOCK) does not exist")
    lock = lock or (Path(LOCK_NAME) if Path(LOCK_NAME).is_file() else None)
    if sig is None and settings.require_signature:
        raise IntegrityError(
            f"{model} has no signature ({model.name}.sig or {SIGNATURE_NAME} beside it) and "
            "[verify] require_signature is set",
            hint="sign it: modelshield sign PATH --key KEY",
        )
    verified = unverified = None
    if sig is not None and key is not None:
        verified = _verify_signature(model, sig, key)
    elif sig is not None and not allow:
        raise InputError(f"{model} is signed ({sig}) but no public key is configured to verify it", hint=_NO_KEY_HINT)
    elif sig is not None:
        unverified = sig
    entries = _check_lock(model, lock) if lock is not None else ()
    return LoadCheck(verified, entries, unverified)
