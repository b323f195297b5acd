"""Watermark robustness and false positives on the demo CNN: `python bench/watermark.py [--keys 1000] [--models 5]`.

For each of ``--owners`` owner keys and both watermarks (weights: Uchida et al. 2017; trigger set: Adi
et al. 2018) it embeds into the demo model, then reports the held-out accuracy cost, detection after
fine-tuning on clean data for 1-20 epochs at the demo's own learning rate (3e-3, Adam) and after global
magnitude pruning of 0-50% of the weights. The empirical false-positive rate comes from verifying
``--models`` independently trained clean demo models, and every watermarked model under the other
owners' keys, against ``--keys`` unrelated keys; the exact size of the test (the largest false-positive
rate the discrete binomial test can have at each stated rate) is printed beside it. One thread (the machine is shared). No peer library
embeds or verifies watermarks in our environment, so there is no side-by-side ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import time

import torch

from modelshield.core.datasets import sklearn_dataset
from modelshield.demo import demo_model_and_data
from modelshield.integrity.watermark import (
    DEFAULT_FPR,
    TriggerSetWatermark,
    WeightWatermark,
    accuracy,
    calibrate,
    fine_tune,
    magnitude_prune,
)
from modelshield.integrity.watermark.stats import binomial_p_value, min_matches

FINE_TUNE_EPOCHS = (1, 2, 5, 10, 20)
PRUNE_RATIOS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
KINDS = {"weights": WeightWatermark, "trigger": TriggerSetWatermark}


def _cell(matched: list[int], total: int, detected: list[bool]) -> str:
    """'worst matches/total, detected k of n' over the owners."""
    return f"{min(matched)}/{total} ({sum(detected)}/{len(detected)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1000, help="unrelated keys per model for the false-positive rate")
    parser.add_argument("--models", type=int, default=5, help="independently trained clean demo models")
    parser.add_argument("--owners", type=int, default=3, help="owner keys each watermark is embedded with")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), torch {torch.__version__}, "
        f"1 thread; decisions at false-positive rate {DEFAULT_FPR:g}"
    )
    train, test = sklearn_dataset("digits", "train"), sklearn_dataset("digits", "test")
    start = time.perf_counter()
    clean = [demo_model_and_data(seed)[0] for seed in range(args.models)]
    print(f"trained {args.models} clean demo models in {time.perf_counter() - start:.1f} s")
    base = clean[0]
    base_acc = accuracy(base, test)
    owners = [hashlib.sha256(f"bench-owner/{i}".encode()).digest() for i in range(args.owners)]

    for kind, cls in KINDS.items():
        marked, costs, seconds = [], [], []
        tuned_rows: dict[int, list[tuple[int, bool, float]]] = {e: [] for e in FINE_TUNE_EPOCHS}
        pruned_rows: dict[float, list[tuple[int, bool, float]]] = {r: [] for r in PRUNE_RATIOS}
        total = 0
        for key in owners:
            wm = cls(key)
            t0 = time.perf_counter()
            m = wm.embed(base, train)
            seconds.append(time.perf_counter() - t0)
            marked.append(m)
            costs.append(base_acc - accuracy(m, test))
            tuned, done = m, 0
            for epochs in FINE_TUNE_EPOCHS:  # one continued fine-tune, read at each checkpoint
                tuned = fine_tune(tuned, train, epochs=epochs - done, lr=3e-3, seed=epochs)
                done = epochs
                v = wm.verify(tuned)
                tuned_rows[epochs].append((v.matched, v.detected, accuracy(tuned, test)))
            for ratio in PRUNE_RATIOS:
                pruned = magnitude_prune(m, ratio)
                v = wm.verify(pruned)
                pruned_rows[ratio].append((v.matched, v.detected, accuracy(pruned, test)))
            total = v.total
        print(f"\n## {kind} watermark ({args.owners} owner keys, demo model at {base_acc:.2%} clean accuracy)")
        print(
            f"embedding: {sum(seconds) / len(seconds):.2f} s per model; accuracy cost "
            f"{100 * min(costs):+.2f} to {100 * max(costs):+.2f} points (positive = lost)"
        )
        print("\n| attack | worst matched (detected) | mean accuracy |\n|---|---:|---:|")
        for label, rows in [
            *((f"fine-tune {e} epochs", r) for e, r in tuned_rows.items()),
            *((f"prune {int(100 * p)}%", r) for p, r in pruned_rows.items()),
        ]:
            matched, detected, accs = zip(*rows, strict=True)
            print(f"| {label} | {_cell(list(matched), total, list(detected))} | {sum(accs) / len(accs):.2%} |")

        t0 = time.perf_counter()
        cal = calibrate(cls, clean + marked, n_keys=args.keys)
        mean, var = cal.match_mean_var()
        p0 = 0.5 if kind == "weights" else 0.1
        print(
            f"\nnull: {cal.trials:,} verifications ({args.models} clean + {len(marked)} watermarked models × "
            f"{args.keys:,} unrelated keys) in {time.perf_counter() - t0:.1f} s; matches mean {mean:.2f} "
            f"(binomial {total * p0:.1f}), variance {var:.2f} (binomial {total * p0 * (1 - p0):.1f})"
        )
        print("\n| stated FPR | exact size of the test | empirical FPR | false alarms |\n|---:|---:|---:|---:|")
        for alpha in (DEFAULT_FPR, 1e-2, 5e-2):
            k = min_matches(total, p0, alpha)
            size = binomial_p_value(k, total, p0) if k is not None else 0.0
            print(f"| {alpha:g} | {size:.5f} | {cal.rate(alpha):.5f} | {round(cal.rate(alpha) * cal.trials)} |")


if __name__ == "__main__":
    main()
