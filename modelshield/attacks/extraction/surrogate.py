"""Surrogate data an attacker owns: inputs from another distribution than the victim's training data.

``natural_patches`` cuts random crops out of the two photographs scikit-learn ships (a temple in China and
a flower, ``sklearn.datasets.load_sample_images``), resizes them to the victim's input shape and stretches
each to the victim's bounds. Against a digits model this is the Knockoff Nets setting: natural images that
share low-level statistics (edges, blobs) with the victim's data but contain no digit. Each patch is
labelled by its photograph and a 4 × 4 grid cell of where it came from, so the adaptive strategy has
arms to choose between.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from modelshield.core.errors import InputError

NATURAL_PATCHES = "natural-patches"


def natural_patches(
    n: int, input_shape: Sequence[int], *, bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0
) -> tuple[Tensor, Tensor]:
    """``n`` random crops of scikit-learn's sample photographs shaped ``input_shape`` (C, H, W), with region labels.

    Crops are 2 to 8 times the target size (so both textures and shapes appear), resized by area averaging,
    grey for one channel and RGB for three, each min–max stretched to ``bounds``.
    """
    from PIL import Image
    from sklearn.datasets import load_sample_images

    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise InputError(f"natural patches are images: input_shape must be (1 or 3, H, W), not {tuple(input_shape)}")
    c, h, w = (int(s) for s in input_shape)
    rng = np.random.default_rng(seed)
    photos = load_sample_images().images
    out = np.empty((n, c, h, w), dtype=np.float32)
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        k = int(rng.integers(len(photos)))
        photo = photos[k]
        scale = rng.uniform(2.0, 8.0)
        ch, cw = min(int(h * scale), photo.shape[0]), min(int(w * scale), photo.shape[1])
        top, left = int(rng.integers(photo.shape[0] - ch + 1)), int(rng.integers(photo.shape[1] - cw + 1))
        crop = Image.fromarray(photo[top : top + ch, left : left + cw]).convert("L" if c == 1 else "RGB")
        pixels = np.asarray(crop.resize((w, h), Image.Resampling.BOX), dtype=np.float32).reshape(h, w, -1)
        lo, hi = pixels.min(), pixels.max()
        out[i] = ((pixels - lo) / max(float(hi - lo), 1e-6)).transpose(2, 0, 1)
        cell = int(4 * (top + ch / 2) / photo.shape[0]) * 4 + int(4 * (left + cw / 2) / photo.shape[1])
        labels[i] = k * 16 + cell
    low, high = bounds
    return torch.from_numpy(low + out * (high - low)), torch.from_numpy(labels)
