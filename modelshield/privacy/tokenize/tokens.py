"""Deterministic tokens: the same value always gives the same token under one key, so joins survive.

Three methods, one per need:

- ``hmac``: HMAC-SHA256, truncated to 128 bits, base64url (22 characters). One-way: nobody, not even the
  key holder, turns a token back into the value; use it where the value is never needed again.
- ``siv``: AES-SIV (RFC 5297, AES-256-SIV from ``cryptography``), base64url. Deterministic *authenticated*
  encryption: reversible with the key, and a changed token fails to decrypt instead of revealing garbage.
  SIV is the mode built for deterministic use (the synthetic IV is a MAC of the input), where AES-GCM with
  a fixed nonce would leak the XOR of plaintexts.
- ``ff1``: FF1 format-preserving encryption (``ff1.py``): digits stay digits (``alphabet="digits"``) or
  letters and digits stay letters and digits (``"alnum"``), every other character (spaces, dashes, ``@``)
  stays where it was, so a tokenized card number still fits a ``CHAR(19)`` column and passes format checks.

Each method gets its own subkey, derived with HKDF-SHA256 from the vault key, so one key id serves all
three without using one AES key in two modes. ``context`` (HMAC message prefix, SIV associated data, FF1
tweak) separates domains: the same value in two contexts gets unrelated tokens. Keep it the same in every
table that must join.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import string

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from modelshield.core.errors import InputError, IntegrityError
from modelshield.privacy.tokenize.ff1 import FF1

KEY_BYTES = 64  # vault key material; subkeys are derived from it
HMAC_TOKEN_BYTES = 16
ALPHABETS = {"digits": string.digits, "alnum": string.digits + string.ascii_letters}


class Method(enum.StrEnum):
    """How values become tokens."""

    hmac = "hmac"
    siv = "siv"
    ff1 = "ff1"


def _subkey(material: bytes, label: str, length: int) -> bytes:
    return HKDF(hashes.SHA256(), length, salt=None, info=f"modelshield/tokenize/{label}".encode()).derive(material)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InputError(f"{text[:24]!r} is not a token of this method (base64url expected)") from None


class Tokenizer:
    """Tokenize and detokenize values with one key (64 bytes of vault material) and one method."""

    def __init__(self, material: bytes, method: Method | str, *, context: str = "", alphabet: str = "digits") -> None:
        if len(material) != KEY_BYTES:
            raise InputError(f"token keys are {KEY_BYTES} bytes, got {len(material)}")
        if alphabet not in ALPHABETS:
            raise InputError(f"unknown FF1 alphabet {alphabet!r}; choose one of {sorted(ALPHABETS)}")
        self.method = Method(method)
        self.context = context.encode("utf-8")
        self.alphabet = ALPHABETS[alphabet]
        self._index = {c: i for i, c in enumerate(self.alphabet)}
        if self.method is Method.hmac:
            self._hmac_key = _subkey(material, "hmac", 32)
        elif self.method is Method.siv:
            self._siv = AESSIV(_subkey(material, "siv", 64))
        else:
            self._ff1 = FF1(_subkey(material, "ff1", 32), len(self.alphabet))

    @property
    def reversible(self) -> bool:
        """HMAC tokens cannot be turned back into values; SIV and FF1 tokens can, with the key."""
        return self.method is not Method.hmac

    def tokenize(self, value: str) -> str:
        """The token for ``value``: equal values give equal tokens."""
        if self.method is Method.hmac:
            digest = hmac.new(self._hmac_key, self.context + b"\x00" + value.encode("utf-8"), hashlib.sha256)
            return _b64(digest.digest()[:HMAC_TOKEN_BYTES])
        if self.method is Method.siv:
            return _b64(self._siv.encrypt(value.encode("utf-8"), [self.context]))
        return self._ff1_apply(value, decrypt=False)

    def detokenize(self, token: str) -> str:
        """The value behind ``token`` (SIV, FF1); a forged or foreign SIV token raises IntegrityError."""
        if self.method is Method.hmac:
            raise InputError("HMAC tokens are one-way: there is no value to reveal (use siv or ff1 to reveal later)")
        if self.method is Method.siv:
            try:
                return self._siv.decrypt(_unb64(token), [self.context]).decode("utf-8")
            except InvalidTag:
                raise IntegrityError(
                    "an AES-SIV token does not decrypt under this key and context (wrong key id, or altered)"
                ) from None
        return self._ff1_apply(token, decrypt=True)

    def _ff1_apply(self, value: str, *, decrypt: bool) -> str:
        """FF1 over the characters of the alphabet; the others keep their places."""
        positions = [i for i, c in enumerate(value) if c in self._index]
        if not positions:
            raise InputError(f"FF1 found no characters of its alphabet in a value of {len(value)} characters")
        numerals = [self._index[value[i]] for i in positions]
        out = self._ff1.decrypt(numerals, self.context) if decrypt else self._ff1.encrypt(numerals, self.context)
        chars = list(value)
        for i, x in zip(positions, out, strict=True):
            chars[i] = self.alphabet[x]
        return "".join(chars)
