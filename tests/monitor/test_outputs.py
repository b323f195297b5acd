"""Output monitors: CUSUM and Page–Hinkley find a campaign within a stated delay and stay quiet on clean traffic.

The outputs are a real model's: a logistic regression on scikit-learn's digits. Reference traffic is its
predictions on 450 held-out images; live traffic is drawn from the other 449."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from modelshield.core.errors import InputError
from modelshield.monitor.outputs import Alarm, OutputMonitor, OutputReference
from modelshield.monitor.sequential import Cusum, PageHinkley


@pytest.fixture(scope="module")
def digits_outputs() -> dict[str, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x / 16, y, test_size=0.5, random_state=0, stratify=y)
    with threadpool_limits(1):  # a 900×64 fit: BLAS threads only contend on a shared machine (26 s vs 0.6 s)
        model = LogisticRegression(max_iter=1000).fit(x_tr, y_tr)
    probs = model.predict_proba(x_te)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(x_te), 2000), rng.integers(0, len(x_te), 2000)
    keep = y_te[a] != y_te[b]
    return {
        "reference": probs[:450],
        "pool": probs[450:],
        "poison": probs[450:][probs[450:].argmax(axis=1) == 0],  # inputs the model maps to the target class
        "evasion": model.predict_proba((x_te[a[keep]] + x_te[b[keep]]) / 2),  # boundary probes: low confidence
        "logits": model.decision_function(x_te[450:]),
    }


def _stream(
    monitor: OutputMonitor, out: dict[str, np.ndarray], bad: str | None, rate: float, clean: int, after: int, batch: int
) -> list[Alarm]:
    rng = np.random.default_rng(7)
    alarms: list[Alarm] = []
    for start in range(0, clean + after, batch):
        outputs = out["pool"][rng.integers(0, len(out["pool"]), batch)]
        if bad is not None and start >= clean:
            mask = rng.random(batch) < rate
            outputs[mask] = out[bad][rng.integers(0, len(out[bad]), int(mask.sum()))]
        alarms += monitor.update(outputs)
    return alarms


def test_sequential_detectors_on_gaussian_streams() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3000, 4))
    z[1000:, 1] += 1.0  # stream 1 rises by one σ at t = 1000
    z[1000:, 2] -= 1.0  # stream 2 falls
    for det in (Cusum(4), PageHinkley(4)):
        fired: dict[tuple[int, bool], int] = {}
        for t in range(len(z)):
            rose, fell = det.update(z[t], t)
            for s in np.flatnonzero(rose):
                fired.setdefault((int(s), True), t)
            for s in np.flatnonzero(fell):
                fired.setdefault((int(s), False), t)
            det.reset(np.flatnonzero(rose | fell), t)
        assert set(fired) == {(1, True), (2, False)}, det.name  # streams 0 and 3 never alarm
        # CUSUM's expected delay for a 1σ shift with k=0.5, h=15 is (h + 1.166)/(1 − k) ≈ 32 values
        assert all(1000 <= t <= 1100 for t in fired.values()), (det.name, fired)


def test_no_alarm_on_clean_traffic(digits_outputs: dict[str, np.ndarray]) -> None:
    monitor = OutputMonitor(OutputReference.from_outputs(digits_outputs["reference"]))
    assert _stream(monitor, digits_outputs, None, 0.0, 100_000, 0, 100) == []
    assert monitor.seen == 100_000 and monitor.windows == 2000


def test_poisoning_campaign_is_found_fast(digits_outputs: dict[str, np.ndarray]) -> None:
    """A fifth of the traffic predicted as class 0 (share 0.10 → 0.28): both detectors alarm on class 0 within
    1,000 campaign outputs, and CUSUM dates the change to within 500 outputs of when it began."""
    clean = 10_000
    monitor = OutputMonitor(OutputReference.from_outputs(digits_outputs["reference"]))
    alarms = _stream(monitor, digits_outputs, "poison", 0.2, clean, 5_000, 100)
    first: dict[str, Alarm] = {}
    for a in alarms:
        first.setdefault(a.detector, a)
    assert all(a.sample > clean for a in alarms)
    assert set(first) == {"cusum", "page-hinkley"}
    for a in first.values():
        assert a.kind == "poisoning" and a.stream == "class:0" and a.direction == "up"
        assert a.sample - clean <= 1000
    assert abs(first["cusum"].change_start - clean) <= 500


def test_evasion_campaign_is_found(digits_outputs: dict[str, np.ndarray]) -> None:
    clean = 10_000
    monitor = OutputMonitor(OutputReference.from_outputs(digits_outputs["reference"]))
    alarms = _stream(monitor, digits_outputs, "evasion", 0.2, clean, 5_000, 100)
    evasion = [a for a in alarms if a.kind == "evasion"]
    assert evasion and all(a.sample > clean for a in alarms)
    assert evasion[0].sample - clean <= 1500
    assert {a.stream for a in evasion} <= {"confidence", "entropy"}


def test_batch_size_does_not_matter(digits_outputs: dict[str, np.ndarray]) -> None:
    reference = OutputReference.from_outputs(digits_outputs["reference"])
    rng = np.random.default_rng(1)
    stream = digits_outputs["pool"][rng.integers(0, 449, 6000)]
    stream[3000:4500] = digits_outputs["poison"][rng.integers(0, len(digits_outputs["poison"]), 1500)]
    whole, pieces = OutputMonitor(reference), OutputMonitor(reference)
    a = [(x.detector, x.stream, x.sample) for x in whole.update(stream)]
    b = [(x.detector, x.stream, x.sample) for i in range(0, 6000, 7) for x in pieces.update(stream[i : i + 7])]
    assert a == b and a


def test_logits_and_bad_outputs(digits_outputs: dict[str, np.ndarray]) -> None:
    reference = OutputReference.from_outputs(digits_outputs["reference"])
    assert OutputReference.from_dict(reference.to_dict()) == reference
    monitor = OutputMonitor(reference, logits=True)
    assert monitor.update(digits_outputs["logits"][:120]) == [] and monitor.seen == 120
    with pytest.raises(InputError, match="not probabilities"):
        OutputMonitor(reference).update(digits_outputs["logits"][:10])
    with pytest.raises(InputError, match="classes"):
        OutputMonitor(reference).update(np.full((4, 3), 1 / 3))
    with pytest.raises(InputError, match="too few"):
        OutputReference.from_outputs(digits_outputs["reference"][:20])
