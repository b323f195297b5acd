"""Secret files — one place for their mode check and PEM loading — and the key-encryption keys (KEKs) of
encrypted checkpoints: a 0600 JSON keyring, or CI secrets in the environment.

Secret files are written with ``atomic_output`` (``modelshield.core.files``: fsynced, 0600 from the first
byte, renamed or exclusively linked into place), refused on read when others can access them
(``check_private``), and PEM keys are read with ``read_private_pem`` / ``read_public_pem``.

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
import time
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from modelshield.core.errors import InputError, KeyringError, MissingFileError, ModelShieldError
from modelshield.core.files import atomic_output as atomic_output  # secret files are written with it

KEY_BYTES = 32
ENV_PREFIX = "MODELSHIELD_KEK_"
KEYRING_VERSION = 1
PRIVATE_MASK = 0o077  # a secret file: no access for group or others
GROUP_READ_MASK = 0o027  # ... or readable by its group, never writable
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


def check_private(path: Path, what: str, *, group_read: bool = False) -> None:
    """Refuse a secret file that others can read or write, as ssh does with private keys.

    ``group_read`` also lets the group read it (not write it): a Kubernetes secret mounted with ``fsGroup``.
    """
    mode = stat.S_IMODE(path.stat().st_mode)
    if os.name == "posix" and mode & (GROUP_READ_MASK if group_read else PRIVATE_MASK):
        raise KeyringError(f"{what} {path} is accessible to others (mode {mode:04o})", hint=f"chmod 600 {path}")


def read_private_pem(
    path: Path, what: str = "private key", password: bytes | None = None, error: type[ModelShieldError] = KeyringError
) -> PrivateKeyTypes:
    """A PEM private key from a file that must exist and be private; ``error`` is raised for what is not one."""
    if not path.is_file():
        raise MissingFileError(f"{what} {path} does not exist")
    check_private(path, what)
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password)
    except TypeError as exc:  # password missing, or given for an unencrypted key
        raise error(f"{what} {path}: {exc}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise error(f"{path} is not a PEM private key (or the password is wrong)") from None


def read_public_pem(
    path: Path, what: str = "public key", error: type[ModelShieldError] = KeyringError
) -> PublicKeyTypes:
    """A PEM public key from a file; a private key given by mistake is named as such."""
    if not path.is_file():
        raise MissingFileError(f"{what} {path} does not exist")
    data = path.read_bytes()
    try:
        return serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        hint = " (this looks like a private key; verify with the .pub.pem)" if b"PRIVATE KEY" in data else ""
        raise error(f"{path} is not a PEM public key{hint}") from None


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
        check_private(p, "keyring")
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
