"""Ingestion throughput and peak memory on large tables: `python bench/ingest.py [--rows 250000 1000000] [--markdown]`.

Writes (once, cached under --dir) a reference of 20,000 clean records and, per size, a CSV of 20 numeric and
5 categorical features plus a binary label, with 3 % planted poison in three kinds (1 % each):

* *outliers*: one numeric feature pushed to 6–10 standard deviations (what MAD screening is for);
* *trigger pattern*: three features set to the same in-range values (2.2, −2.2, 2.2) and the label set to 1,
  the tabular backdoor of the issue (each value is plausible on its own; the combination is not);
* *label flips*: the label inverted, features untouched.

Each size is ingested by `modelshield ingest` (default detectors plus trimmed-loss, streamed in 50,000-record
chunks) in a fresh child process pinned to 2 threads, whose wall time and peak RSS (`ru_maxrss`) are reported.
Detection precision/recall are against the planted positions. `--whole` adds, for comparison, the peak RSS
of a child that only reads the whole CSV with `pandas.read_csv` (what a non-streaming pipeline starts with).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

NUMERIC, CATEGORICAL = 20, 5
REFERENCE_ROWS = 20_000
THREADS = "2"
ENV = {**os.environ, "OMP_NUM_THREADS": THREADS, "OPENBLAS_NUM_THREADS": THREADS, "MKL_NUM_THREADS": THREADS}


def _table(n: int, seed: int, poison: float) -> tuple[object, dict[str, np.ndarray]]:
    """(DataFrame, planted positions by kind) — features as described in the module docstring."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(7).normal(size=(NUMERIC, NUMERIC)) / np.sqrt(NUMERIC)
    x = rng.normal(size=(n, NUMERIC)) @ mixing
    frame = pd.DataFrame(np.round(x, 5), columns=[f"x{i}" for i in range(NUMERIC)])
    for j in range(CATEGORICAL):
        frame[f"c{j}"] = rng.choice([f"v{k}" for k in range(4 + 2 * j)], size=n)
    frame["label"] = (x[:, 0] - x[:, 1] + 0.5 * x[:, 2] + rng.normal(scale=0.3, size=n) > 0).astype(np.int8)
    planted = rng.choice(n, int(n * poison), replace=False)
    outliers, trigger, flips = np.array_split(planted, 3)
    column = rng.integers(0, NUMERIC, size=len(outliers))
    for c in np.unique(column):
        rows = outliers[column == c]
        frame.iloc[rows, c] = np.round(rng.choice([-1, 1], size=len(rows)) * rng.uniform(6, 10, size=len(rows)), 5)
    frame.iloc[trigger, [3, 4, 5]] = [2.2, -2.2, 2.2]
    frame.iloc[trigger, frame.columns.get_loc("label")] = 1
    frame.iloc[flips, frame.columns.get_loc("label")] = 1 - frame.iloc[flips, frame.columns.get_loc("label")]
    return frame, {"outliers": outliers, "trigger": trigger, "flips": flips}


def _data(folder: Path, rows: int) -> tuple[Path, Path, Path]:
    """Reference, incoming table and planted positions, written once."""
    folder.mkdir(parents=True, exist_ok=True)
    ref = folder / "reference.csv"
    if not ref.exists():
        frame, _ = _table(REFERENCE_ROWS, seed=1, poison=0.0)
        frame.to_csv(ref, index=False)
    data, planted = folder / f"incoming-{rows}.csv", folder / f"planted-{rows}.npz"
    if not data.exists():
        frame, positions = _table(rows, seed=2, poison=0.03)
        frame.to_csv(data, index=False)
        np.savez(planted, **positions)
    return ref, data, planted


def _child(args: argparse.Namespace) -> None:
    """Run one ingestion (in a fresh process) and print what it did as JSON."""
    from modelshield.ingest import IngestConfig, ingest

    start = time.perf_counter()
    config = IngestConfig(
        reference=Path(args.reference),
        label="label",
        detectors=("mad", "isolation-forest", "trimmed-loss"),
        chunk_rows=args.chunk_rows,
    )
    result = ingest(args.data, args.out, config)
    seconds = time.perf_counter() - start
    kinds = {k: set(v.tolist()) for k, v in np.load(args.planted).items()}
    planted = set().union(*kinds.values())
    held = set()
    with open(Path(args.out) / "quarantine.jsonl", encoding="utf-8") as f:
        for line in f:  # each line opens with {"row":N, — read just that, not the whole record
            held.add(json.loads(line[: line.index(",")] + "}")["row"])
    hit = len(held & planted)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "records": result.records,
                "seconds": seconds,
                "peak_rss": peak,
                "quarantined": result.quarantined,
                "precision": hit / len(held) if held else 0.0,
                "recall": hit / len(planted) if planted else 0.0,
                "recall_by_kind": {k: len(held & v) / len(v) for k, v in kinds.items()},
                "drifted": result.drifted,
            }
        )
    )


def _whole(path: str) -> None:
    import pandas as pd

    frame = pd.read_csv(path)
    print(json.dumps({"records": len(frame), "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def _run(argv: list[str]) -> dict[str, object]:
    out = subprocess.run([sys.executable, __file__, *argv], env=ENV, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"child failed: {out.stderr.strip().splitlines()[-1:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[250_000, 1_000_000])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/modelshield-bench-ingest"))
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--whole", action="store_true", help="also measure reading the whole CSV with pandas")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--child", nargs=4, metavar=("REFERENCE", "DATA", "PLANTED", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--read-whole", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.reference, args.data, args.planted, args.out = args.child
        _child(args)
        return
    if args.read_whole:
        _whole(args.read_whole)
        return
    rows = []
    for n in args.rows:
        ref, data, planted = _data(args.dir, n)
        r = _run(
            [
                "--child",
                str(ref),
                str(data),
                str(planted),
                str(args.dir / f"out-{n}"),
                "--chunk-rows",
                str(args.chunk_rows),
            ]
        )
        r["mb"] = data.stat().st_size / 1e6
        if args.whole:
            r["whole_rss"] = _run(["--read-whole", str(data)])["peak_rss"]
        rows.append((n, r))
    load = os.getloadavg()[0]
    machine = f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), load average {load:.1f}"
    header = (
        "| records | CSV MB | seconds | records/s | peak RSS MiB | quarantined | poison recall "
        "(outliers / trigger / flips) | precision |"
    )
    if args.whole:
        header += " pandas.read_csv whole file, peak RSS MiB |"
    lines = [header, "|" + "|".join([" ---: "] * (header.count("|") - 1)) + "|"]
    for n, r in rows:
        line = (
            f"| {n:,} | {r['mb']:.0f} | {r['seconds']:.1f} | {n / float(r['seconds']):,.0f} | "  # type: ignore[arg-type]
            f"{float(r['peak_rss']) / 2**20:.0f} | {r['quarantined']:,} ({int(r['quarantined']) / n:.1%}) | "  # type: ignore[arg-type]
            f"{float(r['recall']):.1%} ({' / '.join(f'{v:.0%}' for v in r['recall_by_kind'].values())}) | "  # type: ignore[attr-defined]
            f"{float(r['precision']):.1%} |"  # type: ignore[arg-type]
        )
        if args.whole:
            line += f" {float(r['whole_rss']) / 2**20:.0f} |"  # type: ignore[arg-type]
        lines.append(line)
    if args.markdown:
        print(f"Machine: {machine}; {THREADS} threads per child; chunks of {args.chunk_rows:,} records.\n")
        print("\n".join(lines))
    else:
        print(machine)
        for n, r in rows:
            print(n, json.dumps(r))


if __name__ == "__main__":
    main()
