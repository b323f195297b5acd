"""The training-time data-access monitor's cost per training step, in the two loops that run it by default.

* ``harden``: the robust-training loop (``StandardTraining``, the demo digits CNN, scikit-learn's digits training
  split, batches of ``--batch-size``, no validation), as ``modelshield harden`` runs it;
* ``dp``: ``train_dp`` (DP-SGD, Poisson batches of expected size ``--batch-size``, σ = 1) on the same network and
  data, as ``modelshield train --dp`` runs it.

Each loop runs ``--epochs`` epochs with the monitor (``data_observer`` plus the PEP 578 file audit, as the CLI
does) and without it, interleaved ``--repeats`` times in one process on one thread; medians of the per-step wall
time and their ratio are reported. Because whole-run differences are small against a shared machine's noise, the
monitor's own time is also measured directly: the batches the loop read are fed again into a fresh monitor
(``record_batch`` and the end-of-epoch checks) and timed. ``--scale`` adds that direct cost for an MNIST-sized
dataset (60,000 samples, batches of 256, both samplings).

    python bench/training_monitor.py --markdown
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modelshield.core.datasets import sklearn_dataset  # noqa: E402
from modelshield.core.model import TorchModel  # noqa: E402
from modelshield.defenses.training import StandardTraining, TrainConfig  # noqa: E402
from modelshield.demo import DigitsCNN  # noqa: E402
from modelshield.monitor.training import DataAccessMonitor, Sampling  # noqa: E402
from modelshield.privacy.dp import train_dp  # noqa: E402


def _harden_run(epochs: int, batch: int, monitor: DataAccessMonitor | None) -> int:
    torch.manual_seed(0)
    train = sklearn_dataset("digits", "train")
    model = TorchModel(DigitsCNN(), input_shape=(1, 8, 8), num_classes=10, bounds=(0.0, 1.0))
    cfg = TrainConfig(epochs=epochs, batch_size=batch, val_fraction=0.0, progress=False)
    StandardTraining().fit(model, train, cfg, data_observer=monitor)
    return epochs * -(-len(train) // batch)


def _dp_run(epochs: int, batch: int, monitor: DataAccessMonitor | None) -> int:
    torch.manual_seed(0)
    train = sklearn_dataset("digits", "train")
    _, report = train_dp(DigitsCNN(), train.x, train.y, noise_multiplier=1.0, epochs=epochs, batch_size=batch,
                         optimizer="adam", lr=0.01, data_observer=monitor)  # fmt: skip
    return report.steps


LOOPS: dict[str, tuple[Sampling, Callable[[int, int, DataAccessMonitor | None], int]]] = {
    "harden": ("shuffle", _harden_run),
    "dp": ("poisson", _dp_run),
}


def _replay_cost(monitor: DataAccessMonitor, sampling: Sampling) -> float:
    """Seconds a fresh monitor spends on the batches ``monitor`` recorded."""
    assert monitor.labels is not None
    again = DataAccessMonitor(None, monitor.batch_size, sampling=sampling)
    start = time.perf_counter()
    again.start(monitor.labels)
    for record in monitor.epochs:
        for b in np.split(np.asarray(record.indices), np.cumsum(record.batch_sizes)[:-1]):
            again.record_batch(b)
        again.end_epoch()
    return time.perf_counter() - start


def loop_cost(name: str, epochs: int, batch: int, repeats: int) -> dict[str, float]:
    sampling, run = LOOPS[name]
    run(1, batch, None)  # warm-up: imports, allocator, the audit hook's first install
    plain: list[float] = []
    watched: list[float] = []
    direct: list[float] = []
    for r in range(repeats):
        for with_monitor in (r % 2 == 0, r % 2 == 1):
            monitor = DataAccessMonitor(None, batch, sampling=sampling) if with_monitor else None
            start = time.perf_counter()
            if monitor is not None:
                with monitor.audit_files():
                    steps = run(epochs, batch, monitor)
            else:
                steps = run(epochs, batch, None)
            per_step = (time.perf_counter() - start) / steps
            (watched if monitor is not None else plain).append(per_step)
            if monitor is not None:
                assert not monitor.alarms, monitor.alarms
                direct.append(_replay_cost(monitor, sampling) / steps)
    p, w, d = statistics.median(plain), statistics.median(watched), statistics.median(direct)
    return {"plain_ms": p * 1e3, "watched_ms": w * 1e3, "ratio": w / p, "monitor_us": d * 1e6, "share": d / p}


def scale_cost(sampling: Sampling, n: int = 60_000, batch: int = 256, epochs: int = 3) -> float:
    """The monitor's own µs per step at MNIST size (no training: the sampler's indices only)."""
    rng = np.random.default_rng(0)
    monitor = DataAccessMonitor(n, batch, labels=rng.integers(0, 10, n), sampling=sampling)
    steps = epochs * round(n / batch)
    start = time.perf_counter()
    for _ in range(epochs):
        if sampling == "poisson":
            for _ in range(round(n / batch)):
                monitor.record_batch(np.nonzero(rng.random(n) < batch / n)[0])
        else:
            perm = rng.permutation(n)
            for s in range(0, n, batch):
                monitor.record_batch(perm[s : s + batch])
        monitor.end_epoch()
    seconds = time.perf_counter() - start
    if sampling == "poisson":  # the draw itself is the loop's work, not the monitor's
        draw = time.perf_counter()
        for _ in range(steps):
            np.nonzero(rng.random(n) < batch / n)[0]
        seconds -= time.perf_counter() - draw
    assert not monitor.alarms, monitor.alarms
    return seconds / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-scale", action="store_true", help="skip the 60,000-sample direct cost")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = {name: loop_cost(name, args.epochs, args.batch_size, args.repeats) for name in LOOPS}
    scale = {} if args.no_scale else {s: scale_cost(s) for s in ("shuffle", "poisson")}
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s); "
          f"digits train (1,437), batch {args.batch_size}, {args.epochs} epochs, {args.repeats} repeats")  # fmt: skip
    if args.markdown:
        print("| loop | step without monitor | step with monitor | ratio | monitor's own time per step | share |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, r in rows.items():
            print(f"| {name} | {r['plain_ms']:.2f} ms | {r['watched_ms']:.2f} ms | {r['ratio']:.3f}× "
                  f"| {r['monitor_us']:.0f} µs | {r['share']:.2%} |")  # fmt: skip
        for sampling, us in scale.items():
            print(f"| monitor only, 60,000 samples, batch 256, {sampling} | | | | {us:.0f} µs | |")
    else:
        for name, r in rows.items():
            print(name, {k: round(v, 4) for k, v in r.items()})
        for sampling, us in scale.items():
            print(f"monitor only at 60,000 samples ({sampling}): {us:.0f} µs/step")


if __name__ == "__main__":
    main()
