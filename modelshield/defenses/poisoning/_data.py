"""Inputs as the detectors need them: a finite float64 matrix, int64 labels, refused when malformed."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelshield.core.errors import InputError


def _numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor
        return np.asarray(a.detach().cpu().numpy())
    if hasattr(a, "to_numpy"):  # pandas
        return np.asarray(a.to_numpy())
    return np.asarray(a)


def as_matrix(x: Any, who: str) -> np.ndarray:
    """(N, D) float64 rows from an array, tensor or numeric DataFrame; images are flattened."""
    try:
        arr = _numpy(x).astype(np.float64, copy=False)
    except (TypeError, ValueError) as e:
        raise InputError(f"{who}: inputs must be numeric ({e})") from e
    if arr.ndim == 1 or arr.ndim == 0:
        raise InputError(f"{who}: inputs must be (N, features...) rows, got shape {arr.shape}")
    arr = arr.reshape(arr.shape[0], -1)
    if arr.shape[0] and not np.isfinite(arr).all():
        raise InputError(f"{who}: inputs contain NaN or Inf (validate them with SchemaValidator first)")
    return arr


def as_labels(y: Any, n: int, who: str) -> np.ndarray:
    """(N,) int64 class indices matching ``n`` rows."""
    arr = _numpy(y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputError(f"{who}: labels have shape {arr.shape}, expected ({n},)")
    if arr.size and (not np.issubdtype(arr.dtype, np.number) or not np.all(np.mod(arr, 1) == 0) or arr.min() < 0):
        raise InputError(f"{who}: labels must be non-negative integer class indices")
    return arr.astype(np.int64)
