"""Erasure: SISA unlearning against full retraining on digits, 5 shards (Bourtoule et al., S&P 2021).

Run from the repo root::

    .venv/bin/python bench/erasure.py --markdown

Digits' training split (1,347 images) as a table with a synthetic data-subject column (``--subjects``
subjects, so one subject owns about 1347/subjects records). One subject is erased, and the model forgets it
three ways, all with the same DigitsCNN and training loop (Adam, ``--epochs`` per stage):

- full retraining of one network on the remaining records (the baseline);
- SISA, subjects placed by a keyed hash of the subject (one subject → one shard), unlearning by retraining
  that shard from the checkpoint before the subject's slice;
- SISA, records placed by a keyed hash of the record id (the paper's default): the subject's records spread
  over several shards.

Per row: the work (samples × epochs, the paper's cost measure) and wall seconds of the forgetting step,
accuracy on the test split after it, and the loss-threshold membership score (Yeom et al. 2018) of the
erased records against the 450 test images as non-members, before and after: AUC, and the mean loss of the
erased records next to that of the non-members.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.certify import machine_name  # noqa: E402
from modelshield.cli._governance_erasure import DEMO_ARCH, demo_table, membership_probe  # noqa: E402
from modelshield.core.model import TorchModel  # noqa: E402
from modelshield.govern.sisa import SisaEnsemble, TorchLearner  # noqa: E402

KEY = b"bench-erasure-key"


def _arrays(frame: Any) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    cols = [c for c in frame.columns if c.startswith("pixel")]
    x = frame[cols].to_numpy(np.float32).reshape(-1, 1, 8, 8)
    return x, frame["label"].to_numpy(np.int64), list(frame["record_id"]), list(frame["subject"])


def run(epochs: int, shards: int, slices: int, subjects: int, seed: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    train, test = demo_table("train", seed=seed, subjects=subjects), demo_table("test", seed=seed, subjects=subjects)
    x, y, ids, groups = _arrays(train)
    xt, yt, _, _ = _arrays(test)
    who = train["subject"].value_counts().index[len(train["subject"].unique()) // 2]  # a subject of median size
    keep = (train["subject"] != who).to_numpy()
    kx, ky = x[keep], y[keep]
    kids = [r for r, k in zip(ids, keep, strict=True) if k]
    kgroups = [g for g, k in zip(groups, keep, strict=True) if k]
    gone = [r for r, k in zip(ids, keep, strict=True) if not k]
    probe = membership_probe(xt, yt)
    learner = TorchLearner(DEMO_ARCH, epochs=epochs)

    def model(net: torch.nn.Module) -> TorchModel:
        return TorchModel(net, input_shape=(1, 8, 8), num_classes=10)

    rows = []
    # full retraining: one network before (on everything) and after (on the rest)
    torch.manual_seed(seed)
    before_net = learner.fit(learner.fresh(seed), x, y, seed)
    t0 = time.perf_counter()
    after_net = learner.fit(learner.fresh(seed), kx, ky, seed)
    seconds = time.perf_counter() - t0
    rows.append(
        {
            "method": "full retraining (one network)",
            "shards_retrained": "—",
            "sample_epochs": len(kx) * epochs,
            "seconds": seconds,
            "acc_before": float((learner.proba(before_net, xt).argmax(1) == yt).mean()),
            "acc_after": float((learner.proba(after_net, xt).argmax(1) == yt).mean()),
            "mia_before": probe(model(before_net), x[~keep], y[~keep]),
            "mia_after": probe(model(after_net), x[~keep], y[~keep]),
        }
    )
    for placement in ("subject", "record"):
        with tempfile.TemporaryDirectory() as d:
            ens, full = SisaEnsemble.train(
                d, x, y, ids, learner, key=KEY, shards=shards, slices=slices, seed=seed,
                groups=groups if placement == "subject" else None,
            )  # fmt: skip
            acc_before = float((ens.predict(xt, "mean") == yt).mean())
            mia_before = probe(ens.as_model((1, 8, 8)), x[~keep], y[~keep])
            work = ens.unlearn(kx, ky, kids, gone, key=KEY, groups=kgroups if placement == "subject" else None)
            rows.append(
                {
                    "method": f"SISA, placed by {placement} (full SISA training {full.sample_epochs} sample-epochs)",
                    "shards_retrained": f"{len(work.shards)} of {shards}",
                    "sample_epochs": work.sample_epochs,
                    "seconds": work.seconds,
                    "acc_before": acc_before,
                    "acc_after": float((ens.predict(xt, "mean") == yt).mean()),
                    "mia_before": mia_before,
                    "mia_after": probe(ens.as_model((1, 8, 8)), x[~keep], y[~keep]),
                }
            )
    return rows, {"erased": int((~keep).sum()), "records": len(x)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20, help="epochs per training stage")
    parser.add_argument("--shards", type=int, default=5)
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument(
        "--subjects", type=int, default=30, help="synthetic data subjects (records per subject ≈ 1347/n)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", action="store_true", help="print the table for docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    print(f"machine: {machine_name()}; load average at start {load:.1f}")
    t0 = time.perf_counter()
    rows, info = run(args.epochs, args.shards, args.slices, args.subjects, args.seed)
    print(
        f"digits, {info['records']} training records, {args.subjects} subjects; erased: {info['erased']} records of one "
        f"subject; {args.shards} shards × {args.slices} slices, {args.epochs} epochs per stage; "
        f"{time.perf_counter() - t0:.0f} s wall in all\n"
    )
    base = rows[0]["sample_epochs"]
    if not args.markdown:
        for r in rows:
            mb, ma = r["mia_before"], r["mia_after"]
            print(
                f"{r['method']}: {r['sample_epochs']} sample-epochs ({r['sample_epochs'] / base:.2f}x), "
                f"{r['seconds']:.1f} s, acc {r['acc_after']:.3f}, MIA AUC {mb['auc']:.3f} -> {ma['auc']:.3f}"
            )
        return
    print(
        "| forgetting by | shards retrained | sample × epochs | vs full retrain | seconds | test acc before → after "
        "| MIA AUC before → after | erased loss before → after (non-members) |"
    )
    print("|---|---:|---:|---:|---:|---|---|---|")
    for r in rows:
        mb, ma = r["mia_before"], r["mia_after"]
        print(
            f"| {r['method']} | {r['shards_retrained']} | {r['sample_epochs']:,} | {r['sample_epochs'] / base:.2f}× "
            f"| {r['seconds']:.1f} | {r['acc_before']:.3f} → {r['acc_after']:.3f} | {mb['auc']:.3f} → {ma['auc']:.3f} "
            f"| {mb['erased_mean_loss']:.3f} → {ma['erased_mean_loss']:.3f} ({ma['holdout_mean_loss']:.3f}) |"
        )


if __name__ == "__main__":
    main()
