"""Alarms on a served model's outputs: the signs a poisoning or an evasion campaign leaves in what it predicts.

The monitor compares the live stream of output probabilities with the same statistics on reference traffic
(held-out data the model is known to handle well):

* **class mix** — the share of predictions of each class. A poisoning campaign that plants a backdoor or flips
  labels shows up as one class taking a larger share than it had (alarm kind ``poisoning``).
* **confidence** (top probability) and **entropy** of the prediction. Evasion campaigns — query-based attacks such
  as Square or HopSkipJump probing the decision boundary, or inputs perturbed just across it — drive confidence
  down and entropy up (alarm kind ``evasion``).

Outputs are pooled into windows of ``window`` predictions; each window's mean becomes a z-score against the
reference (mean − μ₀)·√window/σ₀, so batch sizes do not matter and the detectors see near-Gaussian values.
CUSUM and Page–Hinkley (:mod:`modelshield.monitor.sequential`) watch every stream. μ₀ is itself estimated from
the reference's n outputs, off by about √(window/n) in those units, so CUSUM's allowance k is widened by twice
that (a 450-output reference and windows of 50 add 0.67): a small reference costs detection delay rather than
false alarms. Page–Hinkley compares each stream with its own running mean and needs no such margin. These alarms say the output
distribution moved the way such a campaign moves it; an honest change in traffic moves it too, so an alarm is
a reason to look, not a verdict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from modelshield.core.errors import InputError
from modelshield.monitor.sequential import Cusum, Detector, PageHinkley

AlarmKind = Literal["poisoning", "evasion"]
DetectorName = Literal["cusum", "page-hinkley"]


def probabilities(outputs: np.ndarray, logits: bool = False) -> np.ndarray:
    """(N, C) class probabilities; logits go through a softmax, and rows that are not distributions are refused."""
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim != 2 or out.shape[1] < 2:
        raise InputError(f"outputs must be (N, classes) with at least two classes, not shape {out.shape}")
    if not np.isfinite(out).all():
        raise InputError("outputs hold NaN or Inf")
    if logits:
        shifted = np.exp(out - out.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    if (out < -1e-6).any() or not np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
        raise InputError("outputs are not probabilities (rows must be ≥ 0 and sum to 1)", hint="pass logits=True")
    return out


def _per_sample(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted class, top probability and entropy (nats) of each output."""
    p = np.clip(probs, 1e-12, 1.0)
    return probs.argmax(axis=1), probs.max(axis=1), -(probs * np.log(p)).sum(axis=1)


@dataclass
class OutputReference:
    """Per-output means and standard deviations of every stream on reference traffic."""

    classes: int
    samples: int
    class_share: list[float]
    confidence: tuple[float, float]
    entropy: tuple[float, float]

    @classmethod
    def from_outputs(cls, outputs: np.ndarray, logits: bool = False) -> OutputReference:
        probs = probabilities(outputs, logits)
        if len(probs) < 100:
            raise InputError(f"{len(probs)} reference outputs are too few to set alarm levels; give at least 100")
        pred, conf, ent = _per_sample(probs)
        share = np.bincount(pred, minlength=probs.shape[1]) / len(probs)
        return cls(
            probs.shape[1],
            len(probs),
            share.tolist(),
            (float(conf.mean()), float(conf.std())),
            (float(ent.mean()), float(ent.std())),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": self.classes, "samples": self.samples, "class_share": self.class_share,
            "confidence": list(self.confidence), "entropy": list(self.entropy),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputReference:
        try:
            conf, ent = data["confidence"], data["entropy"]
            return cls(int(data["classes"]), int(data["samples"]), [float(s) for s in data["class_share"]],
                       (float(conf[0]), float(conf[1])), (float(ent[0]), float(ent[1])))  # fmt: skip
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise InputError(f"not an output reference: {type(e).__name__}: {e}") from e

    def streams(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Stream names, reference means and per-output standard deviations (floored so none is 0)."""
        floor = 0.5 / self.samples
        share = np.clip(np.asarray(self.class_share), floor, 1 - floor)
        names = [f"class:{c}" for c in range(self.classes)] + ["confidence", "entropy"]
        mu = np.concatenate([share, [self.confidence[0], self.entropy[0]]])
        sd = np.concatenate([np.sqrt(share * (1 - share)), [self.confidence[1], self.entropy[1]]])
        return names, mu, np.maximum(sd, 1e-6)


@dataclass
class Alarm:
    """A detector fired: which stream moved which way, and when (in outputs seen since the monitor started)."""

    detector: str
    stream: str
    kind: AlarmKind
    direction: Literal["up", "down"]
    #: outputs seen when the alarm fired (the end of the window that raised it)
    sample: int
    #: the detector's estimate of the first output after the change (start of the window its run began in)
    change_start: int
    statistic: float
    threshold: float
    at: float


class OutputMonitor:
    """Watch streamed model outputs; ``update(batch)`` returns the alarms that batch raised.

    Poisoning alarms fire on a class's share going up; evasion alarms on confidence going down or entropy going
    up. (The opposite moves are also changes, but not the ones these campaigns make, and watching them would
    double the false alarms.)

    Example::

        monitor = OutputMonitor(OutputReference.from_outputs(model_probs_on_validation))
        for batch in live_batches:
            for alarm in monitor.update(model_probs(batch)):
                notify(alarm)
    """

    def __init__(
        self,
        reference: OutputReference,
        *,
        window: int = 50,
        detectors: tuple[DetectorName, ...] = ("cusum", "page-hinkley"),
        cusum_k: float = 0.5,
        cusum_h: float = 15.0,
        ph_delta: float = 0.5,
        ph_threshold: float = 15.0,
        logits: bool = False,
    ) -> None:
        if window < 1:
            raise InputError(f"window must be at least one output, not {window}")
        unknown = set(detectors) - {"cusum", "page-hinkley"}
        if unknown or not detectors:
            raise InputError(f"detectors are cusum and page-hinkley, not {sorted(unknown) or 'none'}")
        self.reference, self.window, self.logits = reference, window, logits
        self.names, self._mu, self._sd = reference.streams()
        n = len(self.names)
        self.detectors: list[Detector] = []
        if "cusum" in detectors:
            # the reference means are estimates: their 2-standard-error band, in window z-units, is added to
            # the allowance so that CUSUM does not alarm on the reference's own sampling error
            slack = 2 * np.sqrt(window / reference.samples)
            self.detectors.append(Cusum(n, cusum_k + slack, cusum_h))
        if "page-hinkley" in detectors:
            self.detectors.append(PageHinkley(n, ph_delta, ph_threshold))
        # which alarms count: class shares up, confidence down, entropy up
        self._watch_up = np.array([True] * reference.classes + [False, True])
        self._watch_down = np.array([False] * reference.classes + [True, False])
        self._pending = np.empty((0, n))
        self.seen = 0
        self.windows = 0

    def update(self, outputs: np.ndarray) -> list[Alarm]:
        """Fold in a batch of outputs (N, classes) of any size; alarms of every window it completes."""
        return self.fold(self.stream_values(outputs))

    def stream_values(self, outputs: np.ndarray) -> np.ndarray:
        """Each output's value on every stream (N, classes + 2): the one-hot predicted class, the confidence and the
        entropy. Windows average these, so their sums over disjoint batches add up (what gateway replicas share)."""
        probs = probabilities(outputs, self.logits)
        if probs.shape[1] != self.reference.classes:
            raise InputError(f"outputs have {probs.shape[1]} classes; the reference has {self.reference.classes}")
        pred, conf, ent = _per_sample(probs)
        onehot = np.zeros((len(probs), self.reference.classes))
        onehot[np.arange(len(probs)), pred] = 1.0
        return np.column_stack([onehot, conf, ent])

    def fold(self, values: np.ndarray) -> list[Alarm]:
        """Fold in outputs given by their ``stream_values``; alarms of every window they complete."""
        rows = np.vstack([self._pending, values])
        full = len(rows) // self.window
        self._pending = rows[full * self.window :]
        means = rows[: full * self.window].reshape(full, self.window, rows.shape[1]).mean(axis=1)
        z = (means - self._mu) * np.sqrt(self.window) / self._sd
        alarms: list[Alarm] = []
        start = self.seen
        self.seen += len(values)
        for i in range(full):
            end = start - (len(rows) - len(values)) + (i + 1) * self.window  # outputs seen at the window's end
            alarms.extend(self._step(z[i], end))
        return alarms

    def _step(self, z: np.ndarray, end: int) -> list[Alarm]:
        t = self.windows
        self.windows += 1
        alarms = []
        now = time.time()
        for det in self.detectors:
            rose, fell = det.update(z, t)
            rose &= self._watch_up
            fell &= self._watch_down
            for s in (int(i) for i in np.flatnonzero(rose | fell)):
                up = bool(rose[s])
                alarms.append(
                    Alarm(
                        detector=det.name,
                        stream=self.names[s],
                        kind="poisoning" if self.names[s].startswith("class:") else "evasion",
                        direction="up" if up else "down",
                        sample=end,
                        change_start=end - (t + 1 - det.change_start(up, s)) * self.window,
                        statistic=det.statistic(up, s),
                        threshold=det.h,
                        at=now,
                    )
                )
            det.reset(np.flatnonzero(rose | fell), t)
        return alarms


__all__ = ["Alarm", "OutputMonitor", "OutputReference", "probabilities"]
