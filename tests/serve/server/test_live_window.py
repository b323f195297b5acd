"""The live window and the correlation summary on small real data: the ring buffer keeps the latest inputs in
order across wrap-arounds, sketches are matched to inputs by column index, and windows with drift and security
events together are found."""

from __future__ import annotations

import numpy as np
import pytest

from modelshield.core.datasets import sklearn_dataset
from modelshield.core.errors import InputError
from modelshield.monitor.live import LiveMonitor, sketch_columns, sketch_from_inputs, sketch_inputs
from modelshield.monitor.sketch import ReferenceSketch
from modelshield.serve.live import Bucket, correlate


@pytest.fixture(scope="module")
def digits_sketch() -> ReferenceSketch:
    return sketch_from_inputs(sklearn_dataset("digits", "train", seed=0).x.numpy())


def test_the_window_keeps_the_latest_inputs_in_order(digits_sketch: ReferenceSketch) -> None:
    monitor = LiveMonitor(digits_sketch, None, width=64, window=100, min_rows=50)
    rows = np.arange(250 * 64, dtype=np.float32).reshape(250, 64)
    for start in range(0, 250, 30):  # batches that straddle the end of the ring
        monitor.observe(rows[start : start + 30].reshape(-1, 1, 8, 8))
    assert np.array_equal(monitor.snapshot(), rows[-100:])
    monitor.observe(rows[:130])  # a batch larger than the window
    assert np.array_equal(monitor.snapshot(), rows[30:130]) and monitor.seen == 380
    with pytest.raises(InputError, match="63 values"):
        monitor.observe(rows[:2, :63])


def test_clean_digits_pass_and_noisy_ones_drift(digits_sketch: ReferenceSketch) -> None:
    test = sklearn_dataset("digits", "test", seed=0).x.numpy()
    monitor = LiveMonitor(digits_sketch, None, width=64, window=300, min_rows=100)
    monitor.observe(test[:50])
    assert monitor.check().drift is None  # fewer than min_rows: no verdict
    monitor.observe(test[50:300])
    assert monitor.check().drift.drift is False  # type: ignore[union-attr]
    monitor.observe(np.clip(test[:300] + np.random.default_rng(1).uniform(-0.3, 0.3, test[:300].shape), 0, 1))
    summary = monitor.check().summary()
    assert summary["drift"] and summary["share"] > 0.2 and summary["min_p"] < 1e-6


def test_sketch_columns_are_matched_by_index(digits_sketch: ReferenceSketch) -> None:
    assert sketch_columns(digits_sketch, 64)[5] == ("x[5]", 5)
    with pytest.raises(InputError, match="inputs have 32 values"):
        sketch_columns(digits_sketch, 32)
    assert sketch_inputs(digits_sketch, 64).shape == (len(digits_sketch.reservoir), 64)


def test_correlate_finds_windows_with_both() -> None:
    quiet = [Bucket(float(t), {"requests": 10, "allowed": 10}, checks=1) for t in range(4)]
    attacked = Bucket(4.0, {"requests": 10, "guard_fallback": 6, "denied": 2}, checks=1, drift_checks=1, max_share=0.5)
    honest = Bucket(5.0, {"requests": 10, "allowed": 10}, checks=1, drift_checks=1, max_share=0.3)
    c = correlate([*quiet, attacked, honest])
    assert c["windows"] == 6 and c["flagged_windows"] == 2 and c["co_occurring"] == [4.0]
    assert c["security_rate_when_flagged"] == 0.5 and c["security_rate_otherwise"] == 0.0
    assert c["pearson_r"] is not None and c["pearson_r"] > 0.5
