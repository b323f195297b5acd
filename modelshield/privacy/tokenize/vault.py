"""The token key vault: versioned token keys with ids, stored wrapped by a key-encryption key (KEK).

A vault is one JSON file. Each token key is 64 random bytes known by an id and a version number; on disk
it is only ever AES-256-GCM(KEK, key) with the vault id, key id and KEK id as associated data, so a wrapped
key moved into another vault or under another id fails to open. The KEK is 32 bytes from the same keyring
as encrypted checkpoints (``modelshield crypto keygen``; the CLI resolves it), never stored here::

    {"version": 1, "vault_id": "<hex>", "kek_id": "kek-1", "default": "tok-2",
     "keys": {"tok-1": {"version": 1, "created": "...", "retired": "...", "nonce": "<b64>", "wrapped": "<b64>"},
              "tok-2": {"version": 2, "created": "...", "retired": null, ...}}}

Adding a key makes it the default; the one it replaces stays (retired) so that tokens made under it can
still be rotated or revealed. Rotation itself is a table operation (``table.rotate_csv``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from modelshield.core.errors import FormatError, InputError, IntegrityError, MissingFileError
from modelshield.core.files import atomic_output
from modelshield.privacy.tokenize.tokens import KEY_BYTES

VAULT_VERSION = 1
KEK_BYTES = 32
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class KeyInfo:
    """What the vault says about a key: never the key itself."""

    key_id: str
    version: int
    created: str
    retired: str | None
    default: bool


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _aad(vault_id: str, key_id: str, kek_id: str) -> bytes:
    return json.dumps({"kek_id": kek_id, "key_id": key_id, "vault_id": vault_id}, sort_keys=True).encode()


class Vault:
    """Open with ``Vault.create`` or ``Vault.open``; ``material(key_id)`` unwraps one token key."""

    def __init__(self, path: Path, doc: dict[str, Any], kek: bytes) -> None:
        self.path = path
        self._doc = doc
        self._kek = AESGCM(kek)

    def __repr__(self) -> str:
        return f"Vault({str(self.path)!r}, keys={len(self._doc['keys'])})"

    @classmethod
    def create(cls, path: Path | str, kek_id: str, kek: bytes) -> Vault:
        """A new, empty vault at ``path`` (refused if a file is there: it could hold the only copy of keys)."""
        path = Path(path)
        if path.exists():
            raise InputError(f"{path} exists; a vault is never overwritten")
        if len(kek) != KEK_BYTES:
            raise InputError(f"the key-encryption key must be {KEK_BYTES} bytes")
        doc = {"version": VAULT_VERSION, "vault_id": secrets.token_hex(16), "kek_id": kek_id, "default": None}
        vault = cls(path, {**doc, "keys": {}}, kek)
        vault._save(exclusive=True)
        return vault

    @classmethod
    def open(cls, path: Path | str, kek_for: Callable[[str], bytes]) -> Vault:
        """Read a vault; ``kek_for(kek_id)`` returns the KEK it names (from a keyring or the environment)."""
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"no vault at {path}", hint="create one: modelshield tokenize vault init")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"{path} is not a token vault ({exc})") from None
        if not isinstance(doc, dict) or doc.get("version") != VAULT_VERSION or not isinstance(doc.get("keys"), dict):
            raise FormatError(f"{path} is not a version-{VAULT_VERSION} token vault")
        kek = kek_for(str(doc["kek_id"]))
        if len(kek) != KEK_BYTES:
            raise InputError(f"the key-encryption key must be {KEK_BYTES} bytes")
        return cls(path, doc, kek)

    @property
    def kek_id(self) -> str:
        return str(self._doc["kek_id"])

    @property
    def default_id(self) -> str | None:
        default = self._doc.get("default")
        return str(default) if default else None

    def keys(self) -> list[KeyInfo]:
        """Every key, oldest first."""
        entries = sorted(self._doc["keys"].items(), key=lambda kv: int(kv[1]["version"]))
        return [
            KeyInfo(k, int(e["version"]), str(e["created"]), e.get("retired"), k == self.default_id) for k, e in entries
        ]

    def add_key(self, key_id: str | None = None) -> str:
        """Generate a key, make it the default and retire the previous default; returns its id."""
        keys: dict[str, Any] = self._doc["keys"]
        version = 1 + max((int(e["version"]) for e in keys.values()), default=0)
        key_id = key_id or f"tok-{version}"
        if not _ID.fullmatch(key_id):
            raise InputError(f"key id {key_id!r} is not valid (1-64 of letters, digits, '_', '-', '.')")
        if key_id in keys:
            raise InputError(f"the vault already has a key {key_id!r}; ids are never reused")
        nonce = secrets.token_bytes(12)
        wrapped = self._kek.encrypt(
            nonce, secrets.token_bytes(KEY_BYTES), _aad(self._doc["vault_id"], key_id, self.kek_id)
        )
        previous = self.default_id
        if previous is not None:
            keys[previous]["retired"] = _now()
        keys[key_id] = {
            "version": version,
            "created": _now(),
            "retired": None,
            "nonce": base64.b64encode(nonce).decode(),
            "wrapped": base64.b64encode(wrapped).decode(),
        }
        self._doc["default"] = key_id
        self._save()
        return key_id

    def resolve(self, key_id: str | None) -> str:
        """``key_id``, or the default key's id; an unknown id is an error naming the ones there are."""
        chosen = key_id or self.default_id
        if chosen is None:
            raise InputError(f"the vault {self.path} has no keys", hint="add one: modelshield tokenize vault add-key")
        if chosen not in self._doc["keys"]:
            raise InputError(f"no key {chosen!r} in the vault (it has: {', '.join(self._doc['keys']) or 'none'})")
        return chosen

    def material(self, key_id: str | None = None) -> bytes:
        """The 64 bytes of a token key (the default one when ``key_id`` is None)."""
        key_id = self.resolve(key_id)
        entry = self._doc["keys"][key_id]
        try:
            nonce, wrapped = base64.b64decode(entry["nonce"]), base64.b64decode(entry["wrapped"])
            return self._kek.decrypt(nonce, wrapped, _aad(self._doc["vault_id"], key_id, self.kek_id))
        except (InvalidTag, binascii.Error, KeyError):
            raise IntegrityError(
                f"token key {key_id!r} does not unwrap: wrong key-encryption key {self.kek_id!r}, or the vault was altered"
            ) from None

    def _save(self, exclusive: bool = False) -> None:
        with atomic_output(self.path, mode=0o600, exclusive=exclusive) as f:
            f.write(json.dumps(self._doc, indent=2, sort_keys=True).encode("utf-8"))
