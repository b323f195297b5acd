"""A handful of clean/adversarial image pairs, so a reader of the report can see what an attack did."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelshield.core.errors import InputError


@dataclass(frozen=True)
class ExampleGrid:
    """K images before and after one attack, with the labels the model gave each.

    ``clean`` and ``adversarial`` are (K, C, H, W) arrays with values in ``bounds``; C is 1
    (grey) or 3 (RGB). Labels are (K,) integer arrays.
    """

    clean: np.ndarray
    adversarial: np.ndarray
    true_labels: np.ndarray
    clean_pred: np.ndarray
    adv_pred: np.ndarray
    attack: str
    eps: float | None
    bounds: tuple[float, float] = (0.0, 1.0)
    class_names: list[str] | None = None

    def __post_init__(self) -> None:
        if self.clean.ndim != 4 or self.clean.shape[1] not in (1, 3):
            raise InputError(f"ExampleGrid.clean must be (K, C, H, W) with C in {{1, 3}}, got {self.clean.shape}")
        if self.adversarial.shape != self.clean.shape:
            raise InputError(
                f"ExampleGrid.adversarial has shape {self.adversarial.shape}, "
                f"clean has {self.clean.shape}; they must match"
            )
        k = len(self.clean)
        for name in ("true_labels", "clean_pred", "adv_pred"):
            if np.shape(getattr(self, name)) != (k,):
                raise InputError(f"ExampleGrid.{name} must have shape ({k},), got {np.shape(getattr(self, name))}")
        lo, hi = self.bounds
        if not hi > lo:
            raise InputError(f"ExampleGrid.bounds must be (lo, hi) with hi > lo, got {self.bounds}")

    def label(self, index: int) -> str:
        """A class index as the reader knows it: its name when names were given."""
        if self.class_names is not None and 0 <= index < len(self.class_names):
            return self.class_names[index]
        return str(index)
