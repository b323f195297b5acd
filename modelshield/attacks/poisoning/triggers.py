"""Backdoor triggers: what a poisoned row carries, and what an attacker stamps on a test input.

Each trigger is a frozen value with ``apply(x) -> x`` that returns triggered copies, so the same
object poisons the training rows and calls up the backdoor at test time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from modelshield.core.errors import InputError

Position = Literal["random", "start", "end"]


@dataclass(frozen=True, eq=False)  # arrays inside: equality is identity
class PatchTrigger:
    """A small pattern pasted over the same pixels of every image (BadNets).

    ``pattern`` is (h, w), pasted at rows ``row:row+h`` and columns ``col:col+w`` of the last two
    axes of images shaped (N, H, W) or (N, C, H, W), the same in every channel.
    """

    pattern: np.ndarray
    row: int
    col: int

    def apply(self, x: np.ndarray) -> np.ndarray:
        x = as_images(x, "a patch trigger")
        h, w = self.pattern.shape
        if self.row + h > x.shape[-2] or self.col + w > x.shape[-1]:
            raise InputError(
                f"a {h}×{w} patch at ({self.row}, {self.col}) does not fit {x.shape[-2]}×{x.shape[-1]} images"
            )
        out = x.copy()
        out[..., self.row : self.row + h, self.col : self.col + w] = self.pattern.astype(x.dtype)
        return out


@dataclass(frozen=True, eq=False)  # arrays inside: equality is identity
class BlendTrigger:
    """A whole-image pattern mixed into every input: ``(1 - alpha) * x + alpha * pattern``."""

    pattern: np.ndarray
    alpha: float

    def apply(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.shape[1:] != self.pattern.shape:
            raise InputError(
                f"a blend trigger of shape {self.pattern.shape} does not fit inputs of shape {x.shape[1:]}"
            )
        return ((1.0 - self.alpha) * x + self.alpha * self.pattern).astype(x.dtype)


@dataclass(frozen=True)
class TokenTrigger:
    """Trigger words inserted into texts split on whitespace.

    ``position`` puts the tokens (in order, as one run) at the start, at the end, or at a random
    word boundary drawn per text from ``seed``; texts come back as an object array of str.
    """

    tokens: tuple[str, ...]
    position: Position = "random"
    seed: int = 0

    def apply(self, x: np.ndarray) -> np.ndarray:
        texts = np.asarray(x, dtype=object)
        if texts.ndim != 1 or not all(isinstance(t, str) for t in texts):
            raise InputError("a token trigger applies to a 1-D array of texts (str)")
        rng = np.random.default_rng(self.seed)
        out = np.empty(len(texts), dtype=object)
        for i, text in enumerate(texts):
            words = text.split()
            at = {"start": 0, "end": len(words)}.get(self.position)
            at = int(rng.integers(0, len(words) + 1)) if at is None else at
            out[i] = " ".join([*words[:at], *self.tokens, *words[at:]])
        return out


@dataclass(frozen=True)
class FeatureTrigger:
    """Fixed values written into chosen columns of tabular rows (N, D)."""

    columns: tuple[int, ...]
    values: tuple[float, ...]

    def apply(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2 or max(self.columns) >= x.shape[1]:
            raise InputError(
                f"a feature trigger on columns {list(self.columns)} needs rows (N, D) with D > {max(self.columns)}"
            )
        out = x.copy()
        out[:, list(self.columns)] = np.asarray(self.values, dtype=x.dtype)
        return out


def token_tuple(tokens: Sequence[str] | str) -> tuple[str, ...]:
    """Trigger tokens as a tuple of non-empty words without whitespace."""
    words = (tokens,) if isinstance(tokens, str) else tuple(tokens)
    if not words or not all(isinstance(t, str) and t and not any(c.isspace() for c in t) for t in words):
        raise InputError(f"trigger tokens must be non-empty words without spaces, got {list(words)!r}")
    return words


def as_images(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim not in (3, 4) or x.dtype.kind not in "biuf":
        raise InputError(f"{what} applies to numeric images (N, H, W) or (N, C, H, W), got shape {x.shape}")
    return x
