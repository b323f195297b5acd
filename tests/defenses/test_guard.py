"""The runtime Guard: validation, detection and confidence → accept / reject / fallback, on the record."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

import modelshield.demo
from modelshield.attacks.evasion import PGD
from modelshield.core.datasets import Dataset
from modelshield.core.errors import InputError
from modelshield.core.model import TorchModel
from modelshield.defenses.detection import FeatureSqueezing
from modelshield.defenses.guard import Fallback, Guard, JsonLinesSink, SecurityEvent
from modelshield.serve.guarding import GatewayGuard


@pytest.fixture(scope="module")
def setup() -> tuple[TorchModel, Dataset, FeatureSqueezing]:
    torch.set_num_threads(1)
    model, test = modelshield.demo.demo_model_and_data(seed=0)  # the session's training (tests/conftest.py)
    detector = FeatureSqueezing(model).fit(test.x[:200], test.y[:200]).calibrate(test.x[:200], fpr=0.05)
    return model, test, detector


def test_clean_inputs_pass_and_pgd_inputs_fall_back(setup) -> None:  # type: ignore[no-untyped-def]
    model, test, detector = setup
    events: list[SecurityEvent] = []
    guard = Guard(model, detector=detector, fallback=Fallback("abstain"), sinks=[events.append], name="digits")
    x, y = test.x[200:], test.y[200:]
    clean = guard.inspect(x)
    assert np.mean([v.action == "accept" for v in clean]) >= 0.85
    ok = model.predict(x) == y
    x_adv = PGD(eps=0.1, steps=20, seed=0)(model, x[ok], y[ok])
    fooled = model.predict(x_adv) != y[ok]
    attacked = guard.inspect(x_adv[fooled])
    assert np.mean([v.action == "fallback" for v in attacked]) >= 0.5  # TPR at 5% FPR; AUC is about 0.95
    assert all(v.label == -1 and v.probabilities is None for v in attacked if v.action == "fallback")
    assert len(events) == len(clean) + len(attacked)
    flagged = next(e for e in events if e.action == "fallback")
    assert (
        flagged.detector == "feature-squeezing" and flagged.score > flagged.threshold and flagged.fallback == "abstain"
    )


def test_invalid_inputs_are_rejected_and_logged_without_the_input(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, test, detector = setup
    log = tmp_path / "guard.jsonl"
    guard = Guard(model, detector=detector, sinks=[JsonLinesSink(log)])
    x = test.x[:3].numpy().copy()
    x[1, 0, 0, 0] = np.nan
    x[2, 0, 0, 0] = 7.0
    verdicts = guard.inspect(x)
    assert [v.action for v in verdicts][1:] == ["reject", "reject"]
    assert "NaN" in verdicts[1].reason and "bounds" in verdicts[2].reason
    assert guard.inspect(np.zeros((2, 3, 8, 8), dtype=np.float32))[0].reason.startswith("inputs have shape")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 4
    assert lines[0]["input_digest"] == hashlib.sha256(x[0].astype(np.float32).tobytes()).hexdigest()
    assert all(set(line) == set(SecurityEvent.model_fields) for line in lines)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_fallback_modes_and_confidence_floor(setup) -> None:  # type: ignore[no-untyped-def]
    model, test, _ = setup
    x = test.x[:20]
    strict = Guard(model, min_confidence=1.0, fallback=Fallback("default", default_label=3))
    verdicts = strict.inspect(x)
    assert all(v.action == "fallback" and v.label == 3 and v.probabilities[3] == 1.0 for v in verdicts)
    robust = Guard(model, min_confidence=1.0, fallback=Fallback("robust_model", robust_model=model))
    assert [v.label for v in robust.inspect(x)] == model.predict(x).tolist()
    assert all(v.action == "reject" for v in Guard(model, min_confidence=1.0).inspect(x))
    with pytest.raises(InputError, match="default_label"):
        Fallback("default")
    with pytest.raises(InputError, match="threshold"):
        Guard(model, detector=FeatureSqueezing(model))


def test_one_decision_per_batch_and_the_gateway_answers_from_its_verdicts(setup) -> None:  # type: ignore[no-untyped-def]
    model, test, detector = setup
    guard = Guard(model, detector=detector, fallback=Fallback("default", default_label=0), name="digits")
    x = test.x[200:203].numpy()
    assert guard(x).action in ("accept", "fallback") and len(guard(x).verdicts) == 3
    bad = x.copy()
    bad[0] = np.inf
    refused = GatewayGuard(guard)(bad)
    assert refused.action == "reject" and "NaN or Inf" in refused.reason and refused.fallback is None
    assert refused.audit["flagged"] == [0] and refused.audit["detector"] == "feature-squeezing"
    strict = Guard(model, min_confidence=1.0, fallback=Fallback("default", default_label=0), name="digits")
    assert strict(x).action == "fallback" and [v.label for v in strict(x).verdicts] == [0, 0, 0]
    answer = GatewayGuard(strict)(x)
    assert answer.action == "fallback" and answer.fallback is not None
    assert answer.fallback["predictions"] == [0, 0, 0] and answer.fallback["model"] == "digits"
    assert answer.fallback["guard"] == ["fallback"] * 3 and answer.audit["fallback"] == "default"
