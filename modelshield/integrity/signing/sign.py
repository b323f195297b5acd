"""Sign a model folder or file into an OpenSSF model-signing signature (``model.sig``)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from modelshield.core.errors import InputError, MissingFileError
from modelshield.integrity.keys import atomic_output
from modelshield.integrity.signing.bundle import Bundle
from modelshield.integrity.signing.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, pae
from modelshield.integrity.signing.keys import PrivateKey, key_hint, load_private_key, sign_bytes
from modelshield.integrity.signing.manifest import (
    GIT_PATHS,
    Serialization,
    build_manifest,
    relative_ignore,
)
from modelshield.integrity.signing.statement import statement_bytes

SIGNATURE_NAME = "model.sig"


def default_signature_path(model: Path) -> Path:
    """``<folder>/model.sig`` for a folder, ``<file>.sig`` beside a single file."""
    return model / SIGNATURE_NAME if model.is_dir() else model.with_name(model.name + ".sig")


def signature_ignore(model: Path, signature: Path) -> list[str]:
    """The signature's own path relative to the model folder, when it lives inside it (it cannot sign itself)."""
    if not model.is_dir():
        return []
    try:
        return [signature.absolute().resolve().relative_to(model.resolve()).as_posix()]
    except ValueError:
        return []


def sign_model(
    path: str | os.PathLike[str],
    private_key: PrivateKey | str | os.PathLike[str],
    signature_path: str | os.PathLike[str] | None = None,
    ignore: Iterable[str | os.PathLike[str]] = (),
    *,
    password: bytes | None = None,
    allow_symlinks: bool = False,
    ignore_git_paths: bool = True,
    hash_type: str = "sha256",
    shard_size: int | None = None,
    workers: int | None = None,
) -> Path:
    """Hash every file of the model in parallel, sign the manifest, write the signature; returns its path.

    The defaults (whole-file SHA-256, ``.git*`` ignored, symlinks refused) are model-signing's, so its
    verifier accepts the result. ``shard_size`` switches to per-shard digests, which parallelise one huge
    file but which model-signing 1.1.1 cannot verify (it reads the shard size back as a float).
    """
    model = Path(path)
    if not model.exists():
        raise MissingFileError(f"{model} does not exist")
    key = load_private_key(private_key, password)
    sig_path = Path(signature_path) if signature_path is not None else default_signature_path(model)
    if sig_path.is_dir():
        raise InputError(f"signature path {sig_path} is a folder; give a file name such as {sig_path / SIGNATURE_NAME}")
    if shard_size is not None and shard_size < 1:
        raise InputError(f"shard size must be at least 1 byte, got {shard_size}")
    ignored = {relative_ignore(p, model) for p in ignore}
    if model.is_dir():
        ignored |= set(signature_ignore(model, sig_path))
    if ignore_git_paths:
        ignored |= set(GIT_PATHS)
    ser = Serialization(
        "files" if shard_size is None else "shards", hash_type, allow_symlinks, tuple(sorted(ignored)), shard_size
    )
    payload = statement_bytes(build_manifest(model, ser, workers=workers))
    signature = sign_bytes(key, pae(IN_TOTO_PAYLOAD_TYPE, payload))
    bundle = Bundle(Envelope(payload, IN_TOTO_PAYLOAD_TYPE, ((signature, ""),)), key_hint(key.public_key()))
    with atomic_output(sig_path, mode=0o644) as f:
        f.write(bundle.to_json().encode("utf-8"))
    return sig_path
