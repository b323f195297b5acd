"""Evaluation data as tensors: scikit-learn's bundled sets today, files next.

Every loader returns a ``Dataset`` whose inputs are float32 in a known box (``bounds``) and whose
labels are int64 class indices, so an attack's ε means the same thing whatever the source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from modelshield.core.errors import InputError


@dataclass
class Dataset:
    """Inputs ``x`` (N, ...) float32 inside ``bounds`` and labels ``y`` (N,) int64."""

    x: Tensor
    y: Tensor
    name: str
    bounds: tuple[float, float] = (0.0, 1.0)
    class_names: list[str] | None = None

    @property
    def is_image(self) -> bool:
        """True for (N, C, H, W) data with 1 or 3 channels, where example grids make sense."""
        return self.x.ndim == 4 and self.x.shape[1] in (1, 3)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, n: int, seed: int = 0) -> "Dataset":
        """A reproducible random subset of at most ``n`` samples."""
        if n >= len(self):
            return self
        idx = torch.from_numpy(np.random.default_rng(seed).permutation(len(self))[:n])
        return Dataset(self.x[idx], self.y[idx], self.name, self.bounds, self.class_names)


SKLEARN_SETS = ("digits", "breast_cancer", "wine", "iris")


def sklearn_dataset(name: str, split: str = "test", test_size: float = 0.25, seed: int = 0) -> Dataset:
    """One of scikit-learn's bundled datasets, split reproducibly and scaled into [0, 1].

    Digits come as (N, 1, 8, 8) images (pixel values / 16); tabular sets are min-max scaled
    with the training split's range so test data is treated as unseen.
    """
    from sklearn import datasets as skd
    from sklearn.model_selection import train_test_split

    if name not in SKLEARN_SETS:
        raise InputError(f"unknown scikit-learn dataset {name!r}; choose one of {', '.join(SKLEARN_SETS)}")
    if split not in ("train", "test", "all"):
        raise InputError(f"split must be train, test or all, not {split!r}")
    bunch = getattr(skd, f"load_{name}")()
    x = np.asarray(bunch.data, dtype=np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    if name == "digits":
        lo, hi = np.zeros(x.shape[1], np.float32), np.full(x.shape[1], 16.0, np.float32)
    else:
        lo, hi = x_tr.min(axis=0), x_tr.max(axis=0)
    xs, ys = {"train": (x_tr, y_tr), "test": (x_te, y_te), "all": (x, y)}[split]
    xs = np.clip((xs - lo) / np.maximum(hi - lo, 1e-12), 0.0, 1.0).astype(np.float32)
    if name == "digits":
        xs = xs.reshape(-1, 1, 8, 8)
    names = [str(n) for n in getattr(bunch, "target_names", range(int(y.max()) + 1))]
    return Dataset(torch.from_numpy(xs), torch.from_numpy(ys), f"sklearn:{name}:{split}", (0.0, 1.0), names)
