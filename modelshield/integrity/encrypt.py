"""Encrypted checkpoints: AES-256-GCM envelope encryption, streamed chunk by chunk, with key rotation.

Each file gets a random 256-bit data key (DEK); a named key-encryption key (KEK, see ``keys.py``) wraps
it. Rotating the KEK re-wraps the 32-byte DEK and copies the payload unchanged.

File format ``MSENC1`` (version 1)::

    magic     6 bytes     b"MSENC1"
    length    4 bytes     big-endian byte length of the header
    header    JSON        canonical: sorted keys, no spaces; bytes fields in base64
        version         1
        kek_id          id of the KEK that wraps the DEK
        file_id         16 random bytes, the file's identity (kept across rotations)
        nonce_prefix    7 random bytes, the first bytes of every chunk nonce
        chunk_size      plaintext bytes per chunk (default 1 MiB)
        plaintext_size  total plaintext bytes
        wrap_nonce      12 random bytes
        wrapped_key     AES-256-GCM(KEK, DEK), 48 bytes, AAD = {"kek_id", payload digest}
    payload   max(1, ceil(plaintext_size / chunk_size)) chunks, each AES-256-GCM(DEK, chunk) + 16-byte tag
              (an empty file has one empty chunk)

Chunks follow STREAM (Hoang, Reyhanitabar, Rogaway, Vizár, "Online Authenticated-Encryption and its
Nonce-Reuse Misuse-Resistance", CRYPTO 2015, https://eprint.iacr.org/2015/189): chunk ``i`` is sealed
with nonce ``nonce_prefix || i (4 bytes BE) || final (1 byte)`` and AAD ``payload digest || i || final``,
where the payload digest is SHA-256 of the canonical JSON of version, file_id, nonce_prefix, chunk_size
and plaintext_size. So a flipped bit, swapped, dropped, appended or truncated chunks, and any header edit
fail authentication. The KEK fields stay out of the chunk AAD so rotation leaves the payload byte-identical;
they are authenticated by the wrap instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import shutil
import stat
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from modelshield.core.errors import FormatError, InputError, IntegrityError, MissingFileError
from modelshield.integrity.keys import Keyring, atomic_output, check_key_id

MAGIC = b"MSENC1"
FORMAT_VERSION = 1
DEFAULT_CHUNK_SIZE = 1 << 20
MIN_CHUNK_SIZE = 1 << 10
MAX_CHUNK_SIZE = 1 << 26  # bounds the memory a forged header could make decrypt allocate
MAX_HEADER_BYTES = 1 << 16
TAG_BYTES = 16
MAX_CHUNKS = 1 << 32  # the 4-byte chunk counter in the nonce
_LENGTHS = {"file_id": 16, "nonce_prefix": 7, "wrap_nonce": 12, "wrapped_key": 32 + TAG_BYTES}


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Header:
    """The plaintext header of an encrypted file: everything but the payload, no secrets in the clear."""

    kek_id: str
    file_id: bytes
    nonce_prefix: bytes
    chunk_size: int
    plaintext_size: int
    wrap_nonce: bytes
    wrapped_key: bytes
    version: int = FORMAT_VERSION

    @property
    def chunks(self) -> int:
        """Number of sealed chunks; at least one so that even an empty file carries a final, authenticated chunk."""
        return max(1, -(-self.plaintext_size // self.chunk_size))

    @property
    def payload_size(self) -> int:
        """Bytes of payload after the header."""
        return self.plaintext_size + self.chunks * TAG_BYTES

    def chunk_length(self, index: int) -> int:
        """Plaintext bytes in chunk ``index``; only the last one may be short."""
        return min(self.chunk_size, self.plaintext_size - index * self.chunk_size)

    def payload_digest(self) -> bytes:
        """SHA-256 of the fields that describe the payload; bound into every chunk and into the key wrap."""
        doc = {k: v for k, v in self._json().items() if k not in ("kek_id", "wrap_nonce", "wrapped_key")}
        return hashlib.sha256(_canonical(doc)).digest()

    def wrap_aad(self) -> bytes:
        """AAD for the wrapped key: ties the DEK to this KEK id and this very payload description."""
        return _canonical({"kek_id": self.kek_id, "payload": self.payload_digest().hex()})

    def chunk_nonce_aad(self, digest: bytes, index: int) -> tuple[bytes, bytes]:
        """STREAM nonce and AAD for chunk ``index``: position and the final flag in both."""
        tail = index.to_bytes(4, "big") + (b"\x01" if index == self.chunks - 1 else b"\x00")
        return self.nonce_prefix + tail, digest + tail

    def to_bytes(self) -> bytes:
        """Magic, length and canonical JSON: what starts the file."""
        body = _canonical(self._json())
        return MAGIC + len(body).to_bytes(4, "big") + body

    def describe(self) -> dict[str, Any]:
        """What ``inspect`` shows: identifiers and sizes, never the wrapped key or nonces."""
        return {
            "format": MAGIC.decode(),
            "version": self.version,
            "cipher": "AES-256-GCM, STREAM chunks",
            "kek_id": self.kek_id,
            "file_id": self.file_id.hex(),
            "chunk_size": self.chunk_size,
            "chunks": self.chunks,
            "plaintext_size": self.plaintext_size,
            "encrypted_size": len(self.to_bytes()) + self.payload_size,
        }

    def _json(self) -> dict[str, Any]:
        return {k: _b64(v) if isinstance(v, bytes) else v for k, v in asdict(self).items()}

    @classmethod
    def parse(cls, raw: bytes, where: str) -> Header:
        """Decode and validate a header; anything but the canonical bytes of a well-formed header is tampering."""
        try:
            doc = json.loads(raw.decode("utf-8"))
            if isinstance(doc, dict) and doc.get("version") not in (None, FORMAT_VERSION):
                raise FormatError(
                    f"{where}: format version {doc['version']!r} is not supported (this is {FORMAT_VERSION})",
                    hint="upgrade modelshield",
                )
            if not isinstance(doc, dict) or set(doc) != {f.name for f in fields(cls)}:
                raise ValueError("fields")
            values: dict[str, Any] = {
                k: base64.b64decode(v, validate=True) if k in _LENGTHS else v for k, v in doc.items()
            }
            header = cls(**values)
            check_key_id(header.kek_id)
        except (ValueError, TypeError, binascii.Error, InputError):
            raise IntegrityError(f"{where}: the header is damaged") from None
        sizes_ok = all(
            isinstance(getattr(header, k), int) and not isinstance(getattr(header, k), bool)
            for k in ("chunk_size", "plaintext_size")
        )
        if not (
            sizes_ok
            and MIN_CHUNK_SIZE <= header.chunk_size <= MAX_CHUNK_SIZE
            and header.plaintext_size >= 0
            and header.chunks <= MAX_CHUNKS
            and all(len(getattr(header, k)) == n for k, n in _LENGTHS.items())
            and _canonical(header._json()) == raw
        ):
            raise IntegrityError(f"{where}: the header is damaged or was edited")
        return header


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _open(path: Path) -> BinaryIO:
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist or is not a file")
    return path.open("rb")


def _read_header(f: BinaryIO, where: str) -> Header:
    if f.read(len(MAGIC)) != MAGIC:
        raise FormatError(f"{where} is not a modelshield encrypted file (it does not start with {MAGIC.decode()})")
    prefix = f.read(4)
    length = int.from_bytes(prefix, "big")
    raw = f.read(length) if len(prefix) == 4 and length <= MAX_HEADER_BYTES else b""
    if not raw or len(raw) != length:
        raise IntegrityError(f"{where}: the header is truncated or has an impossible length")
    return Header.parse(raw, where)


def _wrap(header: Header, kek_id: str, kek: bytes, dek: bytes) -> Header:
    """The header with ``dek`` wrapped under ``kek`` (fresh wrap nonce); payload fields are kept as they are."""
    nonce = os.urandom(_LENGTHS["wrap_nonce"])
    target = replace(header, kek_id=kek_id, wrap_nonce=nonce)
    return replace(target, wrapped_key=AESGCM(kek).encrypt(nonce, dek, target.wrap_aad()))


def _unwrap(header: Header, keyring: Keyring, where: str) -> bytes:
    try:
        return AESGCM(keyring.key(header.kek_id)).decrypt(header.wrap_nonce, header.wrapped_key, header.wrap_aad())
    except InvalidTag:
        raise IntegrityError(
            f"{where}: the data key does not authenticate under KEK {header.kek_id!r}: "
            "the key with that id is not the one used, or the header was altered"
        ) from None


def read_header(path: Path | str) -> Header:
    """The header of an encrypted file, checked for form but not authenticated (that needs the key)."""
    p = Path(path)
    with _open(p) as f:
        return _read_header(f, str(p))


def encrypt_file(
    src: Path | str,
    dst: Path | str,
    keyring: Keyring,
    key_id: str | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Header:
    """Encrypt ``src`` into ``dst`` under a fresh data key wrapped by KEK ``key_id`` (default: the keyring's).

    Memory stays at about one chunk whatever the file size; ``dst`` appears only once it is complete.
    """
    src, dst = Path(src), Path(dst)
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise InputError(f"chunk size {chunk_size} is outside {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE} bytes")
    kek_id, kek = keyring.resolve(key_id)
    dek = AESGCM.generate_key(bit_length=256)
    with _open(src) as fin:
        size = os.fstat(fin.fileno()).st_size
        blank = Header(
            kek_id, os.urandom(_LENGTHS["file_id"]), os.urandom(_LENGTHS["nonce_prefix"]), chunk_size, size, b"", b""
        )
        if blank.chunks > MAX_CHUNKS:
            raise InputError(f"{src} needs more than {MAX_CHUNKS} chunks; use a larger chunk size")
        header = _wrap(blank, kek_id, kek, dek)
        aead, digest = AESGCM(dek), header.payload_digest()
        with atomic_output(dst) as fout:
            fout.write(header.to_bytes())
            for i in range(header.chunks):
                data = fin.read(header.chunk_length(i))
                if len(data) != header.chunk_length(i) or (i == header.chunks - 1 and fin.read(1)):
                    raise InputError(
                        f"{src} changed size while it was being encrypted",
                        hint="encrypt a checkpoint that is no longer being written",
                    )
                nonce, aad = header.chunk_nonce_aad(digest, i)
                fout.write(aead.encrypt(nonce, data, aad))
    return header


def decrypt_file(src: Path | str, dst: Path | str, keyring: Keyring) -> Header:
    """Decrypt ``src`` into ``dst``, authenticating every chunk; on any failure ``dst`` is left as it was."""
    src, dst = Path(src), Path(dst)
    where = str(src)
    with _open(src) as fin:
        header = _read_header(fin, where)
        aead, digest = AESGCM(_unwrap(header, keyring, where)), header.payload_digest()
        with atomic_output(dst) as fout:
            for i in range(header.chunks):
                want = header.chunk_length(i) + TAG_BYTES
                sealed = fin.read(want)
                if len(sealed) != want:
                    raise IntegrityError(f"{where} is truncated: chunk {i + 1} of {header.chunks} is incomplete")
                nonce, aad = header.chunk_nonce_aad(digest, i)
                try:
                    fout.write(aead.decrypt(nonce, sealed, aad))
                except InvalidTag:
                    raise IntegrityError(
                        f"{where}: chunk {i + 1} of {header.chunks} fails authentication "
                        "(altered, reordered or taken from another file)"
                    ) from None
            if fin.read(1):
                raise IntegrityError(f"{where} has data after its final chunk")
    return header


def rotate_file(path: Path | str, keyring: Keyring, new_key_id: str) -> Header:
    """Re-wrap the data key of ``path`` under KEK ``new_key_id``; the encrypted payload is copied byte for byte.

    Needs the old KEK once; afterwards only the new one is needed. The file is replaced atomically, mode kept.
    """
    p = Path(path)
    new_kek = keyring.key(check_key_id(new_key_id))
    with _open(p) as fin:
        old = _read_header(fin, str(p))
        header = _wrap(old, new_key_id, new_kek, _unwrap(old, keyring, str(p)))
        with atomic_output(p, mode=stat.S_IMODE(os.fstat(fin.fileno()).st_mode)) as fout:
            fout.write(header.to_bytes())
            shutil.copyfileobj(fin, fout, 1 << 22)
    return header
