"""The Model protocol every attack, defence and assessment talks to.

A model is a classifier over inputs living in a box ``bounds`` (e.g. pixels in [0, 1]). Any
normalisation the network expects is part of the adapter, so attacks work in the input space a
user thinks in, and ε means what the user meant. White-box adapters return differentiable
scores; black-box adapters count every sample they are asked about (``queries``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from modelshield.core.errors import CapabilityError, InputError, ModelShieldError, error_cause


class ModelCallError(ModelShieldError):
    """The model's own code raised while answering a query (its forward, ``predict``, ``predict_proba``).

    Typed so that an assessment can record the failure against the attack that triggered it and go
    on, and so that a crash in the user's model is not reported as a bug in modelshield.
    """

    hint = "the model failed on an input inside its bounds; check that it accepts every such input"


class Model(ABC):
    """A classifier seen by an attack: scores in, labels out, queries counted."""

    bounds: tuple[float, float] = (0.0, 1.0)
    num_classes: int
    input_shape: tuple[int, ...]
    white_box: bool = False
    has_scores: bool = True
    labels_from_scores: bool = True
    """Whether ``predict`` is the argmax of ``logits``; False when the model decides by its own rule."""
    device: torch.device = torch.device("cpu")

    def __init__(self) -> None:
        self.queries = 0

    @abstractmethod
    def _scores(self, x: Tensor) -> Tensor:
        """Return (N, num_classes) logits or log-probabilities for a batch."""

    def logits(self, x: Tensor) -> Tensor:
        """Class scores for a batch; differentiable for white-box models."""
        if not self.has_scores:
            raise CapabilityError(
                f"{type(self).__name__} only returns labels", hint="use a decision-based attack such as HopSkipJump"
            )
        self.queries += int(x.shape[0])
        return self._guarded(self._scores, x)

    def predict_proba(self, x: Tensor) -> Tensor:
        """Class probabilities for a batch (no gradient)."""
        with torch.no_grad():
            return torch.softmax(self.logits(x).float(), dim=1)

    def predict(self, x: Tensor, batch_size: int = 1024) -> Tensor:
        """Predicted labels, computed in batches without gradients."""
        out = []
        with torch.no_grad():
            for i in range(0, x.shape[0], batch_size):
                out.append(self._guarded(self._labels, x[i : i + batch_size]))
        return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=x.device)

    def _labels(self, x: Tensor) -> Tensor:
        return self.logits(x).argmax(dim=1)

    def _guarded(self, answer: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        """Run the model's code; whatever it raises (but our own typed errors) becomes :class:`ModelCallError`."""
        try:
            return answer(x)
        except ModelShieldError:
            raise
        except Exception as e:
            n = int(x.shape[0])
            raise ModelCallError(
                f"{type(self).__name__} raised {type(e).__name__} on {n} inputs: {error_cause(e)[:200]}",
                hint=f"{ModelCallError.hint}; if it only takes small batches, lower --batch-size" if n > 1 else "",
            ) from e

    def reset_queries(self) -> None:
        """Start counting queries from zero (done by assessments before each black-box attack)."""
        self.queries = 0

    def check_inputs(self, x: Tensor, y: Tensor | None = None) -> None:
        """Refuse data an attack would silently mangle: wrong shape, NaN/Inf, out of range."""
        if x.ndim < 2 or tuple(x.shape[1:]) != tuple(self.input_shape):
            raise InputError(
                f"inputs have shape {tuple(x.shape)}, the model expects (N, {', '.join(map(str, self.input_shape))})"
            )
        if not torch.isfinite(x).all():
            raise InputError("inputs contain NaN or Inf values")
        lo, hi = self.bounds
        tol = 1e-5 * max(1.0, hi - lo)
        if float(x.min()) < lo - tol or float(x.max()) > hi + tol:
            raise InputError(
                f"inputs range over [{float(x.min()):.4g}, {float(x.max()):.4g}], outside the model's bounds [{lo}, {hi}]",
                hint="pass --bounds or scale the data",
            )
        if y is not None:
            if y.ndim != 1 or y.shape[0] != x.shape[0]:
                raise InputError(f"labels have shape {tuple(y.shape)}, expected ({x.shape[0]},)")
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise InputError(
                    f"labels range over [{int(y.min())}, {int(y.max())}], the model has {self.num_classes} classes"
                )


def _channel_stats(values: Sequence[float] | float | None, ndim: int) -> Tensor | None:
    """Shape mean/std so they broadcast over the channel axis of (N, C, ...) inputs."""
    if values is None:
        return None
    t = torch.as_tensor(values, dtype=torch.float32)
    if t.ndim == 0:
        return t
    return t.reshape((1, -1) + (1,) * max(ndim - 2, 0))


class TorchModel(Model):
    """A white-box PyTorch classifier with its bounds and preprocessing.

    ``mean``/``std`` normalise per channel inside the adapter. ``autocast_dtype=torch.bfloat16``
    and ``channels_last=True`` trade exactness for GPU speed; scores are returned in fp32.
    The module is put in eval mode once, here, and attacks never change it.
    """

    white_box = True

    def __init__(
        self,
        module: nn.Module,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        bounds: tuple[float, float] = (0.0, 1.0),
        mean: Sequence[float] | float | None = None,
        std: Sequence[float] | float | None = None,
        device: str | torch.device | None = None,
        autocast_dtype: torch.dtype | None = None,
        channels_last: bool = False,
        output_fn: Callable[[Any], Tensor] | None = None,
    ) -> None:
        super().__init__()
        if bounds[0] >= bounds[1]:
            raise InputError(f"bounds {bounds} are empty: the lower bound must be below the upper")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.bounds = (float(bounds[0]), float(bounds[1]))
        if device is None:
            try:
                device = next(module.parameters()).device
            except StopIteration:
                device = torch.device("cpu")
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        ndim = len(self.input_shape) + 1
        mean_t, std_t = _channel_stats(mean, ndim), _channel_stats(std, ndim)
        self._mean = mean_t.to(self.device) if mean_t is not None else None
        self._std = std_t.to(self.device) if std_t is not None else None
        self.autocast_dtype: torch.dtype | None = None
        self.channels_last = False
        self.use_fast_path(autocast_dtype=autocast_dtype, channels_last=channels_last)
        self.output_fn = output_fn

    def use_fast_path(self, *, autocast_dtype: torch.dtype | None = None, channels_last: bool = False) -> None:
        """Run forwards under autocast (e.g. bf16) and/or channels-last memory: faster on GPUs."""
        self.autocast_dtype = autocast_dtype
        self.channels_last = channels_last
        if channels_last:
            # Module.to accepts memory_format at run time; torch's stubs leave it out of the overloads
            self.module = self.module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def _scores(self, x: Tensor) -> Tensor:
        if self._mean is not None:
            x = x - self._mean
        if self._std is not None:
            x = x / self._std
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = (
            torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else nullcontext()
        )
        with ctx:
            out = self.module(x)
        if self.output_fn is not None:
            out = self.output_fn(out)
        if out.dtype != torch.float32:
            out = out.float()
        return out
