"""Privacy audit of the ``assess --demo --privacy`` pair: an overfit digits MLP and its DP-SGD twin.

Run from the repo root::

    .venv/bin/python bench/privacy_audit.py --markdown

Part 1 — the audit ``modelshield assess --demo --privacy`` runs (``modelshield.assess.privacy.demo_audit``):
digits with 500 mislabeled canaries, each trained on with probability ½; the baseline memorises its
training set, the twin is trained by DP-SGD to ε = 2 (δ = 1e-5); the loss threshold and RMIA (2 reference
models per recipe) score every canary. Per row: AUC, TPR at 0.1 % / 1 % FPR, the empirical ε lower bound
(Clopper–Pearson, 95 %) and the accountant's ε, and the largest bound 500 canaries could show.

Part 2 — what the privacy costs: the same two recipes trained on digits' training split (no canaries) and
measured on its test split.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.certify import machine_name  # noqa: E402
from modelshield.assess.privacy import (  # noqa: E402
    DEMO_CANARIES,
    DEMO_DELTA,
    DEMO_EPSILON,
    demo_audit,
    train_memorising,
    train_private,
)
from modelshield.core.datasets import sklearn_dataset  # noqa: E402


def _accuracy(seed: int) -> tuple[float, float, float]:
    train, test = sklearn_dataset("digits", "train", seed=seed), sklearn_dataset("digits", "test", seed=seed)
    baseline = train_memorising(train.x, train.y, seed)
    private, spent = train_private(train.x, train.y, seed)
    acc = [float((m.predict(test.x) == test.y).float().mean()) for m in (baseline, private)]
    return acc[0], acc[1], spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", action="store_true", help="print the tables for docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(1)  # what assess --demo uses: small batches run fastest on one thread
    load = os.getloadavg()[0]
    start, cpu = time.perf_counter(), time.process_time()
    audits = demo_audit(args.seed)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    base_acc, dp_acc, spent = _accuracy(args.seed)
    cap = max(a.bound.epsilon_max for a in audits)
    print(f"machine: {machine_name()}; load average at start {load:.1f}")
    print(
        f"audit: {DEMO_CANARIES} canaries, δ = {DEMO_DELTA:g}, target ε = {DEMO_EPSILON:g}; {seconds:.1f} s wall, {cpu:.1f} s CPU\n"
    )
    rows = [
        (
            a.attack,
            a.model,
            "— (not private)" if a.epsilon is None else f"{a.epsilon:.2f}",
            f"{a.bound.epsilon:.2f}",
            f"{a.roc.auc:.3f}",
            f"{100 * a.roc.tpr_at_fpr_0_001:.1f}%",
            f"{100 * a.roc.tpr_at_fpr_0_01:.1f}%",
        )
        for a in audits
    ]
    rows += [
        ("(test accuracy)", "baseline", "—", "—", f"{100 * base_acc:.1f}%", "", ""),
        ("(test accuracy)", "dp", f"{spent:.2f}", "—", f"{100 * dp_acc:.1f}%", "", ""),
    ]
    header = (
        "attack",
        "model",
        "ε (accountant)",
        "ε lower bound (95%)",
        "AUC / accuracy",
        "TPR @ 0.1% FPR",
        "TPR @ 1% FPR",
    )
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        for row in (header, *rows):
            print("  ".join(f"{cell:>16}" for cell in row))
    non_members = min(a.roc.n_non_members for a in audits)
    print(
        f"\nLargest lower bound these canaries can show (a perfect attack): {cap:.2f}. {non_members} non-member "
        f"canaries, so TPR at 0.1% FPR is read below one false positive (1/{non_members} = {100 / non_members:.2f}%)."
    )
    print("Test accuracy: the same two recipes trained on digits' training split (no canaries), on its test split.")


if __name__ == "__main__":
    main()
