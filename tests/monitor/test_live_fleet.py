"""The fleet window: what two processes each saw of a model, drained as mergeable intervals (sent as JSON) and
merged, gives the drift verdict one process gives on all of the traffic, and the same output alarms."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from modelshield.monitor.live import Interval, LiveCheck, LiveMonitor, sketch_from_inputs
from modelshield.monitor.outputs import OutputReference


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order] / 16, y[order]
    with threadpool_limits(1):
        model = LogisticRegression(max_iter=500).fit(x[:900], y[:900])
    test = x[900:1500]
    shifted = np.clip(test + np.random.default_rng(0).uniform(-0.3, 0.3, test.shape), 0, 1)
    return {
        "reference": x[:900],
        "ref_probs": model.predict_proba(x[:900]),
        "test": test,
        "probs": model.predict_proba(test),
        "shifted": shifted,
        "poison": model.predict_proba(x[900:][model.predict(x[900:]) == 0]),
    }


def _monitor(d: dict[str, np.ndarray]) -> LiveMonitor:
    sketch = sketch_from_inputs(d["reference"])
    return LiveMonitor(sketch, OutputReference.from_outputs(d["ref_probs"]), width=64, window=300, min_rows=100)


def _fleet_check(workers: list[LiveMonitor], evaluator: LiveMonitor) -> LiveCheck:
    """Each worker drains (the flush), its JSON is read back and merged per flush, the evaluator checks."""
    parts = [Interval.from_json(i.to_json(), evaluator.sketch) for w in workers if (i := w.drain()) is not None]
    for part in parts[1:]:
        parts[0].merge(part)
    return evaluator.check_fleet(parts[:1])


def test_merged_intervals_give_the_single_process_verdict(digits: dict[str, np.ndarray]) -> None:
    single, workers, evaluator = _monitor(digits), [_monitor(digits), _monitor(digits)], _monitor(digits)
    for phase in ("test", "shifted"):
        rows = digits[phase][:300]
        for i, start in enumerate(range(0, 300, 30)):  # batches alternate between the two workers
            single.observe(rows[start : start + 30])
            workers[i % 2].observe(rows[start : start + 30])
        alone = single.check()
        fleet = _fleet_check(workers, evaluator)
        assert alone.drift is not None and fleet.drift is not None
        assert fleet.rows == alone.rows == 300
        assert fleet.drift.drift is alone.drift.drift is (phase == "shifted")
        mine = {f.feature: f.statistic for f in fleet.drift.features}
        theirs = {f.feature: f.statistic for f in alone.drift.features}
        assert mine == pytest.approx(theirs)


def test_a_campaign_split_across_processes_raises_the_alarms_one_process_raises(
    digits: dict[str, np.ndarray],
) -> None:
    single, workers, evaluator = _monitor(digits), [_monitor(digits), _monitor(digits)], _monitor(digits)
    outputs = single.outputs
    assert outputs is not None
    alone: list[str] = []
    fleet: list[str] = []
    clean, poison = digits["probs"][:300], np.tile(digits["poison"], (3, 1))[:100]
    for traffic in (clean[:150], clean[150:], poison):  # three flushes; the campaign alone in the last
        for i, start in enumerate(range(0, len(traffic), 25)):
            workers[i % 2].observe_outputs(traffic[start : start + 25])
        alone += [f"{a.detector} {a.stream}" for a in outputs.update(traffic)]
        fleet += [f"{a.detector} {a.stream}" for a in _fleet_check(workers, evaluator).alarms]
    assert Counter(fleet) == Counter(alone)
    assert "cusum class:0" in fleet
