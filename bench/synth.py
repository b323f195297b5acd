"""DP synthetic data (MST): `python bench/synth.py [--rows 100000] [--epsilons 1,3,10] [--peer-python PY] [--markdown]`.

Two labelled tables: a generated one of ``--rows`` rows with known structure (a dependent categorical pair, a
numeric column driven by a category, a label driven by both) and a declared domain, and scikit-learn's
breast_cancer (569 rows, 30 numeric columns binned on their observed range, binary target). For each ε:
wall time of fit + sample, mean total-variation distance over every column (1-way) and over every pair of
columns (2-way), and train-on-synthetic-test-on-real accuracy next to train-on-real (a held-out 20 % of the
real rows, never shown to the synthesizer).

``--peer-python`` names a Python with ``smartnoise-synth`` (whose MST runs Private-PGM): it cannot share our
venv (it pins opacus<0.15 and pandas<3), so it runs in a subprocess on the same discretised table, and its
rows are scored by the same code. Private-PGM on 31 columns did not finish in 500 s on the 2-core VM, so the
peer runs on the generated table only unless ``--peer-breast-cancer`` is given.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

from modelshield.privacy.synth import (
    Categorical,
    Domain,
    MSTSynthesizer,
    Numeric,
    distribution_shift,
    infer_domain,
    tstr,
)

PEER_SCRIPT = """
import sys, time, warnings
import pandas as pd
from snsynth import Synthesizer
warnings.filterwarnings("ignore")
src, dst, eps, delta, rows = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
frame = pd.read_csv(src)
started = time.perf_counter()
synth = Synthesizer.create("mst", epsilon=eps, delta=delta)
synth.fit(frame, categorical_columns=list(frame.columns), preprocessor_eps=0.0, nullable=False)
out = synth.sample(rows)
print(time.perf_counter() - started)
out.to_csv(dst, index=False)
"""


def generated(rows: int, seed: int = 0) -> tuple[pd.DataFrame, Domain]:
    """A table whose structure is known: colour≈shade, weight | size, label | (colour, weight)."""
    rng = np.random.default_rng(seed)
    colours = ["red", "green", "blue", "grey", "black", "white"]
    colour = rng.choice(colours, rows, p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05])
    shade = np.where(rng.random(rows) < 0.85, colour, rng.choice(colours, rows))
    size = rng.choice(["S", "M", "L"], rows, p=[0.3, 0.4, 0.3])
    weight = rng.normal(np.select([size == "S", size == "M"], [40.0, 60.0], 80.0), 8.0).clip(0, 120)
    age = rng.integers(18, 90, rows)
    region = rng.choice(["north", "south", "east", "west"], rows)
    logit = 0.06 * (weight - 60) + np.where(np.isin(colour, ["red", "blue"]), 1.0, -1.0) + 0.02 * (age - 50)
    label = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame = pd.DataFrame(
        {"colour": colour, "shade": shade, "size": size, "weight": weight, "age": age, "region": region, "label": label}
    )
    domain = Domain(
        (
            Categorical("colour", tuple(colours)),
            Categorical("shade", tuple(colours)),
            Categorical("size", ("S", "M", "L")),
            Numeric("weight", 0, 120, 24),
            Numeric("age", 18, 90, 18, integer=True),
            Categorical("region", ("north", "south", "east", "west")),
            Categorical("label", ("no", "yes")),
        )
    )
    return frame, domain


def breast_cancer() -> tuple[pd.DataFrame, Domain]:
    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    return frame, infer_domain(frame)


def _peer(python: str, cells: pd.DataFrame, epsilon: float, delta: float, rows: int) -> tuple[np.ndarray, float]:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst, script = Path(tmp, "in.csv"), Path(tmp, "out.csv"), Path(tmp, "peer.py")
        cells.to_csv(src, index=False)
        script.write_text(PEER_SCRIPT, encoding="utf-8")
        run = subprocess.run(
            [python, str(script), str(src), str(dst), str(epsilon), str(delta), str(rows)],
            capture_output=True, text=True, timeout=3600, check=True,
        )  # fmt: skip
        seconds = float(run.stdout.strip().splitlines()[-1])
        return pd.read_csv(dst)[list(cells.columns)].to_numpy(dtype=np.int64), seconds


def evaluate(
    name: str, frame: pd.DataFrame, domain: Domain, label: str, epsilons: list[float], peer: str | None, seed: int
) -> list[dict[str, Any]]:
    test = frame.sample(frac=0.2, random_state=seed)
    train = frame.drop(test.index)
    pairs = list(itertools.combinations(range(len(domain.columns)), 2))
    results = []
    for eps in epsilons:
        started = time.perf_counter()
        synthetic = MSTSynthesizer(eps, 1e-9, seed).fit(train, domain).sample(len(train))
        seconds = time.perf_counter() - started
        candidates = [("modelshield MST", synthetic, seconds)]
        if peer:
            cells = pd.DataFrame(domain.encode(train), columns=domain.names)
            peer_cells, peer_seconds = _peer(peer, cells, eps, 1e-9, len(train))
            candidates.append(
                ("smartnoise-synth MST", domain.decode(peer_cells, np.random.default_rng(seed)), peer_seconds)
            )
        for method, rows, secs in candidates:
            print(f"{name}: {method} at ε={eps:g} in {secs:.1f} s", file=sys.stderr, flush=True)
            shift = distribution_shift(train, rows, domain, pairs)
            utility = tstr(train, test, rows, domain, label, seed)
            results.append(
                {
                    "table": name,
                    "method": method,
                    "epsilon": eps,
                    "seconds": secs,
                    "tvd_1way": shift["mean_1way_tvd"],
                    "tvd_2way": shift["mean_2way_tvd"],
                    "tstr": utility["train_synthetic_test_real"],
                    "trtr": utility["train_real_test_real"],
                    "majority": utility["majority_class"],
                }
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epsilons", default="1,3,10")
    parser.add_argument("--peer-python", help="a Python with smartnoise-synth installed")
    parser.add_argument("--peer-breast-cancer", action="store_true", help="run the peer on breast_cancer too (slow)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    epsilons = [float(e) for e in args.epsilons.split(",")]
    results = []
    for name, (frame, domain), label, peer in (
        (f"generated {args.rows // 1000}k", generated(args.rows, args.seed), "label", args.peer_python),
        ("breast_cancer (binned)", breast_cancer(), "target", args.peer_python if args.peer_breast_cancer else None),
    ):
        results += evaluate(name, frame, domain, label, epsilons, peer, args.seed)
    if not args.markdown:
        print(json.dumps(results, indent=2))
        return
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; δ = 1e-9; TVD: mean over columns / pairs"
    )
    print()
    print("| table | method | ε | time (s) | 1-way TVD | 2-way TVD | TSTR acc. | train-on-real | majority |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['table']} | {r['method']} | {r['epsilon']:g} | {r['seconds']:.2f} | {r['tvd_1way']:.3f} | "
            f"{r['tvd_2way']:.3f} | {r['tstr']:.3f} | {r['trtr']:.3f} | {r['majority']:.3f} |"
        )


if __name__ == "__main__":
    main()
