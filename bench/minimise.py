"""Minimisation at scale: ``govern minimise`` on a million rows × 20 features.

Run from the repo root::

    .venv/bin/python bench/minimise.py --rows 1000000 --markdown

A synthetic table (scikit-learn ``make_classification``: 6 informative features, 4 redundant combinations of
them, 10 pure-noise columns, two of them cast to categories, binary target) is written to CSV and analysed
end to end — read the file, train gradient boosting on the default 200,000-row sample, permutation importance
(5 repeats) on 20,000 held-out rows, the joint retrain of the candidates — once per model given. Reported per
run: seconds for the read and for the analysis, the sample sizes, held-out accuracy, how many of the 10 noise
columns were recommended for removal and how many of the 10 others (6 informative, 4 redundant linear
combinations of them, so some of those may go without loss), and the
measured accuracy cost of removing the recommendation together.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.certify import machine_name  # noqa: E402
from modelshield.govern.minimise import minimise, read_frame  # noqa: E402

INFORMATIVE, REDUNDANT, NOISE = 6, 4, 10


def table(rows: int, path: Path, seed: int = 0) -> None:
    """``rows`` × 20 features written to ``path`` as CSV; noise columns are named noise*, the rest f*."""
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(
        rows,
        INFORMATIVE + REDUNDANT + NOISE,
        n_informative=INFORMATIVE,
        n_redundant=REDUNDANT,
        shuffle=False,
        flip_y=0.05,
        random_state=seed,
    )
    names = [f"f{i}" for i in range(INFORMATIVE + REDUNDANT)] + [f"noise{i}" for i in range(NOISE)]
    frame = pd.DataFrame(np.round(x, 4).astype(np.float32), columns=names)
    for col in ("noise8", "noise9"):  # categorical noise goes through the one-hot encoder
        frame[col] = pd.cut(frame[col], 5, labels=list("abcde")).astype(str)
    frame["target"] = y
    frame.to_csv(path, index=False)


def run(path: Path, model: str, threads: int | None) -> dict[str, Any]:
    start = time.perf_counter()
    frame = read_frame(path)
    read = time.perf_counter() - start
    report = minimise(frame, "target", model=model, threads=threads, source=path.name)
    noise = {f"noise{i}" for i in range(NOISE)}
    return {
        "model": model,
        "rows": report.rows,
        "train": report.train_rows,
        "importance": report.importance_rows,
        "read_s": read,
        "analysis_s": report.seconds,
        "accuracy": report.baseline,
        "noise_removed": len(noise & set(report.recommended)),
        "signal_removed": len(set(report.recommended) - noise),
        "joint_drop": report.joint_drop,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--models", default="hist-gradient-boosting,logistic-regression")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "table.csv"
        start = time.perf_counter()
        table(args.rows, path)
        made = time.perf_counter() - start
        results = [run(path, m, args.threads) for m in args.models.split(",")]
        size = path.stat().st_size / 1e6
    print(f"{args.rows:,} rows × 20 features ({size:.0f} MB CSV, written in {made:.1f} s) on {machine_name()}")
    header = "| model | rows | trained on | importance rows | read s | analysis s | accuracy | noise removed (of 10) | f* removed (6 informative + 4 redundant) | joint drop |"
    print(header if args.markdown else header.replace("|", " "))
    if args.markdown:
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        cells = [
            r["model"],
            f"{r['rows']:,}",
            f"{r['train']:,}",
            f"{r['importance']:,}",
            f"{r['read_s']:.1f}",
            f"{r['analysis_s']:.1f}",
            f"{r['accuracy']:.4f}",
            str(r["noise_removed"]),
            str(r["signal_removed"]),
            "—" if r["joint_drop"] is None else f"{r['joint_drop']:.4f}",
        ]
        print("| " + " | ".join(cells) + " |" if args.markdown else "  ".join(cells))


if __name__ == "__main__":
    main()
