"""The runtime Guard: validate an input, score it, and accept, reject or fall back — on the record.

Each input goes through, in order: validation (shape, numeric dtype, NaN/Inf, the model's
bounds), an adversarial-input detector against its calibrated threshold, and a confidence floor.
An input that fails validation is rejected; a suspicious or unconfident one gets the configured
fallback (abstain, a robust model's answer, or a safe default label) or, with none configured,
is rejected. Every decision is emitted as a :class:`SecurityEvent` to pluggable sinks (a callback,
a JSON-lines file); events carry a SHA-256 digest of the input, never the input.

``Guard(x)`` gives one :class:`Decision` for a whole batch; the gateway adapts it
(``modelshield.serve.guarding``), which is where an HTTP answer is built from the verdicts.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field
from torch import Tensor

from modelshield.core.errors import InputError
from modelshield.core.model import Model
from modelshield.defenses.detection.base import Detector

Action = Literal["accept", "reject", "fallback"]
FallbackMode = Literal["abstain", "robust_model", "default"]


class SecurityEvent(BaseModel):
    """One Guard decision, as monitoring and the audit log consume it. Never holds the input."""

    time: str = Field(description="ISO 8601 UTC time of the decision")
    event: str = "guard.decision"
    model: str = ""
    index: int = Field(description="position of the input in its batch")
    input_digest: str = Field(description="sha256 of the input's float32 bytes")
    action: Action
    reason: str
    detector: str | None = None
    score: float | None = None
    threshold: float | None = None
    confidence: float | None = None
    min_confidence: float | None = None
    fallback: FallbackMode | None = None


Sink = Callable[[SecurityEvent], None]


class JsonLinesSink:
    """Append each event as one JSON line to a file created owner-only (0600); safe across threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)

    def __call__(self, event: SecurityEvent) -> None:
        line = event.model_dump_json() + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()


@dataclass(frozen=True)
class Fallback:
    """What a suspicious input gets instead of the model's answer.

    ``abstain``: no prediction (label −1); ``robust_model``: the answer of ``robust_model`` (e.g. a
    smoothed or adversarially trained model); ``default``: the fixed ``default_label``.
    """

    mode: FallbackMode = "abstain"
    robust_model: Model | None = None
    default_label: int | None = None

    def __post_init__(self) -> None:
        if self.mode == "robust_model" and self.robust_model is None:
            raise InputError("fallback mode 'robust_model' needs robust_model")
        if self.mode == "default" and self.default_label is None:
            raise InputError("fallback mode 'default' needs default_label")


@dataclass(frozen=True)
class InputVerdict:
    """The Guard's answer for one input: the action, why, and what to return (label −1 = none)."""

    action: Action
    reason: str
    label: int
    probabilities: list[float] | None
    event: SecurityEvent


@dataclass(frozen=True)
class Decision:
    """The Guard's answer for a batch: serve it (``accept``), refuse it, or answer from the verdicts (``fallback``)."""

    action: Action
    reason: str
    verdicts: tuple[InputVerdict, ...]


class Guard:
    """Accept, reject or fall back on each input of a batch; see the module docstring.

    Args:
        model: the protected classifier (its bounds and shape define valid input).
        detector: a fitted detector; its ``threshold_`` (from ``calibrate``) is used unless
            ``threshold`` is given.
        min_confidence: fall back (or reject) below this top-class probability.
        fallback: what suspicious inputs get; None rejects them instead.
        sinks: callables that receive every :class:`SecurityEvent`. A sink that raises fails the
            request: losing security events silently is worse than an error.
        name: the model name written into events.
    """

    def __init__(
        self,
        model: Model,
        *,
        detector: Detector | None = None,
        threshold: float | None = None,
        min_confidence: float | None = None,
        fallback: Fallback | None = None,
        sinks: Sequence[Sink] = (),
        name: str = "",
    ) -> None:
        if detector is not None and threshold is None and detector.threshold_ is None:
            raise InputError("the detector has no threshold: calibrate it or pass threshold=")
        if min_confidence is not None and not 0 < min_confidence <= 1:
            raise InputError(f"min_confidence must be in (0, 1], got {min_confidence}")
        self.model, self.detector, self.fallback = model, detector, fallback
        self.threshold = threshold if threshold is not None else (detector.threshold_ if detector else None)
        self.min_confidence = min_confidence
        self.sinks = list(sinks)
        self.name = name

    def _invalid(self, x: np.ndarray) -> tuple[str | None, np.ndarray]:
        """A batch-level problem, or None, and per-input problems (empty string = fine)."""
        shape = tuple(self.model.input_shape)
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            return f"inputs have shape {tuple(x.shape)}, the model expects (N, {', '.join(map(str, shape))})", np.array(
                []
            )
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            return f"inputs have dtype {x.dtype}, expected numbers", np.array([])
        flat = x.reshape(len(x), -1).astype(np.float64)
        lo, hi = self.model.bounds
        tol = 1e-5 * max(1.0, hi - lo)
        problems = np.full(len(x), "", dtype=object)
        finite = np.isfinite(flat).all(axis=1)
        problems[~finite] = "input contains NaN or Inf"
        with np.errstate(invalid="ignore"):
            outside = finite & ((flat.min(axis=1) < lo - tol) | (flat.max(axis=1) > hi + tol))
        problems[outside] = f"input outside the model's bounds [{lo:g}, {hi:g}]"
        return None, problems

    def _fallback_answer(self, x: Tensor) -> tuple[int, list[float] | None]:
        fb = self.fallback
        assert fb is not None
        if fb.mode == "robust_model":
            assert fb.robust_model is not None
            probs = fb.robust_model.predict_proba(x[None].to(fb.robust_model.device))[0]
            return int(probs.argmax()), probs.cpu().tolist()
        if fb.mode == "default":
            assert fb.default_label is not None
            one_hot = [0.0] * self.model.num_classes
            one_hot[fb.default_label] = 1.0
            return fb.default_label, one_hot
        return -1, None

    def inspect(self, x: np.ndarray | Tensor) -> list[InputVerdict]:
        """Decide on every input of the batch ``x`` and emit one event per input."""
        arr = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
        batch_problem, problems = self._invalid(arr)
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")
        base = {"time": now, "model": self.name, "min_confidence": self.min_confidence}
        if batch_problem is not None:
            digest = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()
            event = SecurityEvent(**base, index=-1, input_digest=digest, action="reject", reason=batch_problem)
            self._emit(event)
            return [InputVerdict("reject", batch_problem, -1, None, event)]
        ok = problems == ""
        xt = torch.as_tensor(arr, dtype=torch.float32)
        probs = np.full((len(arr), self.model.num_classes), np.nan)
        scores = np.full(len(arr), np.nan)
        if ok.any():
            good = xt[torch.as_tensor(ok)].to(self.model.device)
            probs[ok] = self.model.predict_proba(good).cpu().numpy()
            if self.detector is not None:
                scores[ok] = self.detector.score(good)
        verdicts = []
        for i in range(len(arr)):
            digest = hashlib.sha256(np.ascontiguousarray(arr[i], dtype=np.float32).tobytes()).hexdigest()
            fields: dict[str, Any] = {**base, "index": i, "input_digest": digest}
            if not ok[i]:
                event = SecurityEvent(**fields, action="reject", reason=str(problems[i]))
                verdicts.append(InputVerdict("reject", event.reason, -1, None, self._emit(event)))
                continue
            confidence = float(probs[i].max())
            fields.update(confidence=confidence)
            if self.detector is not None:
                fields.update(detector=self.detector.name, score=float(scores[i]), threshold=self.threshold)
            reason = ""
            if self.detector is not None and self.threshold is not None and scores[i] > self.threshold:
                reason = f"{self.detector.name} score {scores[i]:.4g} above threshold {self.threshold:.4g}"
            elif self.min_confidence is not None and confidence < self.min_confidence:
                reason = f"confidence {confidence:.3f} below {self.min_confidence:g}"
            if not reason:
                event = SecurityEvent(**fields, action="accept", reason="passed every check")
                verdicts.append(
                    InputVerdict("accept", event.reason, int(probs[i].argmax()), probs[i].tolist(), self._emit(event))
                )
            elif self.fallback is None:
                event = SecurityEvent(**fields, action="reject", reason=reason)
                verdicts.append(InputVerdict("reject", reason, -1, None, self._emit(event)))
            else:
                label, answer = self._fallback_answer(xt[i])
                event = SecurityEvent(**fields, action="fallback", reason=reason, fallback=self.fallback.mode)
                verdicts.append(InputVerdict("fallback", reason, label, answer, self._emit(event)))
        return verdicts

    def _emit(self, event: SecurityEvent) -> SecurityEvent:
        for sink in self.sinks:
            sink(event)
        return event

    def __call__(self, x: np.ndarray | Tensor) -> Decision:
        """One decision for the batch ``x`` (see ``decide``)."""
        return self.decide(self.inspect(x))

    def decide(self, verdicts: Sequence[InputVerdict]) -> Decision:
        """One decision for a batch from its inputs' verdicts.

        Any rejected input rejects the batch; otherwise any fallback makes the verdicts the answer (the model's
        own for accepted inputs, the fallback's for the rest, label −1 for abstentions); otherwise accept.
        """
        rejected = [v for v in verdicts if v.action == "reject"]
        if rejected:
            return Decision("reject", rejected[0].reason, tuple(verdicts))
        fell_back = [v for v in verdicts if v.action == "fallback"]
        if fell_back:
            return Decision("fallback", fell_back[0].reason, tuple(verdicts))
        return Decision("accept", "", tuple(verdicts))


__all__ = ["Decision", "Fallback", "Guard", "JsonLinesSink", "SecurityEvent", "Sink", "InputVerdict"]
