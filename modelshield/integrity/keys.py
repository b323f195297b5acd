"""Key-encryption keys (KEKs) for encrypted checkpoints: a 0600 JSON keyring, or CI secrets in the environment.

A KEK is 32 random bytes known by an id; it only ever wraps per-file data keys (see ``encrypt.py``), so
rotating a KEK means re-wrapping small data keys, never re-encrypting checkpoints.

Keyring file (JSON, mode 0600, refused if group/world readable, like ssh does with private keys)::

    {"version": 1, "default": "k2", "keys": {"k1": "<base64 32 bytes>", "k2": "..."}}

A key that is not in the file is looked up in ``MODELSHIELD_KEK_<ID>`` (base64; the id upper-cased, ``-``
and ``.`` as ``_``), so CI can decrypt with a secret and no keyring file at all.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from modelshield.core.errors import InputError, KeyringError, MissingFileError

KEY_BYTES = 32
ENV_PREFIX = "MODELSHIELD_KEK_"
KEYRING_VERSION = 1
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_key_id(key_id: str) -> str:
    """Ids travel in file headers and environment variable names, so keep them short and plain."""
    if not _ID_PATTERN.fullmatch(key_id):
        raise InputError(f"key id {key_id!r} is not valid (1-64 of letters, digits, '_', '-', '.'; start alphanumeric)")
    return key_id


def env_var(key_id: str) -> str:
    """The environment variable that may hold the KEK with this id."""
    return ENV_PREFIX + re.sub(r"[-.]", "_", key_id).upper()


def _decode_key(text: str, where: str) -> bytes:
    """Base64 to a 32-byte key; the error names where the key came from, never the key."""
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise KeyringError(f"{where}: the key is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise KeyringError(f"{where}: the key is {len(key)} bytes, AES-256 needs {KEY_BYTES}")
    return key


@contextmanager
def atomic_output(dst: Path, mode: int = 0o600, exclusive: bool = False) -> Iterator[BinaryIO]:
    """Write beside ``dst`` and rename only on success, so a failure leaves no partial file and clobbers nothing.

    The file is private (0600) while written; ``mode`` is what it gets when it is renamed into place.
    ``exclusive`` links it into place instead, which fails with ``FileExistsError`` if ``dst`` appeared
    meanwhile: two writers of a new key can never overwrite each other.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if exclusive:
            os.link(tmp, dst)
            os.unlink(tmp)
        else:
            os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Keyring:
    """Named KEKs from a keyring file plus, on demand, the environment. Its repr never shows a key."""

    def __init__(self, keys: dict[str, bytes], default_id: str | None = None, path: Path | None = None) -> None:
        self._keys = dict(keys)
        self.default_id = default_id
        self.path = path

    def __repr__(self) -> str:
        return f"Keyring(path={self.path!s}, ids={sorted(self._keys)}, default={self.default_id})"

    @property
    def ids(self) -> list[str]:
        """Ids stored in the keyring file (environment keys are not listed: they are looked up by id)."""
        return sorted(self._keys)

    @classmethod
    def load(cls, path: Path | str | None) -> Keyring:
        """Read a keyring file; ``None`` gives an empty keyring that resolves ids from the environment only."""
        if path is None:
            return cls({})
        p = Path(path)
        if not p.is_file():
            raise MissingFileError(
                f"keyring {p} does not exist", hint=f"create it: modelshield crypto keygen --keyring {p}"
            )
        mode = stat.S_IMODE(p.stat().st_mode)
        if os.name == "posix" and mode & 0o077:
            raise KeyringError(f"keyring {p} is readable by others (mode {mode:04o})", hint=f"chmod 600 {p}")
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
            version, keys, default = doc["version"], doc["keys"], doc.get("default")
        except (ValueError, KeyError, TypeError):
            raise KeyringError(f"keyring {p} is not a modelshield keyring (JSON with 'version' and 'keys')") from None
        if version != KEYRING_VERSION or not isinstance(keys, dict):
            raise KeyringError(f"keyring {p}: unsupported keyring version {version!r}")
        decoded = {check_key_id(k): _decode_key(v, f"keyring {p}, key {k!r}") for k, v in keys.items()}
        if default is not None and default not in decoded:
            raise KeyringError(f"keyring {p}: default key {default!r} is not in the keyring")
        return cls(decoded, default, p)

    @classmethod
    def generate(cls, path: Path | str, key_id: str | None = None) -> Keyring:
        """Add a fresh random KEK to the keyring at ``path`` (created 0600 if missing); it becomes the default."""
        p = Path(path)
        ring = cls.load(p) if p.exists() else cls({}, None, p)
        new_id = check_key_id(key_id) if key_id else f"kek-{time.strftime('%Y%m%d')}-{secrets.token_hex(3)}"
        if new_id in ring._keys:
            raise KeyringError(f"keyring {p} already has a key {new_id!r}", hint="choose another --id")
        ring._keys[new_id] = secrets.token_bytes(KEY_BYTES)
        ring.default_id = new_id
        ring.save(p)
        return ring

    def save(self, path: Path | str | None = None) -> None:
        """Write the keyring atomically with mode 0600, so a crash never leaves a half-written or open keyring."""
        p = Path(path) if path is not None else self.path
        if p is None:
            raise InputError("this keyring has no file to save to")
        doc = {
            "version": KEYRING_VERSION,
            "default": self.default_id,
            "keys": {k: base64.b64encode(v).decode("ascii") for k, v in sorted(self._keys.items())},
        }
        with atomic_output(p) as f:
            f.write(json.dumps(doc, indent=2).encode("utf-8"))
        self.path = p

    def key(self, key_id: str) -> bytes:
        """The KEK with this id, from the file or else ``MODELSHIELD_KEK_<ID>``."""
        if key_id in self._keys:
            return self._keys[key_id]
        var = env_var(key_id)
        if var in os.environ:
            return _decode_key(os.environ[var], f"${var}")
        known = ", ".join(self.ids) or "none"
        where = f"keyring {self.path}" if self.path else "no keyring given"
        raise KeyringError(
            f"no key with id {key_id!r} ({where}; ids in it: {known})",
            hint=f"add it to the keyring or set {var} to its base64 value",
        )

    def resolve(self, key_id: str | None) -> tuple[str, bytes]:
        """The id and KEK to encrypt with: the one asked for, else the keyring's default."""
        chosen = key_id or self.default_id
        if chosen is None:
            raise KeyringError(
                "no key id given and the keyring has no default key",
                hint="pass --key-id, or create a key: modelshield crypto keygen --keyring K",
            )
        return chosen, self.key(check_key_id(chosen))
