"""Small helpers shared by the evasion attacks: parameter checks, per-sample shapes, RNG."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from modelshield.core.errors import InputError

NORMS = ("linf", "l2")


def check_norm(norm: str) -> str:
    """Return ``norm`` if it is one the attacks support, else raise :class:`InputError`."""
    if norm not in NORMS:
        raise InputError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    return norm


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """A finite number > 0 (or ≥ 0 with ``allow_zero``), else :class:`InputError`."""
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = "≥ 0" if allow_zero else "> 0"
        raise InputError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def check_count(name: str, value: int, minimum: int = 1) -> int:
    """An integer ≥ ``minimum``, else :class:`InputError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return value


def check_fraction(name: str, value: float) -> float:
    """A number in (0, 1], else :class:`InputError`."""
    if not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise InputError(f"{name} must lie in (0, 1], got {value!r}")
    return float(value)


def batch_view(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a per-sample (N,) tensor to (N, 1, ..., 1) so it broadcasts against ``like``."""
    return v.reshape((-1,) + (1,) * (like.ndim - 1))


def flat_norm(v: Tensor, p: float = 2.0) -> Tensor:
    """Per-sample norm over all non-batch dimensions: (N, ...) -> (N,)."""
    return torch.linalg.vector_norm(v.flatten(1), ord=p, dim=1)


def copy_rows_(dst: Tensor, src: Tensor, rows: Tensor) -> None:
    """``dst[i] = src[i]`` where ``rows[i]``, in place: a best-so-far update that touches only the rows that changed."""
    idx = torch.nonzero(rows).squeeze(1)
    if idx.numel() == rows.numel():
        dst.copy_(src)
    elif idx.numel():
        dst.index_copy_(0, idx, src.index_select(0, idx))
