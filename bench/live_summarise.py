"""The live window's summary, per column against block-at-a-time: what ``LiveMonitor.drain`` pays each flush.

``summarise`` bins the window on the reference sketch and folds its moments; it did so with a Python loop of numpy
calls per feature (``Moments.add`` and ``bin_counts`` column by column, kept here as the baseline), now with
``profile.fold_numeric`` (one sort of complex keys per block of columns). Both run in this process on the same
window, in alternating blocks, and must give the same counts. Cases: the digits monitor (64 features, the gateway's
demo) and a 784-feature input (28×28 images, synthetic), each with a window of 1,000 rows and a 100-bin sketch.

    OMP_NUM_THREADS=1 python bench/live_summarise.py --markdown
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
from sklearn.datasets import load_digits

from modelshield.monitor.drift import CurrentSummary, DriftConfig, summarise
from modelshield.monitor.live import LiveMonitor, sketch_from_inputs
from modelshield.monitor.profile import bin_counts
from modelshield.monitor.sketch import NumericFeature, ReferenceSketch


def per_column(sketch: ReferenceSketch, window: np.ndarray, names: list[tuple[str, int]]) -> CurrentSummary:
    """The former loop: each feature's moments, then its bins, one numpy call after another."""
    s = CurrentSummary.empty(sketch)
    s.rows = len(window)
    features = {f.name: f for f in sketch.features if isinstance(f, NumericFeature)}
    for name, j in names:
        present = s.moments[name].add(np.ascontiguousarray(window[:, j]))
        s.bins[name] += bin_counts(features[name].edges, present)
    return s


def timed(fn: Callable[[], object], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def refill_and_drain(monitor: LiveMonitor, window: np.ndarray) -> object:
    """A second's traffic of one window, then the flush's drain."""
    monitor.observe(window)
    return monitor.drain()


def case(label: str, reference: np.ndarray, window: np.ndarray, blocks: int, repeats: int) -> list[str]:
    sketch = sketch_from_inputs(reference, bins=100)
    monitor = LiveMonitor(sketch, None, width=reference.shape[1], window=len(window), min_rows=2)
    monitor.observe(window)
    rows = monitor.snapshot()
    config = DriftConfig(mmd=False)
    new = summarise(sketch, monitor._source(rows), config)  # noqa: SLF001 - the drain's own chunk
    old = per_column(sketch, rows, monitor.columns)
    assert all(np.array_equal(new.bins[n], old.bins[n]) for n in new.bins), "counts differ"
    assert all(new.moments[n].mean == old.moments[n].mean for n in new.moments), "means differ"
    before, after = [], []
    for _ in range(blocks):  # alternating, so load changes hit both alike
        before.append(timed(lambda: per_column(sketch, rows, monitor.columns), repeats))
        after.append(timed(lambda: summarise(sketch, monitor._source(rows), config), repeats))  # noqa: SLF001
        drains = timed(lambda: refill_and_drain(monitor, window), repeats)
    b, a = statistics.median(before), statistics.median(after)
    return [label, f"{b * 1e3:.2f} ms", f"{a * 1e3:.2f} ms", f"{b / a:.1f}×", f"{drains * 1e3:.2f} ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = load_digits().data
    wide = rng.beta(0.5, 2.0, size=(3000, 784)) * (rng.random((3000, 784)) < 0.4)  # sparse "ink", many ties at 0
    rows = [
        case("digits, 64 features, window 1,000", x[:797], x[797:1797], args.blocks, args.repeats),
        case("28×28 inputs, 784 features, window 1,000", wide[:2000], wide[2000:], args.blocks, args.repeats),
    ]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    head = ["window", "per column (before)", "fold_numeric (after)", "speed-up", "whole drain (after)"]
    if args.markdown:
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        for r in rows:
            print(dict(zip(head, r, strict=True)))


if __name__ == "__main__":
    main()
