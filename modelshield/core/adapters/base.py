"""What every black-box adapter shares: constructor checks and the numpy boundary.

Black-box models live outside PyTorch (scikit-learn, onnxruntime, an HTTP service), so a batch
crosses to numpy once on the way in and its scores cross back once, checked, on the way out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from modelshield.core.errors import InputError, ModelShieldError
from modelshield.core.model import Model

_TINY = np.finfo(np.float32).tiny


class BlackBoxModel(Model):
    """A model seen only through its outputs: no gradients, every sample counted in ``queries``."""

    white_box = False

    def __init__(self, *, input_shape: Sequence[int], bounds: tuple[float, float]) -> None:
        super().__init__()
        if bounds[0] >= bounds[1]:
            raise InputError(f"bounds {bounds} are empty: the lower bound must be below the upper")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.bounds = (float(bounds[0]), float(bounds[1]))

    def _count(self, x: Tensor) -> None:
        """Count a batch asked for labels only (``logits`` counts the others)."""
        self.queries += int(x.shape[0])


class ServedModel(BlackBoxModel):
    """A black-box model that answers outside this process (an HTTP service, a sandboxed worker).

    Subclasses send one chunk of at most ``batch_size`` samples with ``_ask`` and say what came
    back: "logits", "probabilities" or "labels". Every answer is checked here, the same way for
    every transport, and a bad one raises ``reply_error``.
    """

    num_classes: int
    batch_size: int
    reply_error: type[ModelShieldError] = InputError

    def _ask(self, batch: np.ndarray) -> tuple[str, np.ndarray]:
        """Send one chunk; return the kind of answer and its array."""
        raise NotImplementedError

    def _answer(self, x: Tensor) -> Tensor:
        """Checked scores, or labels from a label-only model, one ``_ask`` per chunk."""
        parts = []
        for i in range(0, x.shape[0], self.batch_size):
            chunk = x[i : i + self.batch_size]
            kind, values = self._ask(to_numpy(chunk))
            n, c, error = chunk.shape[0], self.num_classes, self.reply_error
            if kind == "labels":
                parts.append(checked_labels(values, n=n, num_classes=c, device=x.device, error=error))
            else:
                probabilities = kind == "probabilities"
                parts.append(
                    checked_scores(
                        values, n=n, num_classes=c, probabilities=probabilities, device=x.device, error=error
                    )
                )
        return torch.cat(parts) if parts else torch.empty((0, self.num_classes), device=x.device)

    def _scores(self, x: Tensor) -> Tensor:
        return self._answer(x)

    def _labels(self, x: Tensor) -> Tensor:
        self._count(x)
        out = self._answer(x)
        return out if out.ndim == 1 else out.argmax(dim=1)


def to_numpy(x: Tensor, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """A detached, contiguous CPU copy of a batch for a library outside PyTorch."""
    return np.ascontiguousarray(x.detach().cpu().numpy(), dtype=dtype)


def is_probabilities(scores: np.ndarray, atol: float = 1e-3) -> bool:
    """True when every row is non-negative and sums to one: a softmax, not logits."""
    return bool((scores >= 0).all() and np.allclose(scores.sum(axis=1), 1.0, atol=atol))


def checked_scores(
    scores: np.ndarray,
    *,
    n: int,
    num_classes: int,
    probabilities: bool,
    device: torch.device,
    error: type[ModelShieldError] = InputError,
) -> Tensor:
    """(n, num_classes) float32 scores, as log-probabilities when the model gave probabilities.

    A model that answers with the wrong shape or non-finite values is refused rather than
    trusted: an attack would otherwise report success against garbage.
    """
    scores = np.asarray(scores, dtype=np.float32)
    if scores.shape != (n, num_classes):
        raise error(f"model returned scores of shape {scores.shape}, expected ({n}, {num_classes})")
    if not np.isfinite(scores).all():
        raise error("model returned NaN or Inf scores")
    if probabilities:
        if (scores < 0).any():
            raise error("model returned negative probabilities")
        scores = np.log(np.maximum(scores, _TINY))
    return torch.from_numpy(scores).to(device)


def checked_labels(
    labels: np.ndarray,
    *,
    n: int,
    num_classes: int,
    device: torch.device,
    error: type[ModelShieldError] = InputError,
) -> Tensor:
    """(n,) int64 class indices, refused when out of range, fractional or the wrong length."""
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise error(f"model returned labels of shape {labels.shape}, expected ({n},)")
    if labels.dtype.kind not in "iuf" or (labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels))):
        raise error(f"model returned non-integer labels ({labels.dtype})")
    labels = labels.astype(np.int64)
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise error(f"model returned labels in [{labels.min()}, {labels.max()}], expected [0, {num_classes - 1}]")
    return torch.from_numpy(labels).to(device)
