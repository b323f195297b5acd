"""The gateway's adapter of ``modelshield.defenses.guard.Guard``, built from the ``[guard]`` tables at start-up.

The Guard decides on inputs; this module turns its ``Decision`` into the gateway's ``GuardDecision``: the
HTTP answer for a fallback and the audit summary.

For each guarded model the detector is fitted on half of the calibration data and calibrated on the
other half (a threshold set on the data it was fitted on would sit too low and over-flag fresh clean
inputs), with the loaded primary version. Concurrent requests share one inspection: ``GatewayGuard.decide``
hands each request's inputs to a ``Batcher`` on the primary's forward thread, which inspects their
concatenation once and gives each request its own verdicts; the decision carries the audit fields —
detector, threshold, the request's highest score and which of its inputs were flagged, never the inputs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from modelshield.core.errors import InputError, ModelShieldError
from modelshield.serve.config import GuardConfig

if TYPE_CHECKING:
    from modelshield.defenses.guard import Guard, InputVerdict
    from modelshield.serve.runtime import Batcher

log = logging.getLogger("modelshield.serve")
WHITE_BOX_DETECTORS = ("mahalanobis", "lid")


@dataclass(frozen=True)
class GuardDecision:
    """What the gateway does with a request the Guard has seen, and what the audit record keeps about it.

    ``fallback`` is the response body when the Guard answers instead of the model; ``audit`` never holds inputs.
    """

    action: Literal["accept", "reject", "fallback"]
    reason: str = ""
    fallback: dict[str, Any] | None = None
    audit: dict[str, Any] = field(default_factory=dict)


class GatewayGuard:
    """A ``modelshield.defenses.guard.Guard`` as the gateway's hook: batched inspection, HTTP answer, audit summary.

    A request is refused if any of its inputs is; else it gets the fallback answer if any input falls back
    (``Guard.decide``).
    """

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.batcher: Batcher | None = None

    def bind(self, executor: ThreadPoolExecutor, max_batch: int) -> None:
        """Inspect on ``executor`` (the primary's forward thread), batching concurrent requests."""
        from modelshield.serve.runtime import Batcher

        self.batcher = Batcher(executor, self.guard.inspect, max_batch)

    async def decide(self, x: np.ndarray) -> GuardDecision:
        """The decision for one request's inputs, inspected together with concurrent requests' inputs."""
        if self.batcher is None:
            raise RuntimeError("GatewayGuard.decide before bind()")
        return self.combine(await self.batcher.submit(x))

    def __call__(self, x: np.ndarray) -> GuardDecision:
        return self.combine(self.guard.inspect(x))

    def combine(self, verdicts: Sequence[InputVerdict]) -> GuardDecision:
        """One request's decision and audit summary from its own verdicts (indices relative to the request)."""
        guard = self.guard
        decision = guard.decide(verdicts)
        scores = [v.event.score for v in verdicts if v.event.score is not None]
        audit = {
            "action": decision.action,
            "detector": guard.detector.name if guard.detector else None,
            "threshold": guard.threshold,
            "score": max(scores) if scores else None,
            "fallback": guard.fallback.mode if guard.fallback else "reject",
            "flagged": [i for i, v in enumerate(verdicts) if v.action != "accept"],
        }
        body = None
        if decision.action == "fallback":
            body = {
                "model": guard.name,
                "predictions": [v.label for v in verdicts],
                "probabilities": [v.probabilities for v in verdicts],
                "guard": [v.action for v in verdicts],
            }
        return GuardDecision(decision.action, decision.reason, body, audit)


def _calibration_split(setting: GuardConfig, model: Any, route: str) -> tuple[Any, Any]:
    """The calibration data for ``route``, checked against the model and split in two (fit, calibrate)."""
    import torch

    from modelshield.core.datasets import load_dataset

    where = f"model {route}: guard.calibration_data {setting.calibration_data!r}"
    try:
        data = load_dataset(setting.calibration_data, bounds=tuple(model.bounds), input_shape=tuple(model.input_shape))
    except (ModelShieldError, OSError) as exc:
        raise InputError(f"{where}: {exc}") from None
    if int(data.y.max()) >= model.num_classes:
        raise InputError(f"{where}: labels go up to {int(data.y.max())}, the model has {model.num_classes} classes")
    if len(data) < 20:
        raise InputError(f"{where}: {len(data)} samples; calibration needs at least 20")
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(data))[: setting.calibration_samples])
    x, y = data.x[order], data.y[order]  # shuffled: a file sorted by class must not fit on some classes only
    half = len(x) // 2
    return (x[:half], y[:half]), (x[half:], y[half:])


def _detector(route: str, model: Any, setting: GuardConfig) -> Any:
    """The configured detector with its options; an option it does not take is a one-line error."""
    from modelshield.defenses.detection import DETECTORS

    try:
        return DETECTORS[setting.detector](model, **setting.detector_options)
    except TypeError:
        raise InputError(
            f"model {route}: guard.detector_options {setting.detector_options} are not options of the "
            f"{setting.detector} detector"
        ) from None


def build_guard(route: str, model: Any, setting: GuardConfig) -> GatewayGuard:
    """Fit and calibrate ``setting.detector`` for ``model``; refuse a detector the model cannot support."""
    from modelshield.core.model import TorchModel
    from modelshield.defenses.guard import Fallback, Guard

    if setting.detector in WHITE_BOX_DETECTORS and not isinstance(model, TorchModel):
        raise InputError(
            f"model {route}: the {setting.detector} detector needs a white-box PyTorch model, "
            f"this one is {type(model).__name__}",
            hint="use feature-squeezing, energy or max-softmax",
        )
    if setting.default_label is not None and setting.default_label >= model.num_classes:
        raise InputError(
            f"model {route}: guard.default_label {setting.default_label} is not one of its {model.num_classes} classes"
        )
    (x_fit, y_fit), (x_cal, _) = _calibration_split(setting, model, route)
    detector = _detector(route, model, setting).fit(x_fit, y_fit).calibrate(x_cal, fpr=setting.fpr)
    fallback = None if setting.fallback == "reject" else Fallback(setting.fallback, default_label=setting.default_label)
    guard = GatewayGuard(
        Guard(model, detector=detector, min_confidence=setting.min_confidence, fallback=fallback, name=route)
    )
    log.info(
        "guard on model %s: %s threshold %.4g (target FPR %g, %d calibration inputs), fallback %s",
        route,
        setting.detector,
        detector.threshold_,
        setting.fpr,
        len(x_cal),
        setting.fallback,
    )
    return guard


def build_guards(settings: dict[str, GuardConfig], models: dict[str, Any]) -> dict[str, GatewayGuard]:
    """One ``GatewayGuard`` per guarded route, from its setting and its loaded primary model."""
    return {route: build_guard(route, models[route], setting) for route, setting in settings.items()}
