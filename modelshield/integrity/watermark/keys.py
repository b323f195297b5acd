"""Watermark keys: a secret byte string from which every watermark detail is derived, reproducibly.

A key file holds 32 random bytes (mode 0600, refused when others can read it, like ssh does with
private keys). Projection matrices, messages, trigger inputs and labels all come from
``HMAC-SHA256(key, context)`` expanded with SHAKE-256: portable across machines and library
versions (no framework RNG whose stream could change), and independent for different contexts.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import numpy as np
import torch

from modelshield.core.errors import InputError, KeyringError, MissingFileError
from modelshield.integrity.keys import atomic_output, check_private

KEY_BYTES = 32
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 4096
_DOMAIN = b"modelshield-watermark/v1/"


def check_key(key: bytes) -> bytes:
    """Refuse keys too short to be secret (under 128 bits) or too large to be a key at all."""
    if not isinstance(key, bytes | bytearray):
        raise InputError(f"a watermark key is bytes, not {type(key).__name__}")
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise KeyringError(
            f"a watermark key must hold {MIN_KEY_BYTES}-{MAX_KEY_BYTES} bytes, this one holds {len(key)}",
            hint="create one with: modelshield watermark keygen --out KEYFILE",
        )
    return bytes(key)


def generate_key(path: str | os.PathLike[str]) -> Path:
    """Write 32 random bytes to a new file with mode 0600; an existing file is never overwritten."""
    p = Path(path)
    if p.exists():
        raise InputError(f"{p} already exists; a key is never overwritten", hint="choose another --out")
    try:
        with atomic_output(p, mode=0o600, exclusive=True) as f:
            f.write(secrets.token_bytes(KEY_BYTES))
    except FileExistsError:
        raise InputError(f"{p} already exists; a key is never overwritten", hint="choose another --out") from None
    return p


def load_key(path: str | os.PathLike[str]) -> bytes:
    """Read a key file, refusing one that group or others can read."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(
            f"watermark key {p} does not exist", hint=f"create it: modelshield watermark keygen --out {p}"
        )
    check_private(p, "watermark key")
    if p.stat().st_size > MAX_KEY_BYTES:
        raise KeyringError(f"watermark key {p} is {p.stat().st_size} bytes, not a key file")
    try:
        return check_key(p.read_bytes())
    except KeyringError as e:
        raise KeyringError(f"watermark key {p}: {e}", hint=e.hint) from None


def key_stream(key: bytes, context: str, nbytes: int) -> bytes:
    """``nbytes`` pseudo-random bytes bound to the key and a context string (independent per context)."""
    seed = hmac.new(check_key(key), _DOMAIN + context.encode("utf-8"), hashlib.sha256).digest()
    return hashlib.shake_256(seed).digest(nbytes)


def key_uniform(key: bytes, context: str, n: int) -> np.ndarray:
    """``n`` floats uniform on [0, 1) with 53 random bits each."""
    words = np.frombuffer(key_stream(key, context, 8 * n), dtype="<u8")
    return (words >> np.uint64(11)).astype(np.float64) * 2.0**-53


def key_normal(key: bytes, context: str, n: int) -> torch.Tensor:
    """``n`` standard normal float32 values (Box-Muller on key-derived uniforms)."""
    half = (n + 1) // 2
    u = key_uniform(key, context, 2 * half)
    radius = np.sqrt(-2.0 * np.log1p(-u[:half]))  # 1 - u lies in (0, 1], so the log is finite
    angle = 2.0 * np.pi * u[half:]
    z = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:n]
    return torch.from_numpy(z.astype(np.float32))


def key_integers(key: bytes, context: str, n: int, high: int) -> torch.Tensor:
    """``n`` integers uniform on ``[0, high)`` (int64)."""
    return torch.from_numpy(np.floor(key_uniform(key, context, n) * high).astype(np.int64))
